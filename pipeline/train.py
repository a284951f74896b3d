"""Training a linear probe: features extracted once (cached, resumable), then a linear head on top."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from torch import nn
from tqdm.auto import tqdm

from pipeline.calibration import calibrate
from pipeline.datasets import LabelledImages, read_dataset
from pipeline.device import resolve_device
from pipeline.models.backbones import DEFAULT_BACKBONE, Backbone, create_backbone, default_taps
from pipeline.models.classifier import LinearProbeClassifier, in_forward_order, pooled_features, tap_channels
from pipeline.models.io import save_classifier
from pipeline.models.preprocess import Preprocess
from traits.errors import BadImageError, BadValueError, DatasetError, UnknownChoiceError
from traits.io import atomic_write, make_folder, write_json_atomic
from traits.scores import wilson_interval
from traits.vocab import DEFAULT_GROUP
from traits.vocab import taxon_group as taxon_group_of

log = logging.getLogger(__name__)
HEADS = ("multilayer", "pooled")
# The CAM method each head's maps use by default, chosen by evaluation.benchmarks.cam_candidates (numbers in
# docs/benchmarks.md): Finer over Layer-CAM maps of the taps, combined RefineCAM-style, for multilayer heads;
# plain Finer-CAM at the last layer for pooled heads (no candidate there localises the differing part).
DEFAULT_CAM = {"multilayer": "finer-refine-layercam", "pooled": "finer"}
MAX_EPOCHS = 100_000  # full-batch steps of a linear head: far past convergence; more is a typo, not a plan
CACHE_EVERY = 8  # batches between cache checkpoints: an interrupted extraction loses at most this much work
# Species with fewer training photos than this get a warning: a linear head fits them, but their test accuracy,
# their references for describe and their CAMs rest on one or two photos.
MIN_TRAIN_PHOTOS = 3


@dataclass
class TrainReport:
    """What a training run produced and measured."""

    model_dir: Path
    accuracy: float | None
    n_train: int
    n_test: int
    n_skipped: int
    seconds: float
    species: list[str]
    per_species: pd.DataFrame = field(repr=False)
    skipped: list[tuple[str, str]] = field(default_factory=list, repr=False)
    accuracy_interval: tuple[float, float] | None = None  # 95 % Wilson interval of the test accuracy
    warnings: list[str] = field(default_factory=list)
    taxon_group: str = DEFAULT_GROUP
    calibration: dict = field(default_factory=dict)  # the card's 'calibration' entry (temperature, test ECE / NLL)


def _image_key(path: str) -> str:
    st = os.stat(path)
    return f"{path}|{st.st_size}|{st.st_mtime_ns}"


class FeatureCache:
    """Pooled features per image file, keyed by path+size+mtime, for one backbone + preprocessing."""

    def __init__(self, folder: Path | None, backbone: Backbone, taps: list[str] | None = None) -> None:
        """Open (or start) the cache in folder; folder None keeps features in memory only."""
        # exif_upright: features cached before photos were turned upright by their EXIF tag are not reused.
        ident = {"arch": backbone.arch, "weights": backbone.weights, "preprocess": backbone.preprocess.to_dict(),
                 "exif_upright": True}
        if taps:  # taps join the key only when set
            ident["taps"] = list(taps)
        ident = json.dumps(ident, sort_keys=True)
        digest = hashlib.sha1(ident.encode()).hexdigest()[:16]
        self.tensor_path = folder / f"features-{digest}.safetensors" if folder else None
        self.index_path = folder / f"features-{digest}.json" if folder else None
        self.features: dict[str, torch.Tensor] = {}
        self.failed: dict[str, str] = {}
        if self.tensor_path and self.tensor_path.is_file() and self.index_path.is_file():
            try:
                keys = json.loads(self.index_path.read_text())
                feats = load_file(str(self.tensor_path))["features"]
                if len(keys["keys"]) == feats.shape[0]:
                    self.features = dict(zip(keys["keys"], feats, strict=True))
                    self.failed = keys.get("failed", {})
            except Exception as exc:  # a damaged cache is only a cache: rebuild it
                log.warning("Ignoring unreadable feature cache %s (%s)", self.tensor_path, exc)

    def save(self) -> None:
        """Write features and index atomically (tensor file first, then the index that names its rows)."""
        if not self.features or self.tensor_path is None:
            return
        self.tensor_path.parent.mkdir(parents=True, exist_ok=True)
        keys = list(self.features)
        stacked = torch.stack([self.features[k] for k in keys]).contiguous()
        atomic_write(self.tensor_path, lambda tmp: save_file({"features": stacked}, str(tmp)))
        write_json_atomic(self.index_path, {"keys": keys, "failed": self.failed})


class _ImageSet(torch.utils.data.Dataset):
    def __init__(self, paths: list[str], preprocess: Preprocess) -> None:
        self.paths, self.preprocess = paths, preprocess

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int):
        try:
            return self.preprocess.image_to_tensor(self.paths[i]), i, ""
        except BadImageError as exc:
            h, w = self.preprocess.size
            return torch.zeros(3, h, w), i, exc.problem


@torch.inference_mode()
def extract_features(backbone: Backbone, paths: list[str], device: torch.device, cache: FeatureCache | None = None,
                     batch_size: int = 32, workers: int = 0, taps: list[str] | None = None,
                     ) -> tuple[torch.Tensor, list[bool], dict[str, str]]:
    """Pooled features [N, D] for image files (zeros where unreadable), a per-image ok flag and failure reasons;
    with taps, the pooled outputs of those backbone modules, concatenated."""
    keys = [_image_key(p) for p in paths]
    cache = cache or FeatureCache(None, backbone)
    todo = [i for i, k in enumerate(keys) if k not in cache.features and k not in cache.failed]
    model = backbone.model.to(device).eval()
    if todo:
        loader = torch.utils.data.DataLoader(_ImageSet([paths[i] for i in todo], backbone.preprocess),
                                             batch_size=batch_size, num_workers=workers)
        for b, (x, idx, errors) in enumerate(tqdm(loader, desc="Extracting features", unit="batch")):
            feats = pooled_features(model, taps or [], x.to(device)).float().cpu()
            for j, i in enumerate(idx.tolist()):
                key = keys[todo[i]]
                if errors[j]:
                    cache.failed[key] = errors[j]
                else:
                    cache.features[key] = feats[j].clone()
            if (b + 1) % CACHE_EVERY == 0:
                cache.save()
        cache.save()
    ok = [k in cache.features for k in keys]
    dim = next(iter(cache.features.values())).shape[0] if cache.features else backbone.num_features
    out = torch.stack([cache.features[k] if k in cache.features else torch.zeros(dim) for k in keys]) if keys \
        else torch.zeros(0, dim)
    failures = {paths[i]: cache.failed[k] for i, k in enumerate(keys) if k in cache.failed}
    return out, ok, failures


def fit_linear_head(features: torch.Tensor, labels: torch.Tensor, num_classes: int, epochs: int = 300,
                    lr: float = 1e-2, weight_decay: float = 1e-4, seed: int = 0) -> nn.Linear:
    """Full-batch Adam on standardised features; the standardisation is folded back into the weights.

    Folding keeps the saved head a plain linear map on raw pooled features, which the CAM fast path needs.
    """
    torch.manual_seed(seed)
    mean = features.mean(0)
    std = features.std(0).clamp_min(1e-6)
    z = (features - mean) / std
    head = nn.Linear(features.shape[1], num_classes).to(features.device)
    nn.init.zeros_(head.weight)
    nn.init.zeros_(head.bias)
    opt = torch.optim.Adam(head.parameters(), lr=lr, weight_decay=weight_decay)
    with torch.enable_grad():
        for _ in range(epochs):
            opt.zero_grad()
            loss = F.cross_entropy(head(z), labels)
            loss.backward()
            opt.step()
    folded = nn.Linear(features.shape[1], num_classes)
    with torch.no_grad():
        folded.weight.copy_((head.weight / std).cpu())
        folded.bias.copy_((head.bias - (head.weight * mean / std).sum(1)).cpu())
    return folded


def check_sample_sizes(frame: pd.DataFrame, minimum: int = MIN_TRAIN_PHOTOS) -> list[str]:
    """Warnings for species with fewer than `minimum` training photos; a DatasetError naming every species that
    has none (a class the head never saw would only ever be predicted by chance)."""
    train = frame[frame["split"] == "train"]["species"].value_counts()
    counts = {sp: int(train.get(sp, 0)) for sp in sorted(frame["species"].unique())}
    empty = [sp for sp, n in counts.items() if n == 0]
    if empty:
        raise DatasetError(
            f"{len(empty)} species {'has' if len(empty) == 1 else 'have'} no training photos: {', '.join(empty)} "
            "(every photo of it is in the test split, or unreadable).",
            "Add training photos of it (or mark some of its rows split=train in the manifest), or remove its "
            "rows.")
    return [f"{sp} has only {n} training photo{'s' if n != 1 else ''} (fewer than {minimum}): its accuracy, "
            "its reference photos for describe and its maps rest on very few examples." for sp, n in counts.items()
            if n < minimum]


def per_species_summary(species: list[str], labels: torch.Tensor, predicted: torch.Tensor) -> pd.DataFrame:
    """Per species: test images, accuracy with its 95 % Wilson interval, and the species it is most often
    mistaken for."""
    rows = []
    for i, name in enumerate(species):
        sel = labels == i
        n = int(sel.sum())
        wrong = predicted[sel][predicted[sel] != i]
        confused = species[int(wrong.mode().values)] if len(wrong) else ""
        right = int((predicted[sel] == i).sum())
        low, high = wilson_interval(right, n) or (float("nan"), float("nan"))
        rows.append({"species": name, "n_test": n,
                     "accuracy": right / n if n else float("nan"),
                     "accuracy_low": round(low, 4), "accuracy_high": round(high, 4),
                     "errors": int(len(wrong)), "most_confused_with": confused})
    return pd.DataFrame(rows)


def train_classifier(data: str | Path, out: str | Path, manifest: str | Path | None = None,
                     backbone: str = DEFAULT_BACKBONE, epochs: int = 300, device: str = "auto",
                     image_size: int | None = None, seed: int = 0, batch_size: int = 32, weights: str = "default",
                     lr: float = 1e-2, workers: int = 0, head: str = "multilayer",
                     taps: list[str] | None = None, taxon_group: str = DEFAULT_GROUP) -> TrainReport:
    """Train a linear-probe classifier on labelled photos and save it to `out` (a model folder).

    head 'multilayer' (default) reads the pooled outputs of several stages (`taps`, default: strides 8, 16, 32),
    so Finer-CAM can localise the differing part; 'pooled' reads only the final pooled features.
    taxon_group ('butterfly', 'bird', ...: `finer-traits groups`) is stored in the model card, where describe and
    batch read it. A species without training photos is refused; one with fewer than 3 gets a warning."""
    if head not in HEADS:
        raise UnknownChoiceError(f"Unknown head {head!r}.", f"Use one of: {', '.join(HEADS)}.")
    group = taxon_group_of(taxon_group).name  # an unknown group fails before any work
    start = time.perf_counter()
    if isinstance(epochs, bool) or not isinstance(epochs, int) or not 1 <= epochs <= MAX_EPOCHS:
        raise BadValueError(f"epochs must be a whole number from 1 to {MAX_EPOCHS:,}, not {epochs!r}.",
                            "The default 300 is plenty for a linear head; use e.g. --epochs 300.")
    out = make_folder(out, "model folder", create=False)  # checked first: not after a long feature extraction
    dev = resolve_device(device)
    dataset = read_dataset(data, manifest, seed=seed)
    check_sample_sizes(dataset.frame)  # refuse a species without training photos before extracting anything
    bb = create_backbone(backbone, weights=weights, image_size=image_size)
    taps = _choose_taps(bb, head, taps)
    cache = FeatureCache(out / ".cache", bb, taps)
    feats, ok, failures = extract_features(bb, list(dataset.frame["path"]), dev, cache, batch_size, workers, taps)
    skipped = dataset.skipped + [(p, f"unreadable image: {why}") for p, why in failures.items()]
    for p, why in failures.items():
        log.warning("Skipped unreadable image %s: %s", p, why)
    frame = dataset.frame[ok].reset_index(drop=True)
    feats = feats[torch.tensor(ok, dtype=torch.bool)] if len(ok) else feats
    species = sorted(frame["species"].unique())
    if len(species) < 2:
        raise DatasetError(f"After skipping {len(skipped)} unusable files only {len(species)} species remain.",
                           "Check the warnings above and fix or remove the broken image files.")
    sample_warnings = check_sample_sizes(frame)
    for w in sample_warnings:
        log.warning(w)
    labels = torch.tensor([species.index(s) for s in frame["species"]])
    is_train = torch.tensor((frame["split"] == "train").to_numpy())
    if not is_train.any():
        raise DatasetError("The training split is empty.", "Mark some rows split=train, or drop the split column.")
    fitted = fit_linear_head(feats[is_train].to(dev), labels[is_train].to(dev), len(species), epochs, lr, seed=seed)
    with torch.no_grad():
        logits = fitted(feats).float()
    predicted = logits.argmax(-1)
    test = ~is_train
    # Temperature from out-of-fold logits of the training split (same head settings); the test split only reports.
    calibration = calibrate(feats[is_train], labels[is_train], logits[test], labels[test], len(species),
                            lambda f, y, k: fit_linear_head(f.to(dev), y.to(dev), k, epochs, lr, seed=seed), seed=seed)
    n_correct = int((predicted[test] == labels[test]).sum())
    accuracy = n_correct / int(test.sum()) if test.any() else None
    interval = wilson_interval(n_correct, int(test.sum()))
    summary = per_species_summary(species, labels[test], predicted[test])
    summary.insert(1, "n_train", [_counts(frame, "train", species)[sp] for sp in species])
    commons = LabelledImages(frame, dataset.source).common_names()
    clf = LinearProbeClassifier(bb.model, fitted, species, commons, bb.preprocess, taps,
                                tap_channels(bb.model, taps, bb.preprocess.size))
    seconds = time.perf_counter() - start
    card = {
        "backbone": {"name": bb.name, "arch": bb.arch, "weights": bb.weights, "image_size": image_size,
                     "num_features": bb.num_features},
        **_head_card(taps, clf.tap_channels),
        "training": {"data": dataset.source, "n_train": int(is_train.sum()), "n_test": int(test.sum()),
                     "n_skipped": len(skipped), "epochs": epochs, "lr": lr, "seed": seed, "device": str(dev),
                     "seconds": round(seconds, 1), "images_per_species": frame["species"].value_counts().to_dict(),
                     "train_images_per_species": _counts(frame, "train", species),
                     "test_images_per_species": _counts(frame, "test", species),
                     "warnings": sample_warnings},
        "taxon_group": group,
        "accuracy": None if accuracy is None else round(accuracy, 4),
        "accuracy_interval": _interval_card(interval, int(test.sum())),
        "calibration": calibration,
        "per_species_accuracy": dict(zip(summary["species"], summary["accuracy"].round(4), strict=True)),
    }
    save_classifier(clf, out, card)
    _write_tables(out, frame, summary, _confusion(species, labels[test], predicted[test]), skipped)
    return TrainReport(model_dir=out, accuracy=accuracy, n_train=int(is_train.sum()), n_test=int(test.sum()),
                       n_skipped=len(skipped), seconds=seconds, species=species, per_species=summary, skipped=skipped,
                       accuracy_interval=interval, warnings=sample_warnings, taxon_group=group,
                       calibration=calibration)


def _interval_card(interval: tuple[float, float] | None, n_test: int) -> dict | None:
    """The card's 'accuracy_interval' entry (95 % Wilson), None without test photos."""
    if interval is None:
        return None
    return {"low": round(interval[0], 4), "high": round(interval[1], 4), "level": 0.95, "method": "wilson",
            "n_test": n_test}


def _choose_taps(bb: Backbone, head: str, taps: list[str] | None) -> list[str]:
    """The layers a multilayer head reads (given, else the stage outputs), in forward order; [] for pooled."""
    taps = in_forward_order(bb.model, taps or default_taps(bb.model)) if head == "multilayer" else []
    if head == "multilayer" and not taps:
        log.warning("Backbone %s has no convolutional stages to tap; training a pooled head instead.", bb.name)
    return taps


def _head_card(taps: list[str], channels: list[int]) -> dict:
    """The card's 'head' (what the head reads) and 'cam' (the measured default map for that head) entries."""
    kind = "multilayer" if taps else "pooled"
    return {"head": {"type": kind, "taps": taps, "tap_channels": channels},
            "cam": {"method": DEFAULT_CAM[kind], "chosen_by": "python -m evaluation.benchmarks.cam_candidates "
                                                      "(docs/benchmarks.md)"}}


def _counts(frame: pd.DataFrame, split: str, species: list[str]) -> dict[str, int]:
    """Photos per species in one split (0 for species without any), in class order."""
    counts = frame[frame["split"] == split]["species"].value_counts()
    return {sp: int(counts.get(sp, 0)) for sp in species}


def _confusion(species: list[str], labels: torch.Tensor, predicted: torch.Tensor) -> pd.DataFrame:
    k = len(species)
    counts = torch.bincount(labels * k + predicted, minlength=k * k).reshape(k, k) if len(labels) else torch.zeros(k, k)
    return pd.DataFrame(counts.numpy(), index=pd.Index(species, name="true"), columns=species).reset_index()


def _write_tables(out: Path, frame: pd.DataFrame, summary: pd.DataFrame, confusion: pd.DataFrame,
                  skipped: list[tuple[str, str]]) -> None:
    """The model folder's tables: reference photos, per-species accuracy, confusion, skipped files (if any)."""
    _write_table(out / "references.csv", frame.assign(image=frame["path"])[["image", "species", "split"]])
    _write_table(out / "per_species.csv", summary)
    _write_table(out / "confusion.csv", confusion)
    if skipped:
        _write_table(out / "skipped.csv", pd.DataFrame(skipped, columns=["path", "reason"]))


def _write_table(path: Path, frame: pd.DataFrame) -> None:
    atomic_write(path, lambda tmp: frame.to_csv(tmp, index=False))
