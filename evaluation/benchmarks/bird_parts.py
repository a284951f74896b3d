"""Benchmark: do DFF part concepts (pipeline.parts) read a bird part's colour better than the whole bird does?

Concepts are fitted and named on the CUB training photos; on every TEST photo and CUB colour part, the top palette
colour of a region counts as right when it is one of the colours CUB annotators gave that part of that species on at
least 30 % of its photos. Arms: (a) the located part (the whole bird where the part stays unlocated), (b) the whole
bird (the organism outline), (c) a random other concept set of the same size, (d) a random blob of the organism
with the located part's pixel count (a region of the same size placed anywhere on the bird). Arm (a) is what
describe measures. Accuracies with 95 % Wilson intervals, per part and pooled; the located-minus-whole difference with a 95 % bootstrap interval over photos. Several taps, input sizes and k.

    python -m evaluation.benchmarks.bird_parts --model runs/cub-bird --taps blocks.2,blocks.4,blocks.6 --sizes 0,448 --ks 6,10,16 \
        --cache /tmp/bird-parts

Data: FINER_TRAITS_DATA (default ../shared/data) / cub-photos and cub-attributes.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from pipeline.images import load_image
from pipeline.models import load_classifier
from pipeline.parts import (
    PartLocator,
    PhotoSet,
    colour_counts,
    expert_colours,
    fit_parts,
    measure_concepts,
    photo_activations,
    prepare_photos,
    region_shares,
    work_image,
)
from pipeline.paths import data_root
from pipeline.scorers.color import base_colours
from traits.cub import load_cub
from traits.scores import wilson_interval

GROUP = "bird"
# CUB's colour parts (plus 'tail', the vocabulary's part, from CUB's upper and under tail).
PARTS = ("crown", "forehead", "nape", "throat", "eye", "bill", "breast", "belly", "underparts", "back", "upperparts",
         "wing", "primaries", "tail", "upper tail", "under tail", "leg")
MIN_SHARE = 0.30  # a colour counts as the species' colour of a part from this share of CUB's photos
ARMS = ("located", "whole", "random_concept", "random_blob")


def load_photos(classifier: torch.nn.Module, manifest: pd.DataFrame, root: Path, cache: Path | None) -> PhotoSet:
    """Prepared photos (outlines computed once and kept in `cache`, an .npz without pickles)."""
    paths = [str(root / p) for p in manifest["image"]]
    species = list(manifest["species"])
    if cache is not None and cache.is_file():
        stored = np.load(cache, allow_pickle=False)
        return PhotoSet([work_image(load_image(p)) for p in paths],
                        [stored[f"o{i}"] if f"o{i}" in stored else None for i in range(len(paths))], species)
    photos = prepare_photos(classifier, paths, species, progress=True)
    if cache is not None:
        np.savez_compressed(cache, **{f"o{i}": o for i, o in enumerate(photos.organisms) if o is not None})
    return photos


def _blob(organism_labels: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """A blob of the organism with n pixels around a random organism pixel (label 0 inside, -1 elsewhere)."""
    ys, xs = np.nonzero(organism_labels >= 0)
    seed = rng.integers(len(ys))
    d = (ys - ys[seed]) ** 2 + (xs - xs[seed]) ** 2
    keep = np.argsort(d, kind="stable")[:max(1, n)]
    out = np.full(organism_labels.shape, -1)
    out[ys[keep], xs[keep]] = 0
    return out


def evaluate(locator: PartLocator, photos: PhotoSet, counts: np.ndarray, labels: list, part_colours: dict,
             seed: int = 0) -> pd.DataFrame:
    """One row per (photo, part) with a hit (0/1) for each arm."""
    palette = base_colours(GROUP)
    rng = np.random.default_rng(seed)
    rows = []
    for part in PARTS:
        expected = expert_colours(part_colours, photos.species, part, palette)
        region = locator.parts.get(part)
        for i in range(len(photos.images)):
            if labels[i] is None or not np.isfinite(expected[i]).all() or not (expected[i] >= MIN_SHARE).any():
                continue
            good = expected[i] >= MIN_SHARE
            c = counts[i:i + 1]
            size = len(region) if region else 1
            others = [j for j in range(locator.k) if not region or j not in region]
            rand = tuple(rng.choice(others, size=min(size, len(others)), replace=False))
            shares = {"whole": region_shares(c, ()), "random_concept": region_shares(c, rand),
                      "located": region_shares(c, region) if region else region_shares(c, ())}
            n_px = int(np.isin(labels[i], region).sum()) if region else 0
            if n_px:
                blob = colour_counts(photos.images[i], _blob(labels[i], n_px, rng), 1, GROUP)[:1]
                shares["random_blob"] = region_shares(blob[None], (0,))
            else:
                shares["random_blob"] = shares["whole"]
            row = {"photo": i, "part": part, "located_part": bool(region)}
            row.update({arm: int(good[int(np.argmax(shares[arm][0]))]) for arm in ARMS})
            rows.append(row)
    return pd.DataFrame(rows)


def _bootstrap_diff(df: pd.DataFrame, a: str, b: str, n: int = 2000, seed: int = 0) -> tuple[float, float, float]:
    """Mean of a - b over rows, with a 95 % bootstrap interval resampling photos (rows of one photo together)."""
    per_photo = df.assign(d=df[a] - df[b]).groupby("photo")["d"].agg(["sum", "count"])
    s, c = per_photo["sum"].to_numpy(), per_photo["count"].to_numpy()
    if c.sum() == 0:
        return float("nan"), float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    idx = rng.integers(len(s), size=(n, len(s)))
    boots = s[idx].sum(1) / c[idx].sum(1)
    return float(s.sum() / c.sum()), float(np.percentile(boots, 2.5)), float(np.percentile(boots, 97.5))


def summarise(df: pd.DataFrame) -> list[dict]:
    """Per part and pooled: n, accuracy of every arm with its Wilson interval, located - whole with its interval."""
    out = []
    groups = [(p, df[df["part"] == p]) for p in PARTS] + [("pooled: located parts", df[df["located_part"]]),
                                                          ("pooled: all parts", df)]
    for name, sub in groups:
        if sub.empty:
            continue
        row = {"part": name, "n": len(sub), "is_located": bool(sub["located_part"].all())}
        for arm in ARMS:
            lo, hi = wilson_interval(int(sub[arm].sum()), len(sub))
            row[arm] = (round(float(sub[arm].mean()), 3), round(lo, 3), round(hi, 3))
        row["located_minus_whole"] = tuple(round(v, 3) for v in _bootstrap_diff(sub, "located", "whole"))
        out.append(row)
    return out


def _fmt(v: tuple) -> str:
    return f"{v[0]:.3f} ({v[1]:.2f}-{v[2]:.2f})"


def _diff(v: tuple) -> str:
    return f"{v[0]:+.3f} ({v[1]:+.2f} to {v[2]:+.2f})"


def print_table(title: str, rows: list[dict]) -> None:
    """A markdown table of summarise() rows."""
    print(f"\n### {title}\n")
    print("| part | n | located? | " + " | ".join(ARMS) + " | located - whole |")
    print("|---" * (4 + len(ARMS)) + "|")
    for r in rows:
        print(f"| {r['part']} | {r['n']} | {'yes' if r['is_located'] else 'no'} | "
              + " | ".join(_fmt(r[a]) for a in ARMS) + f" | {_diff(r['located_minus_whole'])} |")


def main(argv: list[str] | None = None) -> None:
    """Fit on the training split for each tap and k, measure on the test split, print tables, write JSON."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", type=Path, required=True, help="A CUB model folder from `finer-traits train`.")
    ap.add_argument("--data", type=Path, default=None, help="cub-photos folder (default FINER_TRAITS_DATA/cub-photos).")
    ap.add_argument("--expert", type=Path, default=None, help="CUB attribute folder (default .../cub-attributes).")
    ap.add_argument("--taps", default="blocks.4")
    ap.add_argument("--ks", default="10")
    ap.add_argument("--sizes", default="0", help="Input sides for the backbone (0: the classifier's own).")
    ap.add_argument("--cache", type=Path, default=None, help="Folder for the photos' outlines (reused between runs).")
    ap.add_argument("--out", type=Path, default=None, help="JSON file for all numbers.")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    root = data_root()
    if root is None and (args.data is None or args.expert is None):
        raise SystemExit("CUB data not found: set FINER_TRAITS_DATA or pass --data and --expert.")
    data = args.data or root / "cub-photos"
    cub = load_cub(args.expert or root / "cub-attributes", GROUP)
    part_colours = {c: cub.part_colours(c) for c in cub.classes}
    clf = load_classifier(args.model, device="cpu")
    manifest = pd.read_csv(data / "manifest.csv")
    if args.cache:
        args.cache.mkdir(parents=True, exist_ok=True)
    photos = {split: load_photos(clf, manifest[manifest["split"] == split], data,
                                 args.cache / f"{split}-outlines.npz" if args.cache else None)
              for split in ("train", "test")}
    results = []
    for tap, size in ((t, int(z) or None) for t in args.taps.split(",") for z in args.sizes.split(",")):
        acts = {split: photo_activations(clf, p, tap, size) for split, p in photos.items()}
        for k in (int(v) for v in args.ks.split(",")):
            t0 = time.perf_counter()
            loc = fit_parts(clf, photos["train"], part_colours, PARTS, GROUP, k=k, tap=tap, size=size,
                            activations=acts["train"])
            measured = measure_concepts(loc, photos["test"], acts["test"], GROUP)
            df = evaluate(loc, photos["test"], measured.counts, measured.labels, part_colours)
            rows = summarise(df)
            title = (f"tap {tap}, input {size or 'own'}, k {k}: located {sorted(p for p in loc.parts)} "
                     f"({time.perf_counter() - t0:.0f} s)")
            print_table(title, rows)
            results.append({"tap": tap, "size": size, "k": k, "parts": {p: list(c) for p, c in loc.parts.items()},
                            "naming": loc.info["naming"], "summary": rows})
    if args.out:
        args.out.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
