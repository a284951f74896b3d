"""Benchmark: does describe() find the designed difference of each synthetic sibling pair?

For every sibling pair, both directions, every test photo: describe(photo, sibling, target_species=true species).
A hit: a top-3 trait names the designed difference (same attribute; the designed part or a coarser part that
contains it, reported separately) with the right direction ('+' with the target's value, or '-' with the
sibling's). The random-phrase controls' per-photo largest |effect| is reported next to the top real trait's
(median and maximum over photos, and the share of photos whose top trait beats every control).

    python -m evaluation.benchmarks.describe_synthetic --data runs/synth --model runs/synth-model [--scorer color]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from evaluation.synthetic import make_species
from pipeline.describe import Pipeline
from pipeline.train import train_classifier


def judge(traits, part: str, attribute: str, value_a: str, value_b: str, k: int = 3) -> dict:
    """hit (exact part), hit_coarse (part or an ancestor) and direction_ok among the top-k traits."""
    exact = coarse = False
    named = right = 0
    for t in traits[:k]:
        tr = t.trait
        if tr.attribute != attribute or tr.value not in (value_a, value_b):
            continue
        same = tr.part == part
        ancestor = part.startswith(tr.part) or tr.part == "wing" and "wing" in part
        if not (same or ancestor):
            continue
        named += 1
        ok = (tr.value == value_a and t.direction == "+") or (tr.value == value_b and t.direction == "-")
        right += ok
        exact |= same and ok
        coarse |= ok
    return {"hit": exact, "hit_coarse": coarse, "named": named > 0, "direction_ok": right / named if named else np.nan}


def run(data: Path, model: Path, scorer: str = "color", top_k: int = 5, attributes: tuple[str, ...] = ("colour",),
        limit: int | None = None, references: int = 16) -> pd.DataFrame:
    """One row per described test photo (references: reference photos per species, Pipeline.max_references)."""
    pipe = Pipeline.load(model, scorer=scorer, expert=data / "traits.csv", device="cpu", progress=True,
                         max_references=references)
    pairs = pd.read_csv(data / "pairs.csv")
    manifest = pd.read_csv(data / "manifest.csv")
    rows = []
    jobs = []
    for r in pairs[pairs["attribute"].isin(attributes)].itertuples():
        for a, b, va, vb in ((r.species_a, r.species_b, r.value_a, r.value_b), (r.species_b, r.species_a, r.value_b, r.value_a)):
            photos = manifest[(manifest["species"] == a) & (manifest["split"] == "test")]["image"].tolist()
            jobs += [(a, b, r.part, r.attribute, va, vb, p) for p in photos[:limit]]
    for a, b, part, attr, va, vb, photo in tqdm(jobs, desc="describing"):
        t0 = time.perf_counter()
        res = pipe.describe(data / photo, b, target_species=a, top_k=top_k)
        j = judge(res.traits, part, attr, va, vb)
        ctrl = max((abs(c.effect) for c in res.controls), default=0.0)
        ctrl_rank = max((c.rank_score for c in res.controls), default=0.0)
        ctrl_score = max((abs(c.score) for c in res.controls if np.isfinite(c.score)), default=np.nan)
        rows.append({"target": a, "contrast": b, "part": part, "attribute": attr, "photo": photo, **j,
                     "top_effect": abs(res.traits[0].effect) if res.traits else 0.0, "control_effect": ctrl,
                     "top_rank_score": res.traits[0].rank_score if res.traits else 0.0, "control_rank_score": ctrl_rank,
                     "control_score": ctrl_score, "seconds": time.perf_counter() - t0,
                     "top3": "; ".join(f"{t.phrase} {t.direction}" for t in res.traits[:3])})
    return pd.DataFrame(rows)


def summarise(df: pd.DataFrame) -> pd.DataFrame:
    """Per pair direction: n, top-3 hit rates, direction accuracy, and real vs control effects: the median
    |effect| of the top trait, the median and largest per-photo max |effect| of the random-phrase controls, and
    the share of photos whose top trait is stronger than every control; and the share of photos whose top trait
    has a higher ranking score (what selects traits) than every control. A photo with no trait counts as a miss."""
    df = df.assign(top_beats_controls=df["top_effect"] > df["control_effect"],
                   top_outranks_controls=df["top_rank_score"] > df["control_rank_score"])
    g = df.groupby(["target", "contrast", "part"], sort=False)
    out = g.agg(n=("hit", "size"), top3_exact=("hit", "mean"), top3_part_or_coarser=("hit_coarse", "mean"),
                direction_ok=("direction_ok", "mean"), top_effect=("top_effect", "median"),
                control_median=("control_effect", "median"), control_max=("control_effect", "max"),
                top_beats_controls=("top_beats_controls", "mean"),
                top_outranks_controls=("top_outranks_controls", "mean")).reset_index()
    total = {"target": "ALL", "contrast": "", "part": "", "n": len(df), "top3_exact": df["hit"].mean(),
             "top3_part_or_coarser": df["hit_coarse"].mean(), "direction_ok": df["direction_ok"].mean(),
             "top_effect": df["top_effect"].median(), "control_median": df["control_effect"].median(),
             "control_max": df["control_effect"].max(), "top_beats_controls": df["top_beats_controls"].mean(),
             "top_outranks_controls": df["top_outranks_controls"].mean()}
    return pd.concat([out, pd.DataFrame([total])], ignore_index=True)


def markdown(df: pd.DataFrame) -> str:
    """A GitHub markdown table (pandas' to_markdown needs the optional tabulate package)."""
    def cell(v: object) -> str:
        return f"{v:.3f}" if isinstance(v, float) else str(v)

    lines = ["| " + " | ".join(map(str, df.columns)) + " |", "|" + "---|" * len(df.columns)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in df.itertuples(index=False)]
    return "\n".join(lines)


def save_and_print(df: pd.DataFrame, summary: pd.DataFrame, out: Path | None, note: str = "") -> None:
    """Write the per-photo table to out (when given), print the summary as markdown and the median time."""
    if out:
        df.to_csv(out, index=False)
    print(markdown(summary))
    print(f"median seconds per photo{note}: {df['seconds'].median():.2f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, default=Path("runs/synth"))
    ap.add_argument("--model", type=Path, default=Path("runs/synth-model"))
    ap.add_argument("--scorer", default="color")
    ap.add_argument("--n-per-species", type=int, default=40)
    ap.add_argument("--attributes", default="colour", help="comma-separated designed attributes to test")
    ap.add_argument("--limit", type=int, default=None, help="at most this many test photos per species")
    ap.add_argument("--out", type=Path, default=None, help="CSV of per-photo rows")
    ap.add_argument("--references", type=int, default=16, help="reference photos per species (training split)")
    args = ap.parse_args()
    data = make_species(args.data, n_per_species=args.n_per_species, image_size=128, seed=0)
    if not (args.model / "card.json").is_file():
        rep = train_classifier(data, args.model, device="cpu", image_size=128)
        print(f"trained classifier: test accuracy {rep.accuracy:.3f}")
    df = run(data, args.model, args.scorer, attributes=tuple(args.attributes.split(",")), limit=args.limit,
             references=args.references)
    save_and_print(df, summarise(df), args.out, " (warm references after the first)")


if __name__ == "__main__":
    main()
