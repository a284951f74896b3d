"""Ablations of describe's Finer-CAM stage: the same Pipeline with its Finer-CAM maps replaced.

`--maps flat` (every pixel the same: the whole photo is one region), `random` (smooth random maps, seeded per
photo) or `gradcam` (the plain Grad-CAM map of the target, which marks the whole organism). Everything else (the
classifier, references, scorer, ranking) is unchanged, so a benchmark run with and without the real maps says
how much the maps carry.
"""

from __future__ import annotations

import zlib
from typing import Any

import numpy as np
from PIL import Image
from scipy import ndimage

from pipeline.describe import Pipeline

MAPS = ("finer", "flat", "random", "gradcam")


def replacement_map(kind: str, like: np.ndarray, gradcam: np.ndarray, seed: int) -> np.ndarray:
    """A map of `like`'s shape in [0, 1]: flat ones, smooth random (Gaussian-blurred noise) or the Grad-CAM map."""
    if kind == "flat":
        return np.ones_like(like, dtype=np.float32)
    if kind == "gradcam":
        return gradcam.astype(np.float32)
    if kind == "random":
        noise = np.random.default_rng(seed).random(like.shape)
        smooth = ndimage.gaussian_filter(noise, sigma=max(like.shape) / 16)
        smooth = (smooth - smooth.min()) / max(float(np.ptp(smooth)), 1e-9)
        return smooth.astype(np.float32)
    raise ValueError(f"unknown map kind {kind!r}; use one of {MAPS}")


class AblatedPipeline(Pipeline):
    """A Pipeline whose Finer-CAM maps (both directions) are replaced by `maps` ('finer' keeps them)."""

    def __init__(self, *args: Any, maps: str = "finer", **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if maps not in MAPS:
            raise ValueError(f"unknown map kind {maps!r}; use one of {MAPS}")
        self.maps_kind = maps

    def maps(self, img: Image.Image, t_idx: int, c_idx: int) -> tuple[dict[str, np.ndarray], list]:
        """Stage 1 with the Finer-CAM maps (both directions) replaced; the CAM results stay for provenance."""
        maps, cams = super().maps(img, t_idx, c_idx)
        if self.maps_kind != "finer":
            seed = zlib.crc32(img.tobytes()[:4096]) + 31 * t_idx + c_idx
            for i, name in enumerate(("finer", "finer_reverse")):
                maps[name] = replacement_map(self.maps_kind, maps[name], maps["gradcam"], seed + i)
        return maps, cams


def load_pipeline(model: Any, maps: str = "finer", **kwargs: Any) -> Pipeline:
    """Pipeline.load, with the Finer-CAM maps replaced unless maps == 'finer'."""
    if maps == "finer":
        return Pipeline.load(model, **kwargs)
    return AblatedPipeline.load(model, maps=maps, **kwargs)
