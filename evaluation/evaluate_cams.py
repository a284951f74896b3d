"""Benchmark tables for CAM methods: per-image metrics, method x metric tables with 95 % intervals, baselines,
and how well each ground-truth-free metric agrees with the ground truth (rank correlation with Mass-IoU).

    from evaluation.evaluate_cams import synthetic_eval_set, run_benchmark
    evalset = synthetic_eval_set("data/synth-species", classifier)
    result = run_benchmark(classifier, evalset, ["gradcam", "finer", "random", "ones"], "runs/cams")
    print(result.table)

Files written to OUT: per_image.csv (one row per image x method), summary.csv (method, metric, n, mean, lo, hi),
correlations.csv, by_pair.csv (per target-vs-contrast direction, when there are contrasts), table.md, run.json, and per_image/<method>.csv, which makes a rerun with the same settings
skip finished methods (resume at method granularity: cheap and never mixes two configurations).
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from PIL import Image
from scipy.stats import kendalltau, spearmanr, wilcoxon
from scipy.stats import t as student_t
from tqdm.auto import tqdm

from evaluation import baselines
from evaluation import cam_metrics as cm
from pipeline.cam import explain, parse_method
from pipeline.datasets import read_dataset
from traits.errors import (
    DatasetError,
    MissingValueError,
    UnknownChoiceError,
    UnknownSpeciesError,
)
from traits.io import atomic_write, make_folder, write_text_atomic

# +1: higher is better, -1: lower is better. Names are the per-image CSV columns.
GT_FREE = {"rd@5": 1, "rd@10": 1, "deletion": -1, "insertion": 1, "morf": -1, "lerf": 1, "road": 1,
           "avg_drop": -1, "increase": 1, "coherency": 1, "complexity": -1, "adcc": 1, "arcc": 1}
GROUND_TRUTH = {"mass_iou": 1, "pointing": 1, "roc_auc": 1, "part_mass_iou": 1, "part_pointing": 1,
                "part_pointing_exact": 1}
# Pointing game as Zhang et al. (ECCV 2016) play it: a hit within 15 px of the part at 224 px (scaled with the
# input size); `part_pointing_exact` is the strict variant (the maximum inside the part itself).
POINTING_TOLERANCE_AT_224 = 15
DIRECTION = {**GT_FREE, **GROUND_TRUTH}
METRIC_SETS = {
    # fast: a few forward passes per image and method (Leeds on 2 CPU cores in minutes)
    "fast": ("rd@5", "rd@10", "avg_drop", "increase", "complexity"),
    # full: adds deletion/insertion (21 passes each), ROAD (8 sparse solves) and the coherency re-explanation
    "full": ("rd@5", "rd@10", "deletion", "insertion", "morf", "lerf", "road", "avg_drop", "increase",
             "coherency", "complexity", "adcc", "arcc"),
}
CAM_METHODS = ("gradcam", "gradcam++", "layercam", "finer", "finer-layercam", "finer-gradcam++", "refinecam",
               "finer-refinecam", "refine-gradcam", "finer-refine-gradcam", "refine-layercam", "finer-refine-layercam")
SCORECAM_METHODS = ("scorecam", "finer-scorecam")
BASELINE_METHODS = ("random", "random-smooth", "ones", "constant", "centre")
LEEDS_METHODS = ("gradcam", "finer", "layercam", "finer-layercam")
LEEDS_PAIRS = (("Vanessa atalanta", "Vanessa cardui"), ("Heliconius charitonius", "Heliconius erato"))


@dataclass
class EvalSet:
    """Images to explain: columns path, species, target, contrast (-1 = none), mask, parts, diff_parts."""

    frame: pd.DataFrame
    name: str
    source: str = ""
    part_names: dict[int, str] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.frame)


@dataclass
class BenchmarkResult:
    """Per-image rows, the summary (mean and 95 % interval), metric correlations, the markdown table and the
    paired Finer-vs-plain comparison."""

    per_image: pd.DataFrame
    summary: pd.DataFrame
    correlations: pd.DataFrame
    table: str
    out: Path
    paired: pd.DataFrame = field(default_factory=pd.DataFrame)


# ------------------------------------------------------------------------------------------------ datasets

def _class_index(classifier, species: str, where: str) -> int:
    try:
        return classifier.index(species)
    except UnknownSpeciesError as exc:
        raise DatasetError(f"Species {species!r} of {where} is not a class of this classifier "
                           f"({classifier.num_classes} classes).",
                           "Evaluate with a model trained on this dataset (omit --model for synthetic data to "
                           "train one).") from exc


def _subset(frame: pd.DataFrame, limit: int | None, seed: int) -> pd.DataFrame:
    """At most `limit` rows, balanced over species and seeded, so --limit keeps every class represented."""
    if limit is None or limit >= len(frame):
        return frame.reset_index(drop=True)
    shuffled = frame.sample(frac=1.0, random_state=seed)
    shuffled["_k"] = shuffled.groupby("species").cumcount()
    return shuffled.sort_values(["_k", "species"]).head(limit).drop(columns="_k").reset_index(drop=True)


def _read_split(data_dir: Path, split: str, manifest: Path | None = None) -> pd.DataFrame:
    # manifest: another split of the same photos (e.g. a cross-fitting fold); default DATA/manifest.csv.
    manifest = manifest or data_dir / "manifest.csv"
    if not manifest.is_file():
        raise DatasetError(f"{data_dir} has no manifest.csv.", "Pass the dataset folder that holds manifest.csv.")
    frame = read_dataset(data_dir, manifest).split(split)
    if frame.empty:
        raise DatasetError(f"The {split!r} split of {manifest} is empty.", "Use --split train, or check the manifest.")
    return frame.copy()


def synthetic_eval_set(data_dir: str | Path, classifier, split: str = "test", limit: int | None = None,
                       seed: int = 0) -> EvalSet:
    """Images of a synthetic dataset (evaluation.synthetic layout); species datasets get contrast = sibling
    and diff_parts = the part ids that differ between the sibling pair (from pairs.csv)."""
    data_dir = Path(data_dir)
    frame = _read_split(data_dir, split)
    meta = json.loads((data_dir / "dataset.json").read_text()) if (data_dir / "dataset.json").is_file() else {}
    parts_json = data_dir / "parts.json"
    part_names = {int(k): v for k, v in json.loads(parts_json.read_text()).items()} if parts_json.is_file() else {}
    part_ids = {v: k for k, v in part_names.items()}
    frame["target"] = [_class_index(classifier, s, data_dir.name) for s in frame["species"]]
    frame["contrast"] = -1
    frame["contrast_species"] = ""
    frame["diff_parts"] = ""
    siblings = {s["name"]: s.get("sibling", "") for s in meta.get("species", []) if s.get("sibling")}
    if siblings:
        pairs = pd.read_csv(data_dir / "pairs.csv") if (data_dir / "pairs.csv").is_file() else pd.DataFrame()
        diff: dict[tuple[str, str], set[int]] = {}
        for row in pairs.itertuples():
            ids = {part_ids[row.part]} if row.part in part_ids else set()
            diff.setdefault((row.species_a, row.species_b), set()).update(ids)
            diff.setdefault((row.species_b, row.species_a), set()).update(ids)
        frame["contrast_species"] = [siblings.get(s, "") for s in frame["species"]]
        frame["contrast"] = [_class_index(classifier, c, data_dir.name) if c else -1 for c in frame["contrast_species"]]
        frame["diff_parts"] = [";".join(str(i) for i in sorted(diff.get((s, c), ())))
                               for s, c in zip(frame["species"], frame["contrast_species"], strict=True)]
    if "parts" in frame:
        frame["parts"] = [str((data_dir / p).resolve()) if isinstance(p, str) else None for p in frame["parts"]]
    name = meta.get("name", "synthetic-species" if siblings else "synthetic-shapes")
    return EvalSet(_subset(frame, limit, seed), name, str(data_dir.resolve()), part_names)


def leeds_eval_set(data_dir: str | Path, classifier, pairs: Sequence[tuple[str, str]] = LEEDS_PAIRS,
                   split: str = "test", limit: int | None = None, seed: int = 0,
                   manifest: str | Path | None = None) -> EvalSet:
    """Test photos of the species in `pairs`, each explained against its partner (both directions); `manifest`
    replaces DATA/manifest.csv (a fold of a cross-fitted evaluation)."""
    data_dir = Path(data_dir)
    frame = _read_split(data_dir, split, Path(manifest) if manifest else None)
    rows = []
    for a, b in pairs:
        for target, contrast in ((a, b), (b, a)):
            sel = frame[frame["species"] == target].copy()
            if sel.empty:
                raise DatasetError(f"No {split} photos of {target!r} in {data_dir}.",
                                   "Check the spelling of --pairs (scientific names as in the manifest).")
            sel["contrast_species"] = contrast
            rows.append(sel)
    out = pd.concat(rows, ignore_index=True)
    out["target"] = [_class_index(classifier, s, data_dir.name) for s in out["species"]]
    out["contrast"] = [_class_index(classifier, s, data_dir.name) for s in out["contrast_species"]]
    out["diff_parts"] = ""
    return EvalSet(_subset(out, limit, seed), "leeds", str(data_dir.resolve()))


# ------------------------------------------------------------------------------------------------ maps

def _load_masks(paths: Sequence, size: tuple[int, int], labels: bool = False) -> torch.Tensor | None:
    """Masks (or part label maps) resized with nearest neighbour to the model input size; None if any is missing."""
    if any(not isinstance(p, str) or not p for p in paths):
        return None
    arrays = []
    for p in paths:
        img = Image.open(p)
        img = img.convert("L").resize((size[1], size[0]), Image.NEAREST)
        arrays.append(np.asarray(img))
    t = torch.from_numpy(np.stack(arrays))
    return t.long() if labels else (t > 127).float()


def _part_masks(labels: torch.Tensor, diff_parts: Sequence[str]) -> torch.Tensor:
    """Union of the listed part ids ('3;4') per image, from part label maps [N, H, W]."""
    out = torch.zeros(labels.shape, dtype=torch.float32)
    for i, ids in enumerate(diff_parts):
        for pid in (int(s) for s in str(ids).split(";") if s):
            out[i] = torch.maximum(out[i], (labels[i] == pid).float())
    return out


class MapMaker:
    """Maps for one method on a batch, and the same method re-run on a new input (for Coherency)."""

    def __init__(self, classifier, method: str, gamma: float = 0.6, seed: int = 0, layer: str | None = None) -> None:
        self.classifier, self.method, self.gamma, self.seed, self.layer = classifier, method, gamma, seed, layer
        self.baseline = baselines.is_baseline(method)
        self.last_references: list[list[int]] | None = None

    def __call__(self, x: torch.Tensor, target: torch.Tensor, contrast: torch.Tensor | None,
                 batch_no: int = 0, again: bool = False) -> torch.Tensor:
        n, _, h, w = x.shape
        if self.baseline:
            # The re-run for Coherency draws a fresh random map: random maps are not self-consistent.
            return baselines.baseline_maps(self.method, n, h, w, seed=self.seed * 100_003 + 2 * batch_no + again)
        kwargs = {"target": target.tolist(), "method": self.method, "gamma": self.gamma}
        if self.layer is not None and not parse_method(self.method)[3]:  # RefineCAM keeps its own layers
            kwargs["layer"] = self.layer
        if contrast is not None:
            kwargs["contrast"] = contrast.tolist()
        elif again and self.last_references is not None:
            # Re-explain against the same references, not the top classes of the masked image.
            kwargs["contrast"] = self.last_references
        res = explain(self.classifier, x, **kwargs)
        refs = getattr(res, "reference_idx", None)
        if not again and refs is not None and torch.as_tensor(refs).numel():
            rows = torch.as_tensor(refs).tolist()
            self.last_references = [[int(r) for r in row if r >= 0] or None for row in rows]
            if any(r is None for r in self.last_references):
                self.last_references = None
        return torch.as_tensor(res.maps).detach().float().cpu()


# ------------------------------------------------------------------------------------------------ metrics

def batch_metrics(classifier, x: torch.Tensor, maps: torch.Tensor, target: torch.Tensor,
                  contrast: torch.Tensor | None, metrics: Sequence[str], maker: MapMaker | None = None,
                  masks: torch.Tensor | None = None, part_masks: torch.Tensor | None = None,
                  batch_no: int = 0, batch_size: int = 32, seed: int = 0,
                  deletion_steps: int = 10) -> dict[str, torch.Tensor]:
    """All requested metrics for one batch, as {name: tensor [N]} (ground-truth ones when masks are given)."""
    want = set(metrics)
    out: dict[str, torch.Tensor] = {}
    maps = cm.check_maps(x, maps)
    before = cm.probabilities(classifier, x, batch_size) if want & {"rd@5", "rd@10", "avg_drop", "increase",
                                                                     "adcc"} else None
    if want & {"rd@5", "rd@10"}:
        rd = cm.relative_drop(classifier, x, maps, target, contrast, fractions=(0.05, 0.10),
                              batch_size=batch_size, seed=seed, before=before)
        out["rd@5"], out["rd@10"] = rd[0.05], rd[0.10]
    if want & {"deletion", "insertion"}:
        out["deletion"], out["insertion"] = cm.deletion_insertion_auc(classifier, x, maps, target, deletion_steps,
                                                                      batch_size=batch_size, seed=seed)
    if want & {"morf", "lerf", "road", "arcc"}:
        out.update(cm.road(classifier, x, maps, target, batch_size=batch_size, seed=seed))
    if want & {"avg_drop", "increase", "adcc"}:
        out["avg_drop"], out["increase"] = cm.average_drop_increase(classifier, x, maps, target, batch_size,
                                                                      before=before)
    out["complexity"] = cm.complexity(maps)
    if want & {"coherency", "adcc", "arcc"}:
        if maker is None:
            raise MissingValueError("Coherency needs the method that made the maps.", "Pass maker=MapMaker(...).")
        again = maker(x * maps[:, None], target, contrast, batch_no=batch_no, again=True)
        out["coherency"] = cm.coherency(maps.cpu(), cm.check_maps(x, again).cpu())
    if "adcc" in want:
        out["adcc"] = cm.adcc(out["coherency"], out["complexity"], out["avg_drop"])
    if "arcc" in want:
        out["arcc"] = cm.arcc(out["coherency"], out["complexity"], out["road"])
    if masks is not None:
        out["mass_iou"] = cm.mass_iou(maps, masks)
        out["pointing"] = cm.pointing_game(maps, masks)
        out["roc_auc"] = cm.pixel_roc_auc(maps, masks)
    if part_masks is not None:
        has_part = part_masks.flatten(1).sum(1) > 0
        nan = torch.full((len(maps),), float("nan"))
        # An image whose differing part is absent (e.g. the tail-less sibling) or occluded has no part ground truth.
        out["part_mass_iou"] = torch.where(has_part, cm.mass_iou(maps, part_masks).cpu(), nan)
        tol = round(POINTING_TOLERANCE_AT_224 * maps.shape[-2] / 224)
        out["part_pointing"] = torch.where(has_part, cm.pointing_game(maps, part_masks, tolerance=tol).cpu(), nan)
        out["part_pointing_exact"] = torch.where(has_part, cm.pointing_game(maps, part_masks).cpu(), nan)
    return {k: v.detach().float().cpu() for k, v in out.items() if k in want or k in GROUND_TRUTH}


# ------------------------------------------------------------------------------------------------ tables

def summarise(per_image: pd.DataFrame, metrics: Sequence[str] | None = None) -> pd.DataFrame:
    """Mean and 95 % t-interval per method and metric (NaNs dropped): columns method, metric, n, mean, lo, hi."""
    metrics = [m for m in (metrics or DIRECTION) if m in per_image]
    rows = []
    for method, grp in per_image.groupby("method", sort=False):
        for m in metrics:
            v = grp[m].dropna().to_numpy(dtype=float)
            n = len(v)
            if n == 0:
                continue
            mean = float(v.mean())
            half = float(student_t.ppf(0.975, n - 1) * v.std(ddof=1) / math.sqrt(n)) if n > 1 else float("nan")
            rows.append({"method": method, "metric": m, "n": n, "mean": mean, "lo": mean - half, "hi": mean + half})
    return pd.DataFrame(rows, columns=["method", "metric", "n", "mean", "lo", "hi"])


def summarise_by_pair(per_image: pd.DataFrame, metrics: Sequence[str] | None = None) -> pd.DataFrame:
    """summarise() per direction 'target vs contrast' (rows with a contrast species only); adds a 'pair' column."""
    if "contrast_species" not in per_image:
        return pd.DataFrame()
    rows = per_image[per_image["contrast_species"].fillna("").astype(str) != ""]
    parts = []
    for (sp, ct), grp in rows.groupby(["species", "contrast_species"], sort=True):
        s = summarise(grp, metrics)
        s.insert(0, "pair", f"{sp} vs {ct}")
        parts.append(s)
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()


def pair_table(by_pair: pd.DataFrame, metrics: Sequence[str], digits: int = 3) -> str:
    """Markdown: one row per (pair, method), the chosen metrics as 'mean ± half-width'."""
    metrics = [m for m in metrics if m in set(by_pair.get("metric", []))]
    if by_pair.empty or not metrics:
        return ""
    lines = ["| pair | method | n | " + " | ".join(metrics) + " |", "|" + "---|" * (len(metrics) + 3)]
    idx = by_pair.set_index(["pair", "method", "metric"])
    for (pair, method), grp in by_pair.groupby(["pair", "method"], sort=False):
        cells = []
        for m in metrics:
            if (pair, method, m) not in idx.index:
                cells.append("")
                continue
            r = idx.loc[(pair, method, m)]
            half = (r["hi"] - r["lo"]) / 2
            cells.append(f"{r['mean']:.{digits}f}" + ("" if math.isnan(half) else f" ± {half:.{digits}f}"))
        lines.append(f"| {pair} | {method} | {int(grp['n'].max())} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


PAIRED_METRICS = ("part_mass_iou", "part_pointing", "part_pointing_exact", "mass_iou", "pointing", "rd@5", "rd@10")
CLEAR_CHANGE = 0.10  # a paired difference of at least 10 % of the plain method's mean counts as clear


def finer_base(method: str) -> str | None:
    """The plain method a Finer variant changes ('finer' -> 'gradcam', 'finer-layercam' -> 'layercam')."""
    if method == "finer":
        return "gradcam"
    return method[len("finer-"):] if method.startswith("finer-") else None


def paired_comparison(per_image: pd.DataFrame, metrics: Sequence[str] = PAIRED_METRICS,
                      pairs: Sequence[tuple[str, str]] | None = None) -> pd.DataFrame:
    """Each Finer variant against its plain method on the same images: the per-image difference (Finer minus plain,
    mean and 95 % t-interval), the ratio of means, the share of images where Finer is better, a Wilcoxon signed-rank
    p-value, and a verdict: 'finer better' when the whole interval lies on the better side and the mean difference
    is at least CLEAR_CHANGE of the plain method's mean ('finer slightly better' when it is smaller).

    Paired, because both maps explain the same image: image-to-image spread (part size, pose) cancels out, so a
    real but small effect is not hidden by the overlapping intervals of the two unpaired means. `pairs` names
    other (method, base) pairs to compare, e.g. a multi-layer Finer map against last-layer Grad-CAM."""
    rows = []
    methods = list(dict.fromkeys(per_image["method"]))
    keys = ["image", "contrast_species"] if "contrast_species" in per_image else ["image"]
    chosen = pairs if pairs is not None else [(m, finer_base(m)) for m in methods]
    for method, base in chosen:
        if method not in methods or base not in methods:
            continue
        a = per_image[per_image["method"] == method].copy()
        b = per_image[per_image["method"] == base].copy()
        for k in keys:
            a[k], b[k] = a[k].fillna("").astype(str), b[k].fillna("").astype(str)
        both = a.merge(b, on=keys, suffixes=("", "_base"))
        for m in metrics:
            if m not in both or f"{m}_base" not in both:
                continue
            ok = both[[m, f"{m}_base"]].dropna()
            n = len(ok)
            if n < 2:
                continue
            sign = DIRECTION.get(m, 1)
            d = (ok[m] - ok[f"{m}_base"]).to_numpy(dtype=float)
            mean = float(d.mean())
            half = float(student_t.ppf(0.975, n - 1) * d.std(ddof=1) / math.sqrt(n))
            nonzero = d[d != 0]
            p = float(wilcoxon(nonzero).pvalue) if len(nonzero) >= 2 else float("nan")
            lo, hi = mean - half, mean + half
            better = (lo > 0) if sign > 0 else (hi < 0)
            worse = (hi < 0) if sign > 0 else (lo > 0)
            base_mean = float(ok[f"{m}_base"].mean())
            # Significant but within CLEAR_CHANGE of the plain method's mean is 'slightly': not a clear win.
            size = "" if base_mean == 0 or abs(mean / base_mean) >= CLEAR_CHANGE else "slightly "
            rows.append({"method": method, "base": base, "metric": m, "n": n, "mean": float(ok[m].mean()),
                         "base_mean": base_mean, "diff": mean, "lo": lo, "hi": hi,
                         "ratio": float(ok[m].mean()) / base_mean if base_mean else float("nan"),
                         "better_share": float((sign * d > 0).mean()), "wilcoxon_p": p,
                         "verdict": f"finer {size}better" if better else (
                             f"finer {size}worse" if worse else "no clear difference")})
    return pd.DataFrame(rows, columns=["method", "base", "metric", "n", "mean", "base_mean", "diff", "lo", "hi",
                                       "ratio", "better_share", "wilcoxon_p", "verdict"])


def paired_table(paired: pd.DataFrame, digits: int = 3) -> str:
    """Markdown: one row per (Finer variant, metric) with the paired difference to its plain method."""
    if paired.empty:
        return ""
    lines = ["| method | vs | metric | n | Finer | plain | difference (95 % interval) | ratio | Finer better on | "
             "Wilcoxon p | verdict |", "|" + "---|" * 11]
    for r in paired.itertuples():
        lines.append(f"| {r.method} | {r.base} | {r.metric} | {r.n} | {r.mean:.{digits}f} | {r.base_mean:.{digits}f} "
                     f"| {r.diff:+.{digits}f} [{r.lo:+.{digits}f}, {r.hi:+.{digits}f}] | {r.ratio:.2f} "
                     f"| {r.better_share:.0%} | {r.wilcoxon_p:.2g} | {r.verdict} |")
    return "\n".join(lines)


def metric_correlations(summary: pd.DataFrame, references: Sequence[str] = ("mass_iou", "part_mass_iou"),
                        min_methods: int = 3) -> pd.DataFrame:
    """Spearman and Kendall rank correlation, across methods, of each ground-truth-free metric with Mass-IoU.

    Metrics are oriented so that higher is better first; a positive correlation means the metric ranks the
    methods the way the ground truth does.
    """
    means = summary.pivot(index="method", columns="metric", values="mean")
    rows = []
    for ref in references:
        if ref not in means:
            continue
        for m in GT_FREE:
            if m not in means:
                continue
            both = means[[m, ref]].dropna()
            if len(both) < min_methods or both[m].nunique() < 2 or both[ref].nunique() < 2:
                continue
            a, b = GT_FREE[m] * both[m].to_numpy(), both[ref].to_numpy()
            rows.append({"reference": ref, "metric": m, "n_methods": len(both),
                         "spearman": float(spearmanr(a, b).statistic), "kendall": float(kendalltau(a, b).statistic)})
    return pd.DataFrame(rows, columns=["reference", "metric", "n_methods", "spearman", "kendall"])


def markdown_table(summary: pd.DataFrame, digits: int = 3) -> str:
    """Methods x metrics, each cell 'mean ± half-width of the 95 % interval'; arrows give the better direction."""
    metrics = [m for m in DIRECTION if m in set(summary["metric"])]
    methods = list(dict.fromkeys(summary["method"]))
    head = "| method | " + " | ".join(f"{m} {'↑' if DIRECTION[m] > 0 else '↓'}" for m in metrics) + " |"
    lines = [head, "|" + "---|" * (len(metrics) + 1)]
    idx = summary.set_index(["method", "metric"])
    for meth in methods:
        cells = []
        for m in metrics:
            if (meth, m) not in idx.index:
                cells.append("")
                continue
            r = idx.loc[(meth, m)]
            half = (r["hi"] - r["lo"]) / 2
            cells.append(f"{r['mean']:.{digits}f}" + ("" if math.isnan(half) else f" ± {half:.{digits}f}"))
        lines.append(f"| {meth} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def correlation_table(corr: pd.DataFrame) -> str:
    """Markdown: one row per ground-truth-free metric, Spearman (Kendall) per reference."""
    if corr.empty:
        return "(too few methods for a rank correlation)"
    refs = list(dict.fromkeys(corr["reference"]))
    lines = ["| metric | " + " | ".join(f"vs {r}: Spearman (Kendall)" for r in refs) + " |",
             "|" + "---|" * (len(refs) + 1)]
    for m in dict.fromkeys(corr["metric"]):
        cells = []
        for r in refs:
            hit = corr[(corr["metric"] == m) & (corr["reference"] == r)]
            cells.append("" if hit.empty else f"{hit['spearman'].iloc[0]:+.2f} ({hit['kendall'].iloc[0]:+.2f})")
        lines.append(f"| {m} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------------ runner

def _write_csv_atomic(frame: pd.DataFrame, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, lambda tmp: frame.to_csv(tmp, index=False))


def _write_text_atomic(text: str, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(path, text)


def _fingerprint(classifier, evalset: EvalSet, metrics: Sequence[str], gamma: float, seed: int,
                 layer: str | None = None) -> str:
    key = json.dumps({"model": str(getattr(classifier, "model_dir", "")), "classes": classifier.class_names,
                      "images": list(evalset.frame["path"]), "contrast": list(map(int, evalset.frame["contrast"])),
                      "metrics": list(metrics), "gamma": gamma, "seed": seed,
                      **({"layer": layer} if layer else {})}, sort_keys=True)
    return hashlib.sha256(key.encode()).hexdigest()[:16]


def check_methods(methods: Sequence[str]) -> list[str]:
    """Validate method names (CAM engine methods and baselines) and drop duplicates, keeping order."""
    known = set(CAM_METHODS) | set(SCORECAM_METHODS) | set(BASELINE_METHODS) | {"all-ones", "center"}
    bad = [m for m in methods if m not in known and not baselines.is_baseline(m)]
    if bad:
        raise UnknownChoiceError(f"Unknown CAM method(s) {bad}.",
                          f"Use any of {', '.join(CAM_METHODS + SCORECAM_METHODS + BASELINE_METHODS)}.")
    return list(dict.fromkeys(methods))


def run_benchmark(classifier, evalset: EvalSet, methods: Sequence[str], out: str | Path,
                  metrics: str | Sequence[str] = "full", batch_size: int = 8, gamma: float = 0.6, seed: int = 0,
                  progress: bool = True, resume: bool = True, layer: str | None = None) -> BenchmarkResult:
    """Explain every image with every method, score the maps and write the tables to `out`."""
    methods = check_methods(methods)
    metric_list = list(METRIC_SETS[metrics]) if isinstance(metrics, str) and metrics in METRIC_SETS else (
        [metrics] if isinstance(metrics, str) else list(metrics))
    unknown = [m for m in metric_list if m not in GT_FREE]
    if unknown:
        raise UnknownChoiceError(f"Unknown metric(s) {unknown}.", f"Use 'fast', 'full' or names from {list(GT_FREE)}.")
    if len(evalset) == 0:
        raise DatasetError("No images to evaluate.", "Check --split, --limit and --pairs.")
    out = Path(out)
    make_folder(out)
    fp = _fingerprint(classifier, evalset, metric_list, gamma, seed, layer)
    run_json = out / "run.json"
    reuse = resume and run_json.is_file() and json.loads(run_json.read_text()).get("fingerprint") == fp
    _write_text_atomic(json.dumps({"fingerprint": fp, "dataset": evalset.name, "source": evalset.source,
                                   "model": str(getattr(classifier, "model_dir", "")), "methods": methods,
                                   "metrics": metric_list, "gamma": gamma, "seed": seed, "layer": layer,
                                   "n_images": len(evalset)}, indent=2), run_json)
    frame = evalset.frame.reset_index(drop=True)
    size = tuple(classifier.preprocess.size)
    has_masks = "mask" in frame and frame["mask"].map(lambda p: isinstance(p, str)).all()
    has_parts = "parts" in frame and (frame["diff_parts"] != "").any()
    batches = [frame.iloc[i:i + batch_size] for i in range(0, len(frame), batch_size)]
    todo = [m for m in methods if not (reuse and (out / "per_image" / f"{m}.csv").is_file())]
    bar = tqdm(total=len(todo) * len(frame), desc="evaluate cams", unit="img", disable=not progress)
    parts = []
    for method in methods:
        path = out / "per_image" / f"{method}.csv"
        if method not in todo:
            parts.append(pd.read_csv(path))
            continue
        bar.set_postfix_str(method)
        maker = MapMaker(classifier, method, gamma, seed, layer)
        rows = []
        for b, chunk in enumerate(batches):
            x = classifier.prepare(list(chunk["path"]))
            target = torch.tensor(chunk["target"].to_numpy(), dtype=torch.long)
            contrast = torch.tensor(chunk["contrast"].to_numpy(), dtype=torch.long)
            contrast = None if (contrast < 0).any() else contrast
            masks = _load_masks(list(chunk["mask"]), size) if has_masks else None
            part_masks = None
            if has_parts:
                labels = _load_masks(list(chunk["parts"]), size, labels=True)
                part_masks = None if labels is None else _part_masks(labels, list(chunk["diff_parts"]))
            maps = maker(x, target, contrast, batch_no=b)
            scores = batch_metrics(classifier, x, maps, target, contrast, metric_list, maker, masks, part_masks,
                                   batch_no=b, batch_size=max(batch_size, 16), seed=seed)
            table = pd.DataFrame({k: v.numpy() for k, v in scores.items()})
            table.insert(0, "method", method)
            table.insert(0, "contrast_species", list(chunk.get("contrast_species", [""] * len(chunk))))
            table.insert(0, "species", list(chunk["species"]))
            table.insert(0, "image", list(chunk["path"]))
            rows.append(table)
            bar.update(len(chunk))
        done = pd.concat(rows, ignore_index=True)
        _write_csv_atomic(done, path)
        parts.append(done)
    bar.close()
    per_image = pd.concat(parts, ignore_index=True)
    summary = summarise(per_image)
    corr = metric_correlations(summary) if has_masks else pd.DataFrame()
    by_pair = summarise_by_pair(per_image)
    paired = paired_comparison(per_image)
    table = render_report(evalset, summary, corr, methods, by_pair, paired)
    _write_csv_atomic(per_image, out / "per_image.csv")
    _write_tables(out, summary, corr, by_pair, paired, table)
    return BenchmarkResult(per_image, summary, corr, table, out, paired)


def _write_tables(out: Path, summary: pd.DataFrame, corr: pd.DataFrame, by_pair: pd.DataFrame,
                  paired: pd.DataFrame, table: str) -> None:
    """The tables computed from per_image.csv: paired.csv, summary.csv, correlations.csv, by_pair.csv, table.md."""
    _write_csv_atomic(paired, out / "paired.csv")
    _write_csv_atomic(summary, out / "summary.csv")
    _write_csv_atomic(corr, out / "correlations.csv")
    if not by_pair.empty:
        _write_csv_atomic(by_pair, out / "by_pair.csv")
    _write_text_atomic(table + "\n", out / "table.md")


def render_report(evalset: EvalSet, summary: pd.DataFrame, corr: pd.DataFrame, methods: Sequence[str],
                  by_pair: pd.DataFrame | None = None, paired: pd.DataFrame | None = None) -> str:
    """The markdown written to table.md: the main table, then the metric-agreement table when available."""
    n = int(summary["n"].max()) if not summary.empty else 0
    text = [f"### {evalset.name}: {len(evalset)} images, {len(methods)} methods",
            "", "Mean ± half-width of the 95 % t-interval over images (n up to "
            f"{n}); ↑ higher is better, ↓ lower is better.", "", markdown_table(summary)]
    if corr is not None and not corr.empty:
        text += ["", "Rank correlation across methods (incl. baselines) of each ground-truth-free metric "
                 "(oriented so higher is better) with the ground truth:", "", correlation_table(corr)]
    if by_pair is not None and not by_pair.empty:
        cols = [m for m in ("rd@5", "rd@10", "mass_iou", "part_mass_iou", "part_pointing") if m in set(by_pair["metric"])]
        text += ["", "Per direction (target vs contrast):", "", pair_table(by_pair, cols)]
    if paired is not None and not paired.empty:
        text += ["", "Finer variants against their plain method on the same images (paired; difference = Finer "
                 "minus plain, oriented metrics as in the main table):", "", paired_table(paired)]
    return "\n".join(text)


def rebuild_tables(out: str | Path, name: str = "") -> str:
    """Recompute summary, correlations, by-pair table and table.md from OUT/per_image.csv (no model needed)."""
    out = Path(out)
    per_image = pd.read_csv(out / "per_image.csv")
    meta = json.loads((out / "run.json").read_text()) if (out / "run.json").is_file() else {}
    methods = list(dict.fromkeys(per_image["method"]))
    summary = summarise(per_image)
    corr = metric_correlations(summary) if "mass_iou" in per_image else pd.DataFrame()
    by_pair = summarise_by_pair(per_image)
    paired = paired_comparison(per_image)
    n_images = per_image.groupby("method").size().max()
    evalset = EvalSet(pd.DataFrame(index=range(int(n_images))), name or meta.get("dataset", out.name))
    table = render_report(evalset, summary, corr, methods, by_pair, paired)
    _write_tables(out, summary, corr, by_pair, paired, table)
    return table
