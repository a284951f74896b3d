"""Drawing helpers shared by the synthetic datasets: palette, cluttered backgrounds, masks, pose warps, nuisances."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from pipeline.masks import mask_box

# The base palette of traits/ with one canonical sRGB value each; sibling species use these exact values so a
# colour measurement (e.g. nearest palette entry in CIELAB) recovers the designed colour name.
PALETTE: dict[str, tuple[int, int, int]] = {
    "black": (25, 25, 25),
    "white": (240, 240, 240),
    "grey": (128, 128, 128),
    "brown": (125, 80, 45),
    "red": (205, 30, 35),
    "orange": (245, 135, 20),
    "yellow": (245, 215, 40),
    "green": (50, 150, 65),
    "blue": (40, 90, 205),
    "purple": (125, 55, 165),
    "pink": (240, 140, 185),
}


@dataclass(frozen=True)
class Nuisance:
    """How much each image varies apart from the designed traits; `Nuisance.none()` gives clean, centred images.

    rotation: max in-plane rotation in degrees (uniform in +-rotation).
    scale: range of the organism's span as a fraction of the image side.
    shift: max offset of the organism's centre as a fraction of the image side.
    clutter: background clutter strength in [0, 1] (0 = plain grey).
    color_jitter: max relative per-channel gain change (illumination / white balance).
    blur: max Gaussian blur radius in pixels at 128 px (scaled with the image size).
    occlusion: probability that an occluding blob covers part of the organism.
    occlusion_size: max occluder side as a fraction of the organism's span.
    """

    rotation: float = 30.0
    scale: tuple[float, float] = (0.6, 0.85)
    shift: float = 0.08
    clutter: float = 0.5
    color_jitter: float = 0.08
    blur: float = 0.8
    occlusion: float = 0.2
    occlusion_size: float = 0.25

    @classmethod
    def none(cls) -> Nuisance:
        """No nuisance at all: upright, centred, fixed scale, plain background."""
        return cls(rotation=0.0, scale=(0.8, 0.8), shift=0.0, clutter=0.0, color_jitter=0.0, blur=0.0,
                   occlusion=0.0, occlusion_size=0.0)

    def to_dict(self) -> dict:
        """Plain-JSON form (tuples become lists)."""
        d = asdict(self)
        d["scale"] = list(self.scale)
        return d


def cluttered_background(size: int, rng: np.random.Generator, clutter: float, blobs: bool = True) -> np.ndarray:
    """A muted, cluttered background (smooth colour noise, blobs, strokes and pixel noise) as HxWx3 uint8.

    blobs=False draws strokes only (the shapes dataset: blobs there would look like small filled circles).
    """
    base = np.full((size, size, 3), 128.0)
    if clutter <= 0:
        return base.astype(np.uint8)
    # Low-frequency colour noise: a coarse random grid upsampled smoothly.
    coarse = rng.normal(0.0, 40.0 * clutter, size=(6, 6, 3)).astype(np.float32)
    smooth = np.stack([np.asarray(Image.fromarray(coarse[..., c], mode="F").resize((size, size), Image.BICUBIC))
                       for c in range(3)], axis=-1)
    img = Image.fromarray(np.clip(base + smooth, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(img)
    n_shapes = int(round(14 * clutter))
    for _ in range(n_shapes):
        # Muted colours (mixed halfway with grey) so the clutter never looks like a trait colour patch.
        colour = tuple(int(0.5 * c + 64) for c in rng.integers(0, 256, size=3))
        x, y = rng.uniform(0, size, size=2)
        r = rng.uniform(0.03, 0.12) * size
        if blobs and rng.random() < 0.5:
            draw.ellipse([x - r, y - r * rng.uniform(0.4, 1.0), x + r, y + r * rng.uniform(0.4, 1.0)], fill=colour)
        else:
            x2, y2 = rng.uniform(0, size, size=2)
            draw.line([x, y, x2, y2], fill=colour, width=max(1, int(r / 4)))
    out = np.asarray(img, dtype=np.float32) + rng.normal(0.0, 12.0 * clutter, size=(size, size, 3))
    return np.clip(out, 0, 255).astype(np.uint8)


def polygon_mask(size: int, points: Sequence[tuple[float, float]]) -> np.ndarray:
    """Boolean mask of a filled polygon given in pixel coordinates."""
    img = Image.new("L", (size, size), 0)
    ImageDraw.Draw(img).polygon([tuple(map(float, p)) for p in points], fill=1)
    return np.asarray(img, dtype=bool)


def ellipse_mask(size: int, centre: tuple[float, float], radii: tuple[float, float]) -> np.ndarray:
    """Boolean mask of a filled axis-aligned ellipse in pixel coordinates."""
    (cx, cy), (rx, ry) = centre, radii
    img = Image.new("L", (size, size), 0)
    ImageDraw.Draw(img).ellipse([cx - rx, cy - ry, cx + rx, cy + ry], fill=1)
    return np.asarray(img, dtype=bool)


def erode(mask: np.ndarray, pixels: int) -> np.ndarray:
    """Binary erosion by a (2*pixels+1) square, via PIL's MinFilter (fast, no extra dependency)."""
    if pixels <= 0:
        return mask
    img = Image.fromarray(mask.astype(np.uint8) * 255)
    return np.asarray(img.filter(ImageFilter.MinFilter(2 * pixels + 1))) > 0


def warp_labels(template: np.ndarray, out_size: int, angle_deg: float, span: float, centre: tuple[float, float]) -> np.ndarray:
    """Place a square label template into an out_size image: rotate by angle, scale so the template side covers
    `span` output pixels, centre it at `centre` (output pixels). Nearest-neighbour, so labels stay exact."""
    t = template.shape[0]
    k = span / t  # output pixels per template pixel
    a = np.deg2rad(angle_deg)
    cos, sin = np.cos(a) / k, np.sin(a) / k
    cx, cy = centre
    # PIL's affine maps each output pixel to a template pixel (inverse mapping): rotate by -angle, scale by 1/k.
    coeffs = (cos, sin, t / 2 - cos * cx - sin * cy, -sin, cos, t / 2 + sin * cx - cos * cy)
    img = Image.fromarray(template).transform((out_size, out_size), Image.AFFINE, coeffs, resample=Image.NEAREST,
                                              fillcolor=0)
    return np.asarray(img)


def colour_jitter(rgb: np.ndarray, rng: np.random.Generator, amount: float) -> np.ndarray:
    """Per-channel gain change of up to +-amount, like a change of light or white balance."""
    if amount <= 0:
        return rgb
    gain = 1.0 + rng.uniform(-amount, amount, size=3)
    return np.clip(rgb.astype(np.float32) * gain, 0, 255).astype(np.uint8)


def blur(rgb: np.ndarray, radius: float) -> np.ndarray:
    """Gaussian blur with the given radius in pixels (no-op below 0.05)."""
    if radius < 0.05:
        return rgb
    return np.asarray(Image.fromarray(rgb).filter(ImageFilter.GaussianBlur(radius)))


def occluder(size: int, bbox: tuple[float, float, float, float], max_frac: float,
             rng: np.random.Generator) -> np.ndarray:
    """Boolean mask of one occluding blob (ellipse or rectangle) placed over the object's bounding box."""
    x0, y0, x1, y1 = bbox
    span = max(x1 - x0, y1 - y0, 1.0)
    w, h = rng.uniform(0.4, 1.0, size=2) * max_frac * span
    cx, cy = rng.uniform(x0, x1), rng.uniform(y0, y1)
    img = Image.new("L", (size, size), 0)
    draw = ImageDraw.Draw(img)
    box = [cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2]
    if rng.random() < 0.5:
        draw.ellipse(box, fill=1)
    else:
        draw.rectangle(box, fill=1)
    return np.asarray(img, dtype=bool)


def bbox_of(mask: np.ndarray) -> tuple[float, float, float, float]:
    """(x0, y0, x1, y1) of the True pixels, or the whole image when there are none."""
    box = mask_box(mask)
    if box is None:
        return 0.0, 0.0, float(mask.shape[1]), float(mask.shape[0])
    return float(box[0]), float(box[1]), float(box[2]), float(box[3])
