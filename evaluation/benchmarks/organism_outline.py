"""Benchmark: how well describe()'s weight-free organism outline matches hand-drawn masks, rough and redrawn.

For every test photo of a dataset with masks (a manifest with 'image', 'mask' and 'split' columns: the Leeds
butterflies, a synthetic species folder), the outline is estimated as describe() does (the classifier's plain
Grad-CAM of the labelled species as saliency) with and without the GrabCut refinement; reports mean and median
IoU with the mask, the share of photos under IoU 0.5 and the seconds per photo.

    python -m evaluation.benchmarks.organism_outline --data ../shared/data/leeds-butterflies --model MODEL_DIR
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image
from tqdm.auto import tqdm

from pipeline.cam import explain
from pipeline.models import load_classifier
from pipeline.regions import organism_mask


def run(data: Path, model: Path, limit: int | None = None) -> pd.DataFrame:
    """One row per test photo: IoU and seconds of the rough and the refined outline."""
    clf = load_classifier(model, device="cpu")
    manifest = pd.read_csv(data / "manifest.csv")
    manifest = manifest[manifest["split"] == "test"].head(limit)
    species = "species" if "species" in manifest.columns else "scientific_name"
    rows = []
    for r in tqdm(list(manifest.itertuples()), desc="outlines"):
        img = Image.open(data / r.image).convert("RGB")
        truth = np.asarray(Image.open(data / r.mask).convert("L").resize(img.size, Image.NEAREST)) > 0
        saliency = explain(clf, [img], target=getattr(r, species), method="gradcam").maps.numpy()[0]
        row = {"image": r.image}
        for name, refine in (("rough", False), ("refined", True)):
            t0 = time.perf_counter()
            est = organism_mask(img, saliency=saliency, refine=refine)
            row[f"{name}_seconds"] = time.perf_counter() - t0
            row[f"{name}_iou"] = 0.0 if est is None else float((est & truth).sum() / max((est | truth).sum(), 1))
        rows.append(row)
    return pd.DataFrame(rows)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, required=True, help="folder with manifest.csv (image, mask, split)")
    ap.add_argument("--model", type=Path, required=True, help="a classifier trained on that data")
    ap.add_argument("--limit", type=int, default=None, help="at most this many test photos")
    ap.add_argument("--out", type=Path, default=None, help="CSV of per-photo rows")
    args = ap.parse_args()
    df = run(args.data, args.model, args.limit)
    if args.out:
        df.to_csv(args.out, index=False)
    print("| outline | photos | mean IoU | median IoU | IoU < 0.5 | seconds / photo |")
    print("|---|---|---|---|---|---|")
    for name in ("rough", "refined"):
        iou = df[f"{name}_iou"]
        print(f"| {name} | {len(df)} | {iou.mean():.3f} | {iou.median():.3f} | {(iou < 0.5).mean():.3f} | "
              f"{df[f'{name}_seconds'].mean():.3f} |")


if __name__ == "__main__":
    main()
