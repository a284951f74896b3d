"""Benchmark: every CAM candidate (classifier head x CAM method x layer set) on the synthetic species and on
the Leeds butterflies, with 95 % intervals and paired Finer-vs-plain comparisons, so the default is chosen by
measurement (issue 13). Models are trained once into OUT/models and runs resume per method.

    python -m evaluation.benchmarks.cam_candidates --synthetic runs/species224/data/synthetic-species \
        --leeds ../shared/data/leeds-butterflies --out runs/cam-candidates

Writes OUT/candidates.csv (one row per dataset, head, layer set, method and metric), OUT/paired.csv and
OUT/candidates.md (the tables docs/benchmarks.md quotes).
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

HEADS = ("pooled", "multilayer")
PLAIN = ("gradcam", "layercam")
# Layer sets: the model's own default layer (the deepest it reads), the stride-16 stage output alone, and
# RefineCAM's soft AND over several layers (the taps of a multilayer head, the timm stages of a pooled one).
LAYER_SETS = ("default", "stride16", "refine")
REPORT_METRICS = ("part_pointing", "part_pointing_exact", "part_mass_iou", "mass_iou", "rd@5", "rd@10")


@dataclass
class Candidate:
    """One benchmark run: a dataset, a classifier head and a layer set (several methods share it)."""

    dataset: str
    head: str
    layer_set: str

    @property
    def key(self) -> str:
        return f"{self.dataset}-{self.head}-{self.layer_set}"


def methods_for(layer_set: str) -> list[str]:
    """Plain and Finer methods of one layer set."""
    if layer_set == "refine":  # with last-layer Grad-CAM, the map Finer-CAM is meant to improve on
        return ["refinecam", "finer-refinecam", "refine-gradcam", "finer-refine-gradcam", "refine-layercam",
                "finer-refine-layercam", "gradcam"]
    return ["gradcam", "finer", "layercam", "finer-layercam"]


def stride16_layer(classifier) -> str:
    """The backbone's last stage output at stride 16 (timm feature_info)."""
    info = classifier.backbone.feature_info
    return "backbone." + [f["module"] for f in info if int(f["reduction"]) == 16][-1]


def train_model(data: Path, manifest: Path, folder: Path, head: str, device: str) -> Path:
    """A classifier with the default training settings in `folder` (skipped when its card exists)."""
    from pipeline.train import train_classifier

    if not (folder / "card.json").is_file():
        t0 = time.perf_counter()
        report = train_classifier(data, folder, manifest=manifest, head=head, device=device)
        print(f"{folder.name}: test accuracy {report.accuracy:.4f} in {time.perf_counter() - t0:.0f} s", flush=True)
    return folder


def train_models(name: str, data: Path, manifest: Path, out: Path, device: str) -> dict[str, Path]:
    """One classifier per head type on a dataset (skipped when its card exists)."""
    return {head: train_model(data, manifest, out / "models" / f"{name}-{head}", head, device) for head in HEADS}


def run(synthetic: Path | None, leeds: Path | None, out: Path, limit: int | None = 150,
        leeds_limit: int | None = None, device: str = "cpu") -> tuple[pd.DataFrame, pd.DataFrame]:
    """Run every candidate; returns (summary rows, paired rows) over all datasets."""
    from evaluation.evaluate_cams import leeds_eval_set, paired_comparison, run_benchmark, synthetic_eval_set
    from pipeline.models import load_classifier

    sets = []
    if synthetic is not None:
        sets.append(("synthetic", synthetic, synthetic / "manifest.csv", limit))
    if leeds is not None:
        sets.append(("leeds", leeds, leeds / "manifest.csv", leeds_limit))
    summaries, paired, accuracy = [], [], {}
    for name, data, manifest, lim in sets:
        models = train_models(name, data, manifest, out, device)
        for head, folder in models.items():
            clf = load_classifier(folder, device=device)
            accuracy[f"{name}-{head}"] = clf.card.get("accuracy")
            evalset = (synthetic_eval_set(data, clf, limit=lim) if name == "synthetic"
                       else leeds_eval_set(data, clf, limit=lim))
            for layer_set in LAYER_SETS:
                cand = Candidate(name, head, layer_set)
                layer = stride16_layer(clf) if layer_set == "stride16" else None
                methods = methods_for(layer_set)
                if name == "synthetic" and head == HEADS[0] and layer_set == "default":
                    methods = [*methods, "random-smooth"]  # the chance level part Mass-IoU is read against
                # Synthetic photos are judged by their ground truth alone (no extra forward passes); Leeds,
                # which has no part ground truth, by the relative confidence drop.
                metrics = [] if name == "synthetic" else ["rd@5", "rd@10"]
                res = run_benchmark(clf, evalset, methods, out / "runs" / cand.key, metrics=metrics,
                                    layer=layer, progress=True, batch_size=16)
                vs_gradcam = paired_comparison(res.per_image, pairs=[(m, "gradcam") for m in methods
                                                                     if m.startswith("finer-refine")])
                both = pd.concat([res.paired, vs_gradcam], ignore_index=True)
                for frame, bucket in ((res.summary, summaries), (both, paired)):
                    if not frame.empty:
                        bucket.append(frame.assign(dataset=name, head=head, layer_set=layer_set,
                                                   layer=layer or "model default"))
    summary = pd.concat(summaries, ignore_index=True)
    pairs = pd.concat(paired, ignore_index=True) if paired else pd.DataFrame()
    out.mkdir(parents=True, exist_ok=True)
    summary.to_csv(out / "candidates.csv", index=False)
    pairs.to_csv(out / "paired.csv", index=False)
    (out / "accuracy.json").write_text(json.dumps(accuracy, indent=2))
    (out / "candidates.md").write_text(render(summary, pairs, accuracy) + "\n")
    return summary, pairs


def _cell(rows: pd.DataFrame, metric: str) -> str:
    hit = rows[rows["metric"] == metric]
    if hit.empty:
        return ""
    r = hit.iloc[0]
    return f"{r['mean']:.3f} [{r['lo']:.3f}, {r['hi']:.3f}]"


def render(summary: pd.DataFrame, paired: pd.DataFrame, accuracy: dict) -> str:
    """Markdown: accuracy per model, one candidates table per dataset, then the paired Finer-vs-plain rows."""
    lines = ["Test accuracy: " + ", ".join(f"{k} {v}" for k, v in accuracy.items()), ""]
    for dataset, grp in summary.groupby("dataset", sort=False):
        metrics = [m for m in REPORT_METRICS if m in set(grp["metric"])]
        lines += [f"#### {dataset}", "", "| head | layer set | method | " + " | ".join(metrics) + " |",
                  "|" + "---|" * (len(metrics) + 3)]
        for (head, layer_set, method), rows in grp.groupby(["head", "layer_set", "method"], sort=False):
            lines.append(f"| {head} | {layer_set} | {method} | " + " | ".join(_cell(rows, m) for m in metrics) + " |")
        lines.append("")
    if not paired.empty:
        keep = paired[paired["metric"].isin(["part_pointing", "part_mass_iou", "rd@5", "mass_iou"])]
        lines += ["#### Paired: Finer minus the plain method on the same images", "",
                  "| dataset | head | layer set | method | vs | metric | n | difference [95 % interval] | "
                  "better on | verdict |", "|---|---|---|---|---|---|---|---|---|---|"]
        for r in keep.itertuples():
            lines.append(f"| {r.dataset} | {r.head} | {r.layer_set} | {r.method} | {r.base} | {r.metric} | {r.n} | "
                         f"{r.diff:+.3f} [{r.lo:+.3f}, {r.hi:+.3f}] | {r.better_share:.0%} | {r.verdict} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    """Command-line entry point."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--synthetic", type=Path, help="synthetic species folder (finer-traits synth species ... --size 224)")
    ap.add_argument("--leeds", type=Path, help="Leeds butterflies folder (with manifest.csv)")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--limit", type=int, default=150, help="synthetic test images (balanced over species)")
    ap.add_argument("--leeds-limit", type=int, default=None, help="Leeds test photos (default: all of the pairs)")
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args(argv)
    if args.synthetic is None and args.leeds is None:
        ap.error("give --synthetic and/or --leeds")
    run(args.synthetic, args.leeds, args.out, args.limit, args.leeds_limit, args.device)
    print((args.out / "candidates.md").read_text())


if __name__ == "__main__":
    main()
