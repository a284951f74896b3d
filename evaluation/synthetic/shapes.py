"""The synthetic shapes dataset of Domeniconi et al.: 6 classes (filled/outline circle, square, triangle).

One random-coloured, randomly rotated shape per image, in one of three size ranges (about 80-100, 40-50 and 20-25
px on a 256 px canvas, scaled with the image size), on a cluttered noise background; the ground truth is the
shape's own pixel mask.
"""

from __future__ import annotations

import colorsys
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from evaluation.synthetic import draw
from evaluation.synthetic import io as dataset_io

DATASET_VERSION = 1
SHAPE_CLASSES = ["filled circle", "outline circle", "filled square", "outline square", "filled triangle",
                 "outline triangle"]
# Shape diameter ranges in pixels on a 256 px canvas (the paper's three scales).
SIZE_RANGES = {"large": (80, 100), "medium": (40, 50), "small": (20, 25)}


def _shape_polygon(kind: str, centre: np.ndarray, diameter: float, angle: float) -> list[tuple[float, float]]:
    n = 4 if kind == "square" else 3
    # Vertices on the circumscribed circle; a square's side is then diameter / sqrt(2).
    phis = angle + np.arange(n) * 2 * np.pi / n
    r = diameter / 2
    return [(float(centre[0] + r * np.cos(p)), float(centre[1] + r * np.sin(p))) for p in phis]


def render_shape(cls: str, size: int, rng: np.random.Generator, clutter: float = 0.5) -> tuple[np.ndarray, np.ndarray, str]:
    """One image: (HxWx3 uint8 RGB, HxW bool mask of the shape's pixels, size range name)."""
    fill_kind, kind = cls.split(" ")
    range_name = list(SIZE_RANGES)[rng.integers(0, 3)]
    lo, hi = SIZE_RANGES[range_name]
    diameter = rng.uniform(lo, hi) * size / 256
    margin = diameter / 2 + 1
    centre = rng.uniform(margin, size - margin, size=2)
    angle = rng.uniform(0, 2 * np.pi)
    hue, sat, val = rng.random(), rng.uniform(0.6, 1.0), rng.uniform(0.6, 1.0)
    colour = np.array(colorsys.hsv_to_rgb(hue, sat, val), dtype=np.float32) * 255
    # Draw at 2x and average down: anti-aliased edges; the mask is where the shape covers >= half a pixel.
    big = Image.new("L", (2 * size, 2 * size), 0)
    d = ImageDraw.Draw(big)
    width = max(2, int(round(2 * 0.12 * diameter)))
    c2, dia2 = centre * 2, diameter * 2
    if kind == "circle":
        box = [c2[0] - dia2 / 2, c2[1] - dia2 / 2, c2[0] + dia2 / 2, c2[1] + dia2 / 2]
        d.ellipse(box, fill=255 if fill_kind == "filled" else None, outline=255, width=width)
    else:
        poly = _shape_polygon(kind, c2, dia2, angle)
        if fill_kind == "filled":
            d.polygon(poly, fill=255)
        else:
            d.line(poly + [poly[0], poly[1]], fill=255, width=width, joint="curve")
    alpha = np.asarray(big, dtype=np.float32).reshape(size, 2, size, 2).mean(axis=(1, 3))[..., None] / 255
    background = draw.cluttered_background(size, rng, clutter, blobs=False).astype(np.float32)
    rgb = alpha * colour + (1 - alpha) * background
    return np.clip(rgb, 0, 255).astype(np.uint8), alpha[..., 0] >= 0.5, range_name


def make_shapes(out_dir: str | Path, n_per_class: int = 100, image_size: int = 256, seed: int = 0,
                test_fraction: float = 0.25, clutter: float = 0.5, overwrite: bool = False,
                progress: bool = False) -> Path:
    """Write the synthetic shapes dataset to out_dir (layout: see evaluation.synthetic) and return its path."""
    dataset_io.check_dataset_args("n_per_class", n_per_class, image_size, test_fraction,
                       "Use e.g. 64-128 for tests, 256 for the paper's setting.")
    config = dict(name="synthetic-shapes", version=DATASET_VERSION, seed=int(seed), image_size=int(image_size),
                  n_per_class=int(n_per_class), test_fraction=float(test_fraction), clutter=float(clutter))
    with dataset_io.atomic_dataset_dir(out_dir, config, overwrite) as tmp:
        if tmp is None:
            return Path(out_dir)
        rows = []
        for k, stem, split, rng in dataset_io.dataset_images(SHAPE_CLASSES, n_per_class, seed, test_fraction,
                                                             "synthetic shapes", progress):
            cls = SHAPE_CLASSES[k]
            rgb, mask, range_name = render_shape(cls, image_size, rng, clutter)
            dataset_io.save_png(tmp / "images" / stem, rgb)
            dataset_io.save_png(tmp / "masks" / stem, mask.astype(np.uint8) * 255)
            rows.append(dict(image=f"images/{stem}", species=cls, common_name=cls.capitalize(), split=split,
                             mask=f"masks/{stem}", size_range=range_name))
        dataset_io.write_csv(tmp / dataset_io.MANIFEST,
                             ["image", "species", "common_name", "split", "mask", "size_range"], rows)
        dataset_io.write_json(tmp / "parts.json", {"1": "shape"})
        dataset_io.write_json(tmp / dataset_io.DATASET_JSON, dict(
            config=config, name="synthetic-shapes", version=DATASET_VERSION, seed=int(seed),
            image_size=int(image_size), n_images=len(rows), n_per_class=int(n_per_class),
            species=[dict(name=c, common_name=c.capitalize(), folder=dataset_io.folder_name(c))
                     for c in SHAPE_CLASSES],
            splits=dataset_io.split_counts(rows),
            files=dict(manifest=dataset_io.MANIFEST, parts="parts.json")))
    return Path(out_dir)
