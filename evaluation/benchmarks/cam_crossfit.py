"""Benchmark: the default Finer map against last-layer Grad-CAM on the Leeds butterflies, cross-fitted over K
folds so every photo is held out once (issue 13: the test split leaves some directions with under 20 photos).

    python -m evaluation.benchmarks.cam_crossfit --leeds ../shared/data/leeds-butterflies --out runs/cam-crossfit

All Leeds photos (train and test of the manifest) are split into K folds, stratified by species and seeded. For each
fold the default classifier (multilayer head, the default training settings) is trained on the other folds into
OUT/models/fold-K, and the model card's CAM method and `gradcam` explain the fold's photos of the default pairs,
each against its partner (RD@5 %, RD@10 %, organism share = map mass inside the hand-drawn mask). The folds are
pooled: per direction n, means and the paired difference Finer minus Grad-CAM with its 95 % t-interval (the
interval cam_candidates uses). Fold manifests go to OUT/folds (the data folder is only read). A rerun skips
trained folds and finished methods.

Writes OUT/crossfit.csv (one row per photo, direction and method, with its fold), OUT/crossfit_paired.csv and
OUT/crossfit.md (the table docs/benchmarks.md quotes).
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd

from evaluation.benchmarks.cam_candidates import train_model
from evaluation.evaluate_cams import LEEDS_PAIRS, leeds_eval_set, paired_comparison, run_benchmark
from pipeline.datasets import read_dataset
from traits.errors import BadValueError, DatasetError, FinerTraitsError
from traits.io import atomic_write, write_json_atomic, write_text_atomic

HEAD = "multilayer"  # the default head (pipeline.train.train_classifier); its card names the default CAM method
BASE = "gradcam"  # last-layer Grad-CAM, the map the acceptance check compares against
METRICS = ("rd@5", "rd@10")
MAX_ORGANISM_LOSS = 0.05  # issue 13: Finer's organism share may not fall below Grad-CAM's by more than this


def stratified_folds(species: pd.Series, k: int = 3, seed: int = 0) -> pd.Series:
    """Fold id (0..k-1) per row: each species shuffled (seeded) and dealt round the folds, the deal carrying on
    from one species to the next, so every species' fold counts and the fold sizes differ by at most one."""
    if isinstance(k, bool) or not isinstance(k, int) or not 2 <= k <= species.value_counts().min():
        raise BadValueError(f"The number of folds must be a whole number from 2 to the photos of the rarest "
                            f"species ({species.value_counts().min()}), not {k!r}.", "Use e.g. --folds 3.")
    rng = np.random.default_rng(seed)
    out = pd.Series(-1, index=species.index, dtype=int)
    dealt = 0
    for _, idx in sorted(species.groupby(species).groups.items()):
        idx = np.array(sorted(idx))
        rng.shuffle(idx)
        out.loc[idx] = (dealt + np.arange(len(idx))) % k
        dealt += len(idx)
    return out


def fold_manifest(frame: pd.DataFrame, folds: pd.Series, fold: int) -> pd.DataFrame:
    """A training manifest of the photos in `frame` (read_dataset rows): fold `fold` is the test split, the rest
    train. Paths are absolute, so the manifest can live anywhere and the data folder is never written to."""
    manifest = pd.DataFrame({"image": frame["path"], "species": frame["species"],
                             "split": np.where(folds == fold, "test", "train")})
    if "mask" in frame:
        manifest.insert(1, "mask", frame["mask"])
    if "common_name" in frame:
        manifest["common_name"] = frame["common_name"]
    return manifest


def write_fold_manifests(data: Path, out: Path, k: int, seed: int) -> list[Path]:
    """OUT/folds/fold-<i>.csv for every fold of DATA/manifest.csv; refuses an OUT made with other folds."""
    settings = {"data": str(data.resolve()), "folds": k, "seed": seed}
    record = out / "folds" / "folds.json"
    if record.is_file() and json.loads(record.read_text()) != settings:
        raise DatasetError(f"{out} holds a cross-fit with other settings ({record.read_text().strip()}).",
                           "Use another --out, or the same --folds and --seed.")
    frame = read_dataset(data, data / "manifest.csv").frame
    folds = stratified_folds(frame["species"], k, seed)
    paths = []
    for i in range(k):
        path = out / "folds" / f"fold-{i}.csv"
        path.parent.mkdir(parents=True, exist_ok=True)
        manifest = fold_manifest(frame, folds, i)
        atomic_write(path, lambda tmp, m=manifest: m.to_csv(tmp, index=False))
        paths.append(path)
    write_json_atomic(record, settings)
    return paths


def _seed_feature_cache(models: Path, folder: Path) -> None:
    """Copy fold 0's backbone feature cache into a later fold's model folder: the same photos through the same
    backbone, so only the linear head is trained again (the cache is keyed by file and backbone)."""
    first = models / "fold-0" / ".cache"
    if first.is_dir() and not (folder / ".cache").exists() and folder.name != "fold-0":
        shutil.copytree(first, folder / ".cache")


def evaluate_fold(data: Path, manifest: Path, folder: Path, out: Path, device: str) -> tuple[pd.DataFrame, dict]:
    """The fold's held-out photos of the default pairs explained by the card's CAM method and Grad-CAM."""
    from pipeline.models import load_classifier

    clf = load_classifier(folder, device=device)
    method = clf.card["cam"]["method"]
    evalset = leeds_eval_set(data, clf, manifest=manifest)
    res = run_benchmark(clf, evalset, [method, BASE], out, metrics=list(METRICS), progress=True, batch_size=16)
    info = {"method": method, "accuracy": clf.card.get("accuracy"), "n_test": clf.card["training"]["n_test"]}
    return res.per_image, info


def run(data: Path, out: Path, k: int = 3, seed: int = 0, device: str = "cpu") -> tuple[pd.DataFrame, pd.DataFrame]:
    """Train and evaluate every fold (resuming), pool them; returns (per-photo rows, per-direction paired rows)."""
    manifests = write_fold_manifests(data, out, k, seed)
    per_image, folds = [], {}
    for i, manifest in enumerate(manifests):
        folder = out / "models" / f"fold-{i}"
        _seed_feature_cache(out / "models", folder)
        train_model(data, manifest, folder, HEAD, device)
        rows, folds[i] = evaluate_fold(data, manifest, folder, out / "runs" / f"fold-{i}", device)
        per_image.append(rows.assign(fold=i))
    pooled = pd.concat(per_image, ignore_index=True)
    methods = {f["method"] for f in folds.values()}
    if len(methods) != 1:
        raise DatasetError(f"The fold models name different CAM methods ({sorted(methods)}).",
                           "Delete OUT/models and rerun, so every fold is trained with today's defaults.")
    method = methods.pop()
    paired = pooled_comparison(pooled, method)
    atomic_write(out / "crossfit.csv", lambda tmp: pooled.to_csv(tmp, index=False))
    atomic_write(out / "crossfit_paired.csv", lambda tmp: paired.to_csv(tmp, index=False))
    write_json_atomic(out / "folds.json", {str(i): f for i, f in folds.items()})
    write_text_atomic(out / "crossfit.md", render(paired, folds, k, seed, fold_differences(pooled, method)) + "\n")
    return pooled, paired


def directions(pairs=LEEDS_PAIRS) -> list[tuple[str, str]]:
    """Both directions (target, contrast) of each pair, in the order of the docs table."""
    return [d for a, b in pairs for d in ((a, b), (b, a))]


def pooled_comparison(per_image: pd.DataFrame, method: str) -> pd.DataFrame:
    """Paired Finer-minus-Grad-CAM rows per direction and over all directions (RD@5, RD@10, organism share)."""
    parts = []
    groups = [(f"{t} vs {c}", (per_image["species"] == t) & (per_image["contrast_species"] == c))
              for t, c in directions()] + [("all directions", per_image["species"].notna())]
    for name, sel in groups:
        rows = paired_comparison(per_image[sel], metrics=[*METRICS, "mass_iou"], pairs=[(method, BASE)])
        parts.append(rows.assign(direction=name))
    return pd.concat(parts, ignore_index=True)


def fold_differences(per_image: pd.DataFrame, method: str, metric: str = "rd@5") -> pd.DataFrame:
    """Mean paired difference (Finer minus Grad-CAM) per direction and fold: the pooled interval counts photos,
    not fold models, so this shows whether every fold model agrees."""
    keys = ["image", "species", "contrast_species", "fold"]
    wide = per_image.pivot_table(index=keys, columns="method", values=metric).reset_index()
    wide["direction"] = wide["species"] + " vs " + wide["contrast_species"]
    wide["diff"] = wide[method] - wide[BASE]
    order = [f"{t} vs {c}" for t, c in directions()]
    return wide.pivot_table(index="direction", columns="fold", values="diff").reindex(order).dropna(how="all")


def _short(direction: str) -> str:
    """'Vanessa atalanta vs Vanessa cardui' -> 'V. atalanta vs V. cardui' ('all directions' stays)."""
    if " vs " not in direction:
        return direction
    return " vs ".join(f"{s.split()[0][0]}. {' '.join(s.split()[1:])}" if " " in s else s
                       for s in direction.split(" vs "))


def render(paired: pd.DataFrame, folds: dict, k: int, seed: int, by_fold: pd.DataFrame | None = None) -> str:
    """Markdown: fold accuracies, one row per direction with the two acceptance conditions, then (when given) the
    mean RD@5 difference of each fold model."""
    acc = ", ".join(f"fold {i} {f['accuracy']:.3f} (n={f['n_test']})" for i, f in folds.items())
    lines = [f"{k} folds (seed {seed}), held-out accuracy per fold model: {acc}.", "",
             "| direction | n | RD@5 % Finer / Grad-CAM | paired difference [95 %] | organism share Finer / Grad-CAM "
             "| paired difference [95 %] | RD@5 interval above 0 |", "|---|---|---|---|---|---|---|"]
    for name, grp in paired.groupby("direction", sort=False):
        rd, org = grp[grp["metric"] == "rd@5"].iloc[0], grp[grp["metric"] == "mass_iou"].iloc[0]
        meets = "yes" if rd["lo"] > 0 and org["lo"] > -MAX_ORGANISM_LOSS else "**no**"
        lines.append(f"| {_short(name)} | {rd['n']} | {rd['mean']:.3f} / {rd['base_mean']:.3f} | "
                     f"{rd['diff']:+.3f} [{rd['lo']:+.3f}, {rd['hi']:+.3f}] | {org['mean']:.3f} / "
                     f"{org['base_mean']:.3f} | {org['diff']:+.3f} [{org['lo']:+.3f}, {org['hi']:+.3f}] | {meets} |")
    if by_fold is not None and not by_fold.empty:
        lines += ["", "Mean RD@5 % difference (Finer minus Grad-CAM) of each fold model on its held-out photos:", "",
                  "| direction | " + " | ".join(f"fold {f}" for f in by_fold.columns) + " |",
                  "|---|" + "---|" * len(by_fold.columns)]
        lines += [f"| {_short(d)} | " + " | ".join(f"{v:+.3f}" for v in row) + " |" for d, row in by_fold.iterrows()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    """Command-line entry point."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--leeds", type=Path, required=True, help="Leeds butterflies folder (with manifest.csv)")
    ap.add_argument("--out", type=Path, required=True, help="output folder (folds, fold models, tables)")
    ap.add_argument("--folds", type=int, default=3, help="number of folds (default 3)")
    ap.add_argument("--seed", type=int, default=0, help="seed of the fold split (default 0)")
    ap.add_argument("--threads", type=int, default=2, help="torch CPU threads (default 2)")
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args(argv)
    import torch

    torch.set_num_threads(args.threads)
    try:
        run(args.leeds, args.out, args.folds, args.seed, args.device)
    except FinerTraitsError as exc:  # a wrong option or folder: its message and fix, not a traceback
        ap.exit(2, f"error: {exc}\n")
    print((args.out / "crossfit.md").read_text())


if __name__ == "__main__":
    main()
