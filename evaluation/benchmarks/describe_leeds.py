"""Benchmark: describe() on the Leeds butterflies, checked against the field-guide descriptions.

For each pair (default: Vanessa atalanta vs Vanessa cardui, Heliconius charitonius vs Heliconius erato), every
test photo of the target species is described against the contrast species with the default offline pipeline
(ColorScorer). Reported: the share of photos whose top-5 traits include one marked `confirmed`, and precision /
recall / F1 / direction accuracy of the top-5 against the expert difference set (traits.scores.score), with the
random-phrase controls' largest |effect| next to the top real trait's.

    python -m evaluation.benchmarks.describe_leeds --model MODEL_DIR [--scorer color] [--limit N]
        [--maps finer|flat|random|gradcam] [--side upper|under]

--maps replaces describe's Finer-CAM maps (evaluation.benchmarks.ablation) to measure what they carry. --side says
which side of the butterflies the photos show (all 55 test photos of V. atalanta and H. charitonius show the
upperside, checked by eye on 2026-12-03): traits then carry it, and the field guide's statements about the other
side ('Below, ...') are neither matched nor counted in the expert difference set.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import pandas as pd
from tqdm.auto import tqdm

from evaluation.benchmarks.ablation import MAPS, load_pipeline
from evaluation.benchmarks.describe_synthetic import save_and_print
from pipeline.paths import leeds_root
from traits.match import expert_differences
from traits.model import TraitDifference
from traits.scores import score

PAIRS = (("Vanessa atalanta", "Vanessa cardui"), ("Heliconius charitonius", "Heliconius erato"))


def run(leeds: Path, model: Path, scorer: str = "color", pairs=PAIRS, limit: int | None = None,
        top_k: int = 5, maps: str = "finer", side: str | None = None) -> pd.DataFrame:
    """One row per described photo."""
    pipe = load_pipeline(model, maps=maps, scorer=scorer, expert=leeds / "species.csv", device="cpu", progress=True)
    manifest = pd.read_csv(leeds / "manifest.csv")
    rows = []
    for target, contrast in pairs:
        expert = [d for d in expert_differences(pipe.expert[target], pipe.expert[contrast], group="butterfly")
                  if side is None or d.trait.side in (None, side)]
        photos = manifest[(manifest["scientific_name"] == target) & (manifest["split"] == "test")]["image"].tolist()
        for photo in tqdm(photos[:limit], desc=f"{target} vs {contrast}"):
            t0 = time.perf_counter()
            r = pipe.describe(leeds / photo, contrast, target_species=target, top_k=top_k, side=side)
            secs = time.perf_counter() - t0
            gens = [TraitDifference(trait=t.trait, direction=t.direction, target=target, contrast=contrast,
                                    score=float(top_k - t.rank), phrase=t.phrase) for t in r.traits]
            s = score(gens, expert, group="butterfly")
            statuses = [t.expert_status for t in r.traits]
            rows.append({"target": target, "contrast": contrast, "photo": photo, "n_traits": len(r.traits),
                         "any_confirmed": "confirmed" in statuses, "n_confirmed": statuses.count("confirmed"),
                         "n_contradicted": statuses.count("contradicted"),
                         "in_region": sum(bool(t.in_region) for t in r.traits), "precision": s.precision,
                         "recall": s.recall, "f1": s.f1, "direction_accuracy": s.direction_accuracy,
                         "n_expert": len(expert), "uncertain": r.uncertain,
                         "top_effect": abs(r.traits[0].effect) if r.traits else 0.0,
                         "control_effect": max((abs(c.effect) for c in r.controls), default=0.0),
                         "seconds": secs, "traits": "; ".join(f"{t.phrase} {t.direction} [{t.expert_status}]"
                                                              for t in r.traits)})
    return pd.DataFrame(rows)


def summarise(df: pd.DataFrame) -> pd.DataFrame:
    """Per pair: photos, share with a confirmed trait in the top 5, mean P/R/F1/direction accuracy, controls."""
    g = df.groupby(["target", "contrast"], sort=False)
    return g.agg(photos=("photo", "size"), confirmed_rate=("any_confirmed", "mean"),
                 precision=("precision", "mean"), recall=("recall", "mean"), f1=("f1", "mean"),
                 direction_accuracy=("direction_accuracy", "mean"), contradicted_per_photo=("n_contradicted", "mean"),
                 in_region=("in_region", "mean"), uncertain=("uncertain", "mean"), top_effect=("top_effect", "median"),
                 control_effect=("control_effect", "max")).reset_index()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", type=Path, required=True, help="a model folder trained on the Leeds manifest")
    ap.add_argument("--scorer", default="color")
    ap.add_argument("--limit", type=int, default=None)
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--maps", choices=MAPS, default="finer", help="replace the Finer-CAM maps (ablation)")
    ap.add_argument("--side", choices=("upper", "under"), default=None,
                    help="the side of the butterflies the photos show (default: not stated)")
    args = ap.parse_args()
    leeds = leeds_root()
    if leeds is None:
        raise SystemExit("Leeds butterflies not found: set FINER_TRAITS_DATA.")
    df = run(leeds, args.model, args.scorer, limit=args.limit, maps=args.maps, side=args.side)
    save_and_print(df, summarise(df), args.out)


if __name__ == "__main__":
    main()
