"""Labelled photo collections: an ImageFolder tree or a manifest CSV, read into one tidy table."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from pipeline.images import is_image_file
from traits.errors import DatasetError
from traits.names import display_name

log = logging.getLogger(__name__)
SPLITS = {"train": "train", "test": "test", "val": "test", "valid": "test", "validation": "test"}


@dataclass
class LabelledImages:
    """A table with columns path (absolute), species, common_name, split, plus any extra manifest columns."""

    frame: pd.DataFrame
    source: str
    skipped: list[tuple[str, str]] = field(default_factory=list)

    @property
    def species(self) -> list[str]:
        """Species names, sorted (this order becomes the class order)."""
        return sorted(self.frame["species"].unique())

    def common_names(self) -> list[str | None]:
        """Common name per species (in `species` order), None where unknown."""
        firsts = self.frame.dropna(subset=["common_name"]).groupby("species")["common_name"].first()
        return [firsts.get(s) for s in self.species]

    def split(self, name: str) -> pd.DataFrame:
        """Rows of one split ('train' or 'test')."""
        return self.frame[self.frame["split"] == name]


def read_dataset(data: str | Path, manifest: str | Path | None = None, test_fraction: float = 0.3,
                 seed: int = 0) -> LabelledImages:
    """Read an ImageFolder tree or a manifest CSV; without a split column a seeded stratified split is made."""
    data = Path(data)
    if manifest is None and data.is_file() and data.suffix.lower() == ".csv":
        manifest = data
    if manifest is not None:
        frame, skipped = _read_manifest(Path(manifest))
        source = str(Path(manifest).resolve())
    else:
        frame, skipped = _read_image_folder(data)
        source = str(data.resolve())
    if frame.empty:
        raise DatasetError(f"No usable images found in {source}.",
                           "Put photos in one folder per species (images/<Genus_species>/*.jpg) or pass --manifest.")
    counts = frame["species"].value_counts()
    if len(counts) < 2:
        raise DatasetError(f"Only one species ({counts.index[0]!r}) found in {source}; a classifier needs two or more.",
                           "Add photos of the similar species you want to contrast it with.")
    if "split" not in frame or frame["split"].isna().all():
        frame["split"] = stratified_split(frame["species"], test_fraction, seed)
    else:
        frame["split"] = _normalise_split(frame["split"], source)
    if skipped:
        log.warning("Skipped %d entries in %s (first: %s)", len(skipped), source, skipped[0])
    return LabelledImages(frame=frame.reset_index(drop=True), source=source, skipped=skipped)


def stratified_split(species: pd.Series, test_fraction: float = 0.3, seed: int = 0) -> pd.Series:
    """Assign 'train'/'test' per row, about test_fraction of each species to test (at least 1 train image)."""
    rng = np.random.default_rng(seed)
    out = pd.Series("train", index=species.index, dtype=object)
    for _, idx in species.groupby(species).groups.items():
        idx = np.array(sorted(idx))
        rng.shuffle(idx)
        n_test = int(round(len(idx) * test_fraction)) if len(idx) > 1 else 0
        n_test = min(n_test, len(idx) - 1)
        out.loc[idx[:n_test]] = "test"
    return out


def _normalise_split(split: pd.Series, source: str) -> pd.Series:
    mapped = split.fillna("train").astype(str).str.strip().str.lower().map(SPLITS)
    bad = split[mapped.isna()].unique()[:5]
    if len(bad):
        raise DatasetError(f"Unknown split values {list(bad)} in {source}.", "Use 'train' or 'test' in the split column.")
    return mapped


def _read_image_folder(root: Path) -> tuple[pd.DataFrame, list[tuple[str, str]]]:
    if not root.exists():
        raise DatasetError(f"Dataset folder {root} does not exist.", "Check the path.")
    if not root.is_dir():
        raise DatasetError(f"{root} is not a folder.", "Pass a folder with one sub-folder per species, or a manifest CSV.")
    # Accept DATA/<species>/ and also DATA/images/<species>/ (the layout our synthetic sets and Leeds use).
    if (root / "images").is_dir() and not any(is_image_file(p) for p in root.glob("*/*") if p.parent.name != "images"):
        root = root / "images"
    rows, skipped = [], []
    for folder in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        files = sorted(p for p in folder.rglob("*") if p.is_file() and not p.name.startswith("."))
        images = [p for p in files if is_image_file(p)]
        skipped += [(str(p), "not an image file") for p in files if not is_image_file(p)]
        if not images:
            skipped.append((str(folder), "species folder has no images"))
        rows += [{"path": str(p.resolve()), "species": display_name(folder.name), "common_name": None} for p in images]
    if not rows:
        raise DatasetError(f"No species folders with images in {root}.",
                           "Lay photos out as DATA/<Genus_species>/<photo>.jpg, or pass --manifest CSV.")
    return pd.DataFrame(rows), skipped


def _read_manifest(path: Path) -> tuple[pd.DataFrame, list[tuple[str, str]]]:
    if not path.is_file():
        raise DatasetError(f"Manifest {path} does not exist.", "Check the --manifest path.")
    try:
        frame = pd.read_csv(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise DatasetError(f"Manifest {path} is not a readable CSV ({exc}).", "Save it as comma-separated UTF-8 text.") from exc
    # Column names match whatever their case or surrounding spaces ("Image", " Species ").
    frame.columns = [str(c).strip().lower() for c in frame.columns]
    if frame.columns.duplicated().any():
        raise DatasetError(f"Manifest {path} repeats the column(s) "
                           f"{sorted(set(frame.columns[frame.columns.duplicated()]))} (names are matched "
                           "whatever their case).", "Keep one column of each name.")
    name_col = "species" if "species" in frame else "scientific_name" if "scientific_name" in frame else None
    if "image" not in frame or name_col is None:
        raise DatasetError(f"Manifest {path} has columns {list(frame.columns)}; it needs 'image' and 'species' "
                           "(or 'scientific_name').",
                           "Add those columns: image paths relative to the CSV's folder, and the species name.")
    frame = frame.dropna(subset=["image", name_col]).copy()
    frame["species"] = frame[name_col].astype(str).map(display_name)
    base = path.parent
    frame["path"] = [str((base / str(p)).resolve()) for p in frame["image"]]
    if "common_name" not in frame:
        frame["common_name"] = None
    skipped = []
    # The same photo under two species would train on a contradiction and silently keep the first label.
    labels = frame.groupby("path")["species"].unique()
    conflicts = labels[labels.map(len) > 1]
    if len(conflicts):
        shown = "; ".join(f"{Path(p).name}: {', '.join(sorted(v))}" for p, v in conflicts.head(5).items())
        more = f" (and {len(conflicts) - 5} more)" if len(conflicts) > 5 else ""
        raise DatasetError(f"Manifest {path} lists {len(conflicts)} photo(s) under more than one species: "
                           f"{shown}{more}.", "Keep the row with the right species and delete the others.")
    dup = frame.duplicated("path")
    skipped += [(p, "duplicate row") for p in frame.loc[dup, "path"]]
    frame = frame[~dup]
    exists = frame["path"].map(_is_file)
    skipped += [(p, "file not found") for p in frame.loc[~exists, "path"]]
    frame = frame[exists]
    for col in ("mask",):
        if col in frame:
            frame[col] = [str((base / str(p)).resolve()) if isinstance(p, str) else None for p in frame[col]]
    return frame, skipped


def _is_file(path: str) -> bool:
    # Path.is_file raises on a name the OS refuses (too long, ...): such a row names no usable file either.
    try:
        return Path(path).is_file()
    except (OSError, ValueError):
        return False
