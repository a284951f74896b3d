"""Benchmark: how far can the offline colour scorer go on CUB sibling pairs, whatever describe ranks?

describe_cub.py scores describe()'s top-5 traits against CUB's table. This asks what the measurement underneath
allows: with the model's located parts (pipeline.parts) and the colour scorer's palette, every candidate trait
(part, colour) gets a difference, and ideal rankers pick the 5 largest (one per located region and colour, a side
showing the colour on >= 5 % of the part, as describe requires):

- photo-vs-species: the test photo against the mean of the contrast species' training photos (what describe could
  reach with perfect aggregation of its reference photos, on one photo of the target);
- species-vs-species: the mean of the target's training photos against the contrast's (the scorer's view of the
  species, free of the one photo's pose and light);
- random: 5 random candidates, each with the direction photo-vs-species gives it (the floor).

A trait is true / contradicted / unchecked exactly as in describe_cub (CUB difference >= 20 points in its
direction / against it / neither). Pairs: every test photo against every sibling of its family that CUB lists.
Intervals: 95 % bootstrap over test photos.

    python -m evaluation.benchmarks.cub_colour_ceiling --model MODEL_DIR [--cache DIR]

MODEL_DIR: a CUB model with fitted parts (`finer-traits parts fit MODEL_DIR --expert .../cub-attributes`).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from evaluation.benchmarks.bird_parts import load_photos
from evaluation.benchmarks.describe_cub import CubTruth, bootstrap, verdict_shares
from evaluation.benchmarks.describe_synthetic import markdown
from pipeline.models import load_classifier
from pipeline.parts import PartLocator, measure_concepts, photo_activations, region_shares
from pipeline.paths import data_root
from pipeline.scorers.color import ColorScorer, base_colours
from traits.cub import load_cub
from traits.names import normalise_name

GROUP = "bird"
WHOLE = "whole bird"
TOP_K = 5
RANKERS = ("photo-vs-species", "species-vs-species", "random")


def candidate_parts(locator: PartLocator) -> dict[str, tuple[int, ...]]:
    """Part -> concepts it is measured on (() for the whole bird); parts sharing one region keep the first name,
    as describe counts them once."""
    out: dict[str, tuple[int, ...]] = {WHOLE: ()}
    seen: set[tuple[int, ...]] = set()
    for part, concepts in sorted(locator.parts.items()):
        if tuple(concepts) not in seen:
            seen.add(tuple(concepts))
            out[part] = tuple(concepts)
    return out


def part_shares(counts: np.ndarray, parts: dict[str, tuple[int, ...]]) -> np.ndarray:
    """[N, parts, colours] colour shares of each photo on each part (the whole bird where the part misses it)."""
    return np.stack([region_shares(counts, region) for region in parts.values()], axis=1)


def top_traits(diff: np.ndarray, shown: np.ndarray, k: int = TOP_K) -> list[tuple[int, int, str]]:
    """(part index, colour index, direction) of the k largest |diff| [parts, colours] where `shown` holds."""
    score = np.where(shown, np.abs(diff), -np.inf)
    order = np.argsort(-score, axis=None, kind="stable")[:k]
    return [(int(p), int(c), "+" if diff[p, c] > 0 else "-")
            for p, c in zip(*np.unravel_index(order, diff.shape), strict=True) if np.isfinite(score[p, c])]


def run(model: Path, photos_dir: Path, attributes: Path, cache: Path | None = None, seed: int = 0) -> pd.DataFrame:
    """One row per (ranker, test photo, sibling, trait) with its verdict."""
    torch.set_num_threads(2)
    classifier = load_classifier(model, device="cpu")
    locator = PartLocator.load(model)
    if locator is None or not locator.parts:
        raise SystemExit(f"{model} has no fitted parts: run `finer-traits parts fit {model} --expert CUB_ATTRIBUTES`.")
    truth = CubTruth(load_cub(attributes, group=GROUP))
    manifest = pd.read_csv(photos_dir / "manifest.csv")
    manifest = manifest[manifest["species"].map(lambda s: normalise_name(s) in
                                                {normalise_name(c) for c in truth.cub.classes})]
    parts = candidate_parts(locator)
    names, palette = list(parts), base_colours(GROUP)
    shown_at = ColorScorer.crop_policy.shown_at  # describe's floor: a colour on < 5 % of a part is not shown
    shares = {}
    for split in ("train", "test"):
        rows = manifest[manifest["split"] == split].reset_index(drop=True)
        photos = load_photos(classifier, rows, photos_dir, cache / f"{split}-outlines.npz" if cache else None)
        acts = photo_activations(classifier, photos, locator.tap, locator.size)
        measured = measure_concepts(locator, photos, acts, GROUP)
        ok = np.array([lab is not None for lab in measured.labels])
        shares[split] = (rows[ok].reset_index(drop=True), part_shares(measured.counts[ok], parts))
    train, train_shares = shares["train"]
    species_mean = {s: train_shares[(train["species"] == s).to_numpy()].mean(0) for s in train["species"].unique()}
    test, test_shares = shares["test"]
    family = manifest.drop_duplicates("species").set_index("species")["family"]
    rng = np.random.default_rng(seed)
    out = []
    for i, row in test.iterrows():
        target = row["species"]
        for contrast in sorted(s for s in species_mean if family[s] == row["family"] and s != target):
            photo_diff = test_shares[i] - species_mean[contrast]
            # ranker -> (difference, the larger side's share); a target without training photos has no mean
            views = {"photo-vs-species": (photo_diff, np.maximum(test_shares[i], species_mean[contrast]))}
            if target in species_mean:
                views["species-vs-species"] = (species_mean[target] - species_mean[contrast],
                                               np.maximum(species_mean[target], species_mean[contrast]))
            for ranker in RANKERS:
                if ranker == "random":
                    shown = views["photo-vs-species"][1] >= shown_at
                    cells = np.argwhere(shown)
                    pick = cells[rng.choice(len(cells), size=min(TOP_K, len(cells)), replace=False)]
                    traits = [(int(p), int(c), "+" if photo_diff[p, c] > 0 else "-") for p, c in pick]
                elif ranker in views:
                    diff, level = views[ranker]
                    traits = top_traits(diff, level >= shown_at)
                else:
                    continue
                for p, c, direction in traits:
                    verdict, points = truth.verdict(names[p], "colour", palette[c], direction, target, contrast)
                    out.append({"ranker": ranker, "photo": row["image"], "target": target, "contrast": contrast,
                                "family": row["family"], "part": names[p], "colour": palette[c],
                                "direction": direction, "verdict": verdict, "cub_difference": points})
    return pd.DataFrame(out)


def summarise(df: pd.DataFrame, n_boot: int = 1000) -> pd.DataFrame:
    """Per ranker: pairs, traits, verdict shares with 95 % bootstrap intervals over test photos (describe_cub's)."""
    rows = []
    for ranker in RANKERS:
        g = df[df["ranker"] == ranker]
        if g.empty:
            continue
        shares, ci = verdict_shares(g), bootstrap(g, n_boot)
        rows.append({"ranker": ranker, "photos": g["photo"].nunique(),
                     "pairs": g.groupby(["photo", "contrast"]).ngroups, "traits": len(g),
                     **{v: f"{shares[v]:.3f} [{ci[v][0]:.3f}, {ci[v][1]:.3f}]" for v in shares}})
    return pd.DataFrame(rows)


def main(argv: list[str] | None = None) -> None:
    """Measure every test photo against its siblings, print the table, optionally write the per-trait CSV."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    root = data_root()
    ap.add_argument("--model", type=Path, required=True, help="a CUB model folder with fitted parts")
    ap.add_argument("--photos", type=Path, default=root / "cub-photos" if root else None)
    ap.add_argument("--attributes", type=Path, default=root / "cub-attributes" if root else None)
    ap.add_argument("--cache", type=Path, default=None, help="folder for the photos' outlines (reused between runs)")
    ap.add_argument("--out", type=Path, default=None, help="write the per-trait table here (CSV)")
    args = ap.parse_args(argv)
    if args.photos is None or not (args.photos / "manifest.csv").is_file():
        raise SystemExit("CUB photos not found: set FINER_TRAITS_DATA or pass --photos.")
    if args.cache:
        args.cache.mkdir(parents=True, exist_ok=True)
    df = run(args.model, args.photos, args.attributes, args.cache)
    if args.out:
        df.to_csv(args.out, index=False)
    print(markdown(summarise(df)))


if __name__ == "__main__":
    main()
