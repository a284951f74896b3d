"""Stage 2 of describe: the top regions of a Finer-CAM map, each with its box, map mass, crop and place on the organism.

Steps (plain numpy/scipy, no model): threshold the map, label connected components, rank them by map mass,
pad each box, suppress boxes that overlap a better one, drop boxes below a minimum size, and cut the crops.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import cv2
import numpy as np
from PIL import Image
from scipy import ndimage
from scipy.cluster.vq import kmeans2
from skimage.color import rgb2lab

from pipeline.masks import Box, mask_box
from traits.vocab import load_vocab


@dataclass
class Region:
    """One region of a map, in image pixels.

    box: the Box (x0, y0, x1, y1), x1/y1 exclusive. mass: share of the whole map's mass inside the box.
    area: share of the image area the box covers. location: where on the organism the box lies
    ('upper left of the organism', ...), or None when no outline could be estimated.
    crop: the photo cut to the box (left out of to_dict).
    """

    index: int
    box: Box
    mass: float
    area: float
    peak: float
    location: str | None = None
    crop: Image.Image | None = field(default=None, repr=False)
    mask: np.ndarray | None = field(default=None, repr=False)  # the map component inside the box, bool [h, w]

    def to_dict(self) -> dict:
        """JSON-able dict (the crop and mask are left out)."""
        return {"index": self.index, "box": [int(v) for v in self.box], "mass": round(float(self.mass), 4),
                "area": round(float(self.area), 4), "peak": round(float(self.peak), 4), "location": self.location}


def _resize_map(cam: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Bilinear resize of a [h, w] map to (width, height) = size."""
    w, h = size
    if cam.shape == (h, w):
        return cam.astype(np.float32)
    img = Image.fromarray(cam.astype(np.float32), mode="F").resize((w, h), Image.BILINEAR)
    return np.asarray(img, dtype=np.float32)


def _iou(a: Box, b: Box) -> float:
    ix = max(0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def _overlap_of_smaller(a: Box, b: Box) -> float:
    ix = max(0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0, min(a[3], b[3]) - max(a[1], b[1]))
    smaller = min((a[2] - a[0]) * (a[3] - a[1]), (b[2] - b[0]) * (b[3] - b[1]))
    return ix * iy / smaller if smaller > 0 else 0.0


def _pad_box(box: Box, pad: float, min_side: int, width: int, height: int) -> Box:
    """Grow a box by `pad` of its size on each side, then to at least min_side, clipped to the image."""
    x0, y0, x1, y1 = box
    bw, bh = x1 - x0, y1 - y0
    px, py = pad * bw, pad * bh
    x0, x1 = x0 - px, x1 + px
    y0, y1 = y0 - py, y1 + py
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    half_w = max((x1 - x0) / 2, min_side / 2)
    half_h = max((y1 - y0) / 2, min_side / 2)
    half_w, half_h = min(half_w, width / 2), min(half_h, height / 2)
    cx = min(max(cx, half_w), width - half_w)
    cy = min(max(cy, half_h), height - half_h)
    return Box(int(round(cx - half_w)), int(round(cy - half_h)), int(round(cx + half_w)), int(round(cy + half_h)))


# The outline is estimated on the photo shrunk to this longest side: enough for wings and tails, and GrabCut
# stays near 0.1 s on a CPU (measured on the Leeds test split: 128 px gave mean IoU 0.73, 256 px 0.78, 384 px 0.81
# at three times the cost).
OUTLINE_SIDE = 256
GRABCUT_ITERATIONS = 2


def organism_mask(image: Image.Image, saliency: np.ndarray | None = None, n_colours: int = 12,
                  refine: bool = True) -> np.ndarray | None:
    """Estimate the organism's outline as a bool [H, W] mask, or None when no clear outline is found.

    A rough outline first: the background of a photo usually reaches the image border, so the border's colours
    (clustered in CIELAB) model it and pixels far from every background colour are foreground; a saliency map
    (e.g. plain Grad-CAM), when given, drops far-off blobs the classifier ignores, and the largest blobs are
    kept. With refine, OpenCV's GrabCut then redraws the outline from colour models of that rough foreground and
    of the border: wings whose colour is close to the background (brown on leaf litter) and parts the saliency
    left out come back (Leeds test split: mean IoU with the hand-drawn masks 0.56 rough, 0.78 refined).
    """
    rgb_full = image.convert("RGB")
    w, h = rgb_full.size
    scale = min(1.0, OUTLINE_SIDE / max(w, h))
    small = rgb_full.resize((max(1, round(w * scale)), max(1, round(h * scale))), Image.BOX) if scale < 1 else rgb_full
    rgb = np.ascontiguousarray(np.asarray(small, dtype=np.uint8))
    lab = rgb2lab(rgb.astype(np.float32) / 255.0)
    sh, sw = lab.shape[:2]
    b = max(1, min(sh, sw) // 24)  # a border strip a few pixels wide
    border = np.concatenate([lab[:b].reshape(-1, 3), lab[-b:].reshape(-1, 3), lab[:, :b].reshape(-1, 3),
                             lab[:, -b:].reshape(-1, 3)])
    k = min(n_colours, len(border))
    with warnings.catch_warnings():  # empty clusters on flat backgrounds are harmless here
        warnings.simplefilter("ignore")
        centres, _ = kmeans2(border.astype(np.float64), k, seed=0, minit="++")
    centres = centres[np.isfinite(centres).all(1)]
    flat = lab.reshape(-1, 3)
    dist = np.sqrt(((flat[:, None, :] - centres[None, :, :]) ** 2).sum(-1)).min(1).reshape(sh, sw)
    border_dist = np.sqrt(((border[:, None, :] - centres[None, :, :]) ** 2).sum(-1)).min(1)
    thr = max(10.0, float(np.percentile(border_dist, 95)) * 1.5)
    fg = dist > thr
    sal = _resize_map(saliency, (sw, sh)) if saliency is not None else None
    if sal is not None:
        fg &= sal > 0.1
    keep = _main_blobs(fg)
    if keep is None and sal is not None:
        keep = _main_blobs(sal > 0.35)  # no colour contrast with the background: fall back on the saliency alone
    if keep is None:
        return None
    if refine:
        keep = _grabcut(rgb, keep, fg, b)
    return np.asarray(Image.fromarray(keep.astype(np.uint8) * 255).resize((w, h), Image.NEAREST)) > 0


def _grabcut(rgb: np.ndarray, rough: np.ndarray, fg: np.ndarray, border: int) -> np.ndarray:
    """The rough outline redrawn by GrabCut: certain background on the border strip, certain foreground in the
    rough outline's eroded core where the colour test agreed, probable foreground within a margin around it."""
    h, w = rough.shape
    labels = np.full((h, w), cv2.GC_PR_BGD, np.uint8)
    labels[ndimage.binary_dilation(rough, iterations=max(2, min(h, w) // 25))] = cv2.GC_PR_FGD
    labels[ndimage.binary_erosion(rough, iterations=2) & fg] = cv2.GC_FGD
    labels[:border] = labels[-border:] = cv2.GC_BGD
    labels[:, :border] = labels[:, -border:] = cv2.GC_BGD
    if not (labels == cv2.GC_BGD).any() or not np.isin(labels, (cv2.GC_FGD, cv2.GC_PR_FGD)).any():
        return rough
    cv2.setRNGSeed(0)  # GrabCut seeds its colour mixtures with k-means: fixed for reproducible outlines
    try:
        cv2.grabCut(np.ascontiguousarray(rgb[:, :, ::-1]), labels, None, np.zeros((1, 65)), np.zeros((1, 65)),
                    GRABCUT_ITERATIONS, cv2.GC_INIT_WITH_MASK)
    except cv2.error:  # degenerate colour models (a flat photo): keep the rough outline
        return rough
    refined = _main_blobs((labels == cv2.GC_FGD) | (labels == cv2.GC_PR_FGD))
    return rough if refined is None else refined


def _main_blobs(fg: np.ndarray) -> np.ndarray | None:
    """The largest blob plus any blob at least a fifth of its size (dark wings split by a thin body), cleaned."""
    fg = ndimage.binary_closing(fg, iterations=2)
    fg = ndimage.binary_opening(fg, iterations=1)
    fg = ndimage.binary_fill_holes(fg)
    labels, n = ndimage.label(fg)
    if n == 0:
        return None
    sizes = ndimage.sum_labels(fg, labels, index=np.arange(1, n + 1))
    keep = np.isin(labels, 1 + np.nonzero(sizes >= 0.2 * sizes.max())[0])
    keep = ndimage.binary_fill_holes(ndimage.binary_closing(keep, iterations=2))
    return keep if 0.02 <= keep.mean() <= 0.97 else None


def describe_location(box: Box, organism: np.ndarray | None) -> str | None:
    """Where a box's centre lies within the organism's bounding box, in words ('upper left', 'centre', ...)."""
    if organism is None or not organism.any():
        return None
    ox0, oy0, ox1, oy1 = mask_box(organism)
    cx = ((box[0] + box[2]) / 2 - ox0) / max(1, ox1 - ox0)
    cy = ((box[1] + box[3]) / 2 - oy0) / max(1, oy1 - oy0)
    if not (-0.1 <= cx <= 1.1 and -0.1 <= cy <= 1.1):
        return "outside the organism"
    vert = "upper" if cy < 0.36 else ("lower" if cy > 0.64 else "")
    horiz = "left" if cx < 0.36 else ("right" if cx > 0.64 else "")
    if vert and horiz:
        return f"{vert} {horiz} of the organism"
    if vert or horiz:
        return f"{vert or horiz} part of the organism"
    return "centre of the organism"


def relative_position(box: Box, organism: np.ndarray | None) -> tuple[float, float] | None:
    """Box centre in organism-box coordinates (0..1 on each axis), or None without an outline."""
    if organism is None or not organism.any():
        return None
    ox0, oy0, ox1, oy1 = mask_box(organism)
    return (float(((box[0] + box[2]) / 2 - ox0) / max(1, ox1 - ox0)),
            float(((box[1] + box[3]) / 2 - oy0) / max(1, oy1 - oy0)))


def extract_regions(image: Image.Image, cam: np.ndarray, top_k: int = 3, threshold: float = 0.5,
                    pad: float = 0.15, min_size: float = 0.08, max_overlap: float = 0.5,
                    organism: np.ndarray | None = None) -> list[Region]:
    """Top regions of `cam` ([h, w] in [0, 1], any size) on `image`, best first.

    threshold: share of the map's maximum a pixel needs to be in a region. min_size: minimum box side as a
    share of the image's shorter side. max_overlap: a box covering more than this share of a better box (or
    covered by it) is dropped. Returns [] for an empty (all-zero) map: nothing separates the species there.
    """
    width, height = image.size
    cam = np.nan_to_num(np.asarray(cam, dtype=np.float32), nan=0.0)
    full = _resize_map(cam, (width, height))
    full = np.clip(full, 0.0, None)
    total = float(full.sum())
    peak = float(full.max()) if full.size else 0.0
    if total <= 0 or peak <= 0:
        return []
    labels, n = ndimage.label(full >= threshold * peak)
    if n == 0:
        return []
    idx = np.arange(1, n + 1)
    masses = ndimage.sum_labels(full, labels, index=idx)
    slices = ndimage.find_objects(labels)
    min_side = max(4, int(round(min_size * min(width, height))))
    candidates = []
    for lab, _mass in sorted(zip(idx, masses, strict=True), key=lambda t: -t[1]):
        sl = slices[lab - 1]
        raw = Box(sl[1].start, sl[0].start, sl[1].stop, sl[0].stop)
        box = _pad_box(raw, pad, min_side, width, height)
        candidates.append((lab, box))
    kept: list[tuple[int, Box]] = []
    for lab, box in candidates:
        if all(_overlap_of_smaller(box, k[1]) <= max_overlap for k in kept):
            kept.append((lab, box))
        if len(kept) >= top_k:
            break
    regions = []
    for i, (lab, box) in enumerate(kept):
        x0, y0, x1, y1 = box
        inside = full[y0:y1, x0:x1]
        regions.append(Region(
            index=i, box=box, mass=float(inside.sum() / total),
            area=float((x1 - x0) * (y1 - y0) / (width * height)), peak=float(inside.max() / peak),
            location=describe_location(box, organism), crop=image.crop(box),
            mask=(labels[y0:y1, x0:x1] == lab)))
    return regions


def part_layout(group: str = "butterfly") -> dict[str, tuple[tuple[float, float, float, float], ...]]:
    """Where parts lie in the organism's core box (u across, v down, both 0..1) for photos in the usual pose of a
    taxon group, from the group's file (butterflies: dorsal view, wings spread; boxes are generous: they only need
    to separate, say, the forewing band from the hindwing margin). Empty for groups whose parts are not located;
    parts missing here are measured on the whole organism, as are all parts of a group with no file (the group
    is checked where the user names it: Pipeline, train)."""
    group_spec = load_vocab().groups.get(group)
    return group_spec.layout if group_spec is not None else {}


# A margin is the outer border of its wing: the organism pixels within this share of the organism's span of its
# outline, inside the wing's layout boxes. Found from the outline itself, so it follows the organism's pose.
MARGIN_WIDTH = 0.05
# Marks inside a wing: measured without that margin strip, so a coloured margin is not read as a band or a spot.
INTERIOR_PARTS = {"band", "spot", "eyespot", "base"}


# Thin appendages (antennae, tails, legs) are left out of the box the layout is laid on: otherwise a tail would
# stretch the box and move every other part's box, so a tailed species would seem to differ everywhere.
APPENDAGE_WIDTH = 0.03  # of the organism's span: structures thinner than about twice this are appendages


def core_box(organism: np.ndarray) -> Box:
    """The Box of the organism without its thin appendages (the whole organism's when nothing is left)."""
    box = mask_box(organism)
    x0, y0, x1, y1 = box
    k = round(APPENDAGE_WIDTH * max(x1 - x0, y1 - y0))
    if k < 1:
        return box
    core = ndimage.binary_opening(organism[y0:y1, x0:x1], iterations=k)
    if core.sum() < 0.5 * np.count_nonzero(organism):
        return box
    cx0, cy0, cx1, cy1 = mask_box(core)
    return Box(x0 + cx0, y0 + cy0, x0 + cx1, y0 + cy1)


def part_pieces(organism: np.ndarray, part: str, group: str = "butterfly",
                box: Box | None = None, keep_empty: bool = False) -> list[np.ndarray]:
    """The part's pixels per layout box (e.g. left and right forewing band), each a bool [H, W] mask; empty
    pieces are left out, and the list is empty when the layout lacks the part or there is no organism.

    Margins ('hindwing margin') are the outline strip inside their wing's boxes, not a fixed box. box: the
    organism's core_box when the caller already has it (it is the same for every part of one photo).
    keep_empty: one piece per layout box, empty ones included (pieces of two parts then pair up by side)."""
    layout = part_layout(group)
    wing = part[: -len(" margin")] if part.endswith(" margin") else None
    boxes = layout.get(wing) if wing in layout else layout.get(part)
    if boxes is None or organism is None or not organism.any():
        return []
    ox0, oy0, ox1, oy1 = box or core_box(organism)
    keep = organism
    if wing in layout or part.rsplit(" ", 1)[-1] in INTERIOR_PARTS:
        width = max(1, round(MARGIN_WIDTH * max(ox1 - ox0, oy1 - oy0)))
        # Outside the image counts as organism: where the photo cuts the organism off, its margin is not in view.
        strip = organism & ~ndimage.binary_erosion(organism, iterations=width, border_value=1)
        keep = strip if wing in layout else organism & ~strip
    pieces = []
    for u0, v0, u1, v1 in boxes:
        x0, x1 = int(ox0 + u0 * (ox1 - ox0)), int(np.ceil(ox0 + u1 * (ox1 - ox0)))
        y0, y1 = int(oy0 + v0 * (oy1 - oy0)), int(np.ceil(oy0 + v1 * (oy1 - oy0)))
        x0, y0 = max(x0, 0), max(y0, 0)
        piece = np.zeros_like(organism, dtype=bool)
        piece[y0:y1, x0:x1] = keep[y0:y1, x0:x1]
        if keep_empty or piece.any():
            pieces.append(piece)
    return pieces


def part_mask(organism: np.ndarray, part: str, group: str = "butterfly",
              box: Box | None = None) -> np.ndarray | None:
    """The organism pixels that lie in the layout boxes of `part` (bool [H, W]); None when the layout lacks it.

    Margins ('hindwing margin') are the outline strip inside their wing's boxes, not a fixed box."""
    pieces = part_pieces(organism, part, group, box)
    return np.logical_or.reduce(pieces) if pieces else None


def masked_crop(image: Image.Image, mask: np.ndarray | None, box: Box | None = None) -> Image.Image:
    """An RGBA crop whose alpha is `mask` (the organism, or a part of it), cut to `box` or to the mask's extent."""
    if mask is None:
        rgba = image.convert("RGBA")
        return rgba.crop(box) if box else rgba
    if box is None:
        box = mask_box(mask)
        if box is None:
            return image.convert("RGBA").crop(Box(0, 0, 1, 1))
    x0, y0, x1, y1 = box
    rgba = image.crop(box).convert("RGBA")
    alpha = Image.fromarray((mask[y0:y1, x0:x1] * 255).astype(np.uint8), mode="L")
    rgba.putalpha(alpha)
    return rgba
