"""Per-species reference scores: each candidate phrase scored on a species' training photos, cached in the model dir.

The classifier's training photos are listed in MODEL_DIR/references.csv (image, species, split). describe()
compares a photo's phrase scores with the contrast species' reference scores (VisDiff-style: target vs contrast).
Scores are cached per scorer in MODEL_DIR/reference-scores/<scorer key>.json and only missing phrases are computed.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from pipeline.images import load_image
from traits.io import write_json_atomic
from traits.names import normalise_name

log = logging.getLogger(__name__)
REFERENCES_CSV = "references.csv"
CACHE_DIR = "reference-scores"
CACHE_FORMAT = 1


def reference_table(model_dir: str | Path) -> pd.DataFrame | None:
    """The model's references.csv as a DataFrame (image, species, split), or None when the model has none."""
    path = Path(model_dir) / REFERENCES_CSV
    if not path.is_file():
        return None
    try:
        df = pd.read_csv(path)
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        log.warning("Ignoring unreadable %s (%s)", path, exc)
        return None
    if not {"image", "species"} <= set(df.columns):
        log.warning("Ignoring %s: it lacks the columns image and species", path)
        return None
    if "split" not in df.columns:
        df["split"] = "train"
    return df


def reference_images(model_dir: str | Path, species: str, max_images: int = 24, split: str = "train",
                     seed: int = 0) -> list[str]:
    """Up to max_images photo paths of one species (a seeded, stable sample of its training split)."""
    df = reference_table(model_dir)
    if df is None:
        return []
    key = normalise_name(species)
    rows = df[(df["species"].map(normalise_name) == key) & (df["split"].astype(str) == split)]
    paths = [p for p in rows["image"].astype(str) if Path(p).is_file()]
    if len(paths) > max_images:
        rng = np.random.default_rng(seed)
        paths = sorted(rng.choice(paths, size=max_images, replace=False).tolist())
    return paths


class ReferenceCache:
    """JSON cache {species: {"images": [...], "scores": {phrase: [score per image]}}} for one scorer and setup."""

    def __init__(self, model_dir: str | Path | None, key: str) -> None:
        digest = hashlib.sha1(key.encode()).hexdigest()[:16]
        self.path = Path(model_dir) / CACHE_DIR / f"{digest}.json" if model_dir else None
        self.key = key
        self.data: dict = {}
        if self.path and self.path.is_file():
            try:
                data = json.loads(self.path.read_text())
                if data.get("format") == CACHE_FORMAT and data.get("key") == key:
                    self.data = data.get("species", {})
            except (OSError, json.JSONDecodeError) as exc:
                log.warning("Ignoring damaged reference cache %s (%s)", self.path, exc)

    def save(self) -> None:
        """Write atomically; an unwritable model dir only costs recomputation next time."""
        if self.path is None:
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            write_json_atomic(self.path, {"format": CACHE_FORMAT, "key": self.key, "species": self.data}, indent=None)
        except OSError as exc:
            log.warning("Could not write the reference cache %s (%s); it will be recomputed", self.path, exc)


def reference_scores(model_dir: str | Path | None, species: str, phrases: Sequence[str],
                     profile: Callable[[list, list[str]], np.ndarray], cache_key: str, max_images: int = 24,
                     progress: bool = False, batch_size: int = 16) -> np.ndarray | None:
    """Scores [n_images, n_phrases] of a species' reference photos, or None when it has no usable photos.

    profile(images, phrases, paths=...) -> scores [n_images, n_phrases] for a batch of PIL photos (and their
    paths, so a caller that already knows something about a photo need not recompute it); only phrases missing
    from the cache are computed, on the same photos as before.
    """
    if model_dir is None:
        return None
    cache = ReferenceCache(model_dir, cache_key)
    entry = cache.data.get(species)
    images = entry["images"] if entry else reference_images(model_dir, species, max_images)
    images = [p for p in images if Path(p).is_file()]
    if not images:
        return None
    if entry is None or entry["images"] != images:
        entry = {"images": images, "scores": {}}
    missing = [p for p in dict.fromkeys(phrases) if p not in entry["scores"]]
    if missing:
        cols = np.full((len(images), len(missing)), np.nan)
        starts = range(0, len(images), batch_size)
        for start in tqdm(starts, desc=f"reference photos of {species}", disable=not progress, leave=False):
            chunk, rows, paths = [], [], []
            for i, path in enumerate(images[start:start + batch_size], start=start):
                try:
                    chunk.append(load_image(path))
                    rows.append(i)
                    paths.append(path)
                except Exception as exc:  # noqa: BLE001 - one unreadable reference photo must not stop describe
                    log.warning("Skipping reference photo %s (%s)", path, exc)
            if chunk:
                cols[rows] = profile(chunk, missing, paths=paths)
        for j, p in enumerate(missing):
            entry["scores"][p] = [None if not np.isfinite(v) else float(v) for v in cols[:, j]]
        cache.data[species] = entry
        cache.save()
    return np.array([[np.nan if v is None else v for v in entry["scores"][p]] for p in phrases], dtype=np.float64).T
