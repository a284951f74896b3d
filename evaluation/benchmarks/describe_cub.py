"""Benchmark: describe() on CUB birds, every test photo against its siblings, checked with CUB's attribute table.

Sibling pairs are the species of one family (the `family` column of cub-photos/manifest.csv: warblers, sparrows,
gulls ...) that the classifier knows. Each test photo is described against each sibling (at most
--max-siblings, a seeded sample) with the CUB attributes as the expert list. Each top-5 trait is:
- true: a CUB attribute of the same part, attribute and value differs by >= 20 percentage points between the two
  species, in the trait's direction;
- contradicted: such an attribute differs by >= 20 points the other way;
- unchecked: no CUB attribute says the species differ there (|difference| < 20 or CUB has no such attribute).
Also counted: traits that use a butterfly-only word (forewing, eyespot ...), which must never happen for birds.

    python -m evaluation.benchmarks.describe_cub --model MODEL_DIR [--max-siblings 3] [--maps finer,flat] [--scorer SPEC]

MODEL_DIR: `finer-traits train ../shared/data/cub-photos --manifest ../shared/data/cub-photos/manifest.csv
--taxon-group bird --out MODEL_DIR`. Intervals: 95 % bootstrap over photos (a photo's pairs stay together).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from evaluation.benchmarks.ablation import MAPS, AblatedPipeline
from evaluation.benchmarks.describe_synthetic import markdown
from pipeline.paths import data_root
from traits.cub import CubAttributes, load_cub
from traits.names import normalise_name
from traits.vocab import load_vocab

TRUE_POINTS = 20.0  # the threshold: |difference| >= 20 percentage points


def butterfly_words() -> set[str]:
    """Part words of the butterfly group that the bird group does not have (forewing, hindwing, eyespot ...)."""
    vocab = load_vocab()
    bird = set(vocab.group("bird").parts.parents) | set(vocab.group("bird").parts.synonyms)
    fly = vocab.group("butterfly").parts
    words = {w for p in list(fly.parents) + list(fly.synonyms) for w in p.split()}
    bird_words = {w for p in bird for w in p.split()}
    return {w for w in words if w not in bird_words and len(w) > 3}


class CubTruth:
    """CUB's per-species percentages, looked up by (part, attribute, value) in the bird group's part names."""

    def __init__(self, cub: CubAttributes) -> None:
        self.cub = cub
        parts = load_vocab().group("bird").parts
        self.columns: dict[tuple[str, str, str], list[int]] = {}
        for k, a in enumerate(cub.attributes):
            part = parts.normalise(a.trait.part) or a.trait.part
            self.columns.setdefault((part, a.trait.attribute, a.trait.value), []).append(k)
        self.parts = parts

    def verdict(self, part: str, attribute: str, value: str, direction: str, a: str, b: str) -> tuple[str, float]:
        """('true' | 'contradicted' | 'unchecked', the CUB difference in points, target minus contrast)."""
        key = (self.parts.normalise(part) or part, attribute, value)
        cols = self.columns.get(key)
        if not cols:
            return "unchecked", float("nan")
        diff = float(np.max(self.cub.row(a)[cols] - self.cub.row(b)[cols], initial=-np.inf)) if direction == "+" \
            else float(np.min(self.cub.row(a)[cols] - self.cub.row(b)[cols], initial=np.inf))
        if abs(diff) < TRUE_POINTS:
            return "unchecked", diff
        agrees = (diff > 0) == (direction == "+")
        return ("true" if agrees else "contradicted"), diff


def sibling_pairs(manifest: pd.DataFrame, known: set[str], max_siblings: int | None, seed: int = 0
                  ) -> list[tuple[str, str, str, str]]:
    """(photo, target, contrast, family) for every test photo and each sibling in its family the model knows."""
    species_of = manifest.drop_duplicates("species").set_index("species")["family"]
    out = []
    rng = np.random.default_rng(seed)
    for _, row in manifest[manifest["split"] == "test"].iterrows():
        if normalise_name(row["species"]) not in known:
            continue
        sibs = sorted(s for s, f in species_of.items()
                      if f == row["family"] and s != row["species"] and normalise_name(s) in known)
        if max_siblings is not None and len(sibs) > max_siblings:
            sibs = sorted(rng.choice(sibs, size=max_siblings, replace=False).tolist())
        out += [(row["image"], row["species"], s, row["family"]) for s in sibs]
    return out


def run(photos: Path, attributes: Path, model: Path, maps: Sequence[str] = ("finer",), max_siblings: int | None = 3,
        limit: int | None = None, scorer: str = "color", top_k: int = 5) -> pd.DataFrame:
    """One row per top-k trait of every (test photo, sibling, maps) description (an empty trait list gives one
    row). Several map kinds are described by one pipeline, so they share its reference photos and caches."""
    # A family's species are described against each other in turn: keep all their reference photos in memory.
    pipe = AblatedPipeline.load(model, maps="finer", scorer=scorer, expert=attributes, device="cpu",
                                taxon_group="bird", max_reference_species=64)
    truth = CubTruth(load_cub(attributes, group="bird"))
    fly = butterfly_words()
    manifest = pd.read_csv(photos / "manifest.csv")
    known = {normalise_name(n) for n in pipe.classifier.class_names}
    pairs = sibling_pairs(manifest, known, max_siblings)
    if limit is not None and len(pairs) > limit:  # a seeded sample across all families, not the first few
        keep = np.random.default_rng(1).choice(len(pairs), size=limit, replace=False)
        pairs = [pairs[i] for i in sorted(keep)]
    rows = []
    for (photo, target, contrast, family), kind in tqdm([(p, k) for p in pairs for k in maps],
                                                        desc=f"CUB sibling pairs ({', '.join(maps)} maps)"):
        pipe.maps_kind = kind
        t0 = time.perf_counter()
        r = pipe.describe(photos / photo, contrast, target_species=target, top_k=top_k)
        secs = time.perf_counter() - t0
        base = {"maps": kind, "photo": photo, "target": target, "contrast": contrast, "family": family,
                "seconds": secs, "top5": "; ".join(f"{t.phrase} {t.direction}" for t in r.traits)}
        if not r.traits:
            rows.append({**base, "rank": 0, "verdict": "none"})
        for t in r.traits:
            verdict, diff = truth.verdict(t.trait.part, t.trait.attribute, t.trait.value, t.direction, target, contrast)
            rows.append({**base, "rank": t.rank, "phrase": t.phrase, "direction": t.direction, "part": t.trait.part,
                         "verdict": verdict, "cub_difference": diff, "in_region": bool(t.in_region),
                         "butterfly_word": any(w in t.phrase.lower().split() for w in fly)})
    return pd.DataFrame(rows)


def verdict_shares(df: pd.DataFrame) -> dict[str, float]:
    """Share of true / contradicted / unchecked among the traits (rows whose verdict is not 'none')."""
    traits = df[df["verdict"] != "none"]
    n = max(len(traits), 1)
    return {v: float((traits["verdict"] == v).sum() / n) for v in ("true", "contradicted", "unchecked")}


def bootstrap(df: pd.DataFrame, n_boot: int = 1000, seed: int = 0) -> dict[str, tuple[float, float]]:
    """95 % intervals of the verdict shares, resampling photos (with all their pairs and traits)."""
    photos = df["photo"].unique()
    groups = {p: g for p, g in df.groupby("photo")}
    rng = np.random.default_rng(seed)
    draws = {v: [] for v in ("true", "contradicted", "unchecked")}
    for _ in range(n_boot):
        sample = pd.concat([groups[p] for p in rng.choice(photos, size=len(photos), replace=True)])
        for k, v in verdict_shares(sample).items():
            draws[k].append(v)
    return {k: (float(np.percentile(v, 2.5)), float(np.percentile(v, 97.5))) for k, v in draws.items()}


def summarise(df: pd.DataFrame, n_boot: int = 1000) -> pd.DataFrame:
    """Per family and pooled: photos, pairs, traits, the verdict shares (pooled with 95 % intervals), butterfly words."""
    out = []
    for family, g in [*sorted(df.groupby("family")), ("pooled", df)]:
        s = verdict_shares(g)
        row = {"family": family, "photos": g["photo"].nunique(), "pairs": g.groupby(["photo", "contrast"]).ngroups,
               "traits": int((g["verdict"] != "none").sum()), **{k: round(v, 3) for k, v in s.items()},
               "in_region": round(float(g["in_region"].fillna(False).astype(bool).mean()), 3),
               "butterfly_words": int(g["butterfly_word"].fillna(False).astype(bool).sum())}
        if family == "pooled":
            ci = bootstrap(g, n_boot)
            row.update({f"{k}_ci": f"[{lo:.3f}, {hi:.3f}]" for k, (lo, hi) in ci.items()})
        out.append(row)
    return pd.DataFrame(out)


def top5_changed(a: pd.DataFrame, b: pd.DataFrame) -> float:
    """Share of (photo, contrast) descriptions whose top-5 (phrase and direction) differ between two runs."""
    ka = a.drop_duplicates(["photo", "contrast"]).set_index(["photo", "contrast"])["top5"]
    kb = b.drop_duplicates(["photo", "contrast"]).set_index(["photo", "contrast"])["top5"]
    common = ka.index.intersection(kb.index)
    return float((ka[common] != kb[common]).mean()) if len(common) else float("nan")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    root = data_root()
    ap.add_argument("--model", type=Path, required=True, help="a model folder trained on cub-photos (--taxon-group bird)")
    ap.add_argument("--photos", type=Path, default=root / "cub-photos" if root else None)
    ap.add_argument("--attributes", type=Path, default=root / "cub-attributes" if root else None)
    ap.add_argument("--maps", default="finer", help=f"comma-separated map kinds to run, of {', '.join(MAPS)} "
                    "(all but finer replace the Finer-CAM maps: ablations)")
    ap.add_argument("--max-siblings", type=int, default=3, help="siblings per test photo (0: all)")
    ap.add_argument("--limit", type=int, default=None, help="a seeded sample of this many (photo, sibling) pairs")
    ap.add_argument("--scorer", default="color", help="describe's scorer spec (default the offline colour scorer; "
                    "e.g. openclip:PATH for BioCLIP weights in a local folder)")
    ap.add_argument("--compare", type=Path, default=None, help="a per-trait CSV of another run: share of changed top-5")
    ap.add_argument("--out", type=Path, default=None, help="write the per-trait table here (CSV)")
    args = ap.parse_args()
    if args.photos is None or not (args.photos / "manifest.csv").is_file():
        raise SystemExit("CUB photos not found: set FINER_TRAITS_DATA or pass --photos.")
    kinds = [k.strip() for k in args.maps.split(",") if k.strip()]
    unknown = [k for k in kinds if k not in MAPS]
    if unknown or not kinds:
        raise SystemExit(f"unknown map kind(s) {unknown}; use {', '.join(MAPS)}")
    df = run(args.photos, args.attributes, args.model, kinds, args.max_siblings or None, args.limit, args.scorer)
    if args.out:
        df.to_csv(args.out, index=False)
    for kind in kinds:
        part = df[df["maps"] == kind]
        print(f"\n{kind} maps:\n" + markdown(summarise(part)))
        print(f"median seconds per description: {part.drop_duplicates(['photo', 'contrast'])['seconds'].median():.2f}")
        if kind != kinds[0]:
            print(f"top-5 changed against {kinds[0]} maps: {top5_changed(part, df[df['maps'] == kinds[0]]):.3f}")
    if args.compare:
        print(f"top-5 changed against {args.compare}: {top5_changed(df, pd.read_csv(args.compare)):.3f}")


if __name__ == "__main__":
    main()
