"""Drawing maps over photos and the side-by-side panel (PIL only, no plotting library needed)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw, ImageFont

from traits.errors import PathError
from traits.io import atomic_write, make_folder

# Anchors of a perceptually ordered dark-blue -> yellow-white heat scale (hand-made: matplotlib is not a dependency).
_ANCHORS = np.array([[0, 0, 4], [40, 11, 84], [101, 21, 110], [159, 42, 99], [212, 72, 66], [245, 125, 21],
                     [250, 193, 39], [252, 255, 164]], dtype=np.float32)


def colorize(m: np.ndarray) -> np.ndarray:
    """Map values in [0, 1] [H, W] -> RGB uint8 [H, W, 3]."""
    pos = np.clip(m, 0, 1) * (len(_ANCHORS) - 1)
    lo = np.floor(pos).astype(int).clip(0, len(_ANCHORS) - 2)
    frac = (pos - lo)[..., None]
    return (_ANCHORS[lo] * (1 - frac) + _ANCHORS[lo + 1] * frac).astype(np.uint8)


def overlay(photo: Image.Image, cam: torch.Tensor) -> Image.Image:
    """The map resized to the photo (the model saw the whole photo resized, no crop) and blended over it."""
    w, h = photo.size
    m = F.interpolate(cam[None, None].float(), size=(h, w), mode="bilinear", align_corners=False)[0, 0].numpy()
    alpha = (0.12 + 0.63 * m)[..., None]
    out = np.asarray(photo.convert("RGB"), dtype=np.float32) * (1 - alpha) + colorize(m) * alpha
    return Image.fromarray(out.clip(0, 255).astype(np.uint8))


def outline(img: Image.Image, cam: torch.Tensor, threshold: float = 0.5, colour: tuple[int, int, int] = (0, 255, 255),
            ) -> Image.Image:
    """The image with the contour of the region where the map is at least `threshold` of its peak drawn on it,
    traced at the image's own resolution (the map is resized to it first)."""
    import cv2

    w, h = img.size
    m = F.interpolate(torch.as_tensor(cam)[None, None].float(), size=(h, w), mode="bilinear",
                      align_corners=False)[0, 0].numpy()
    region = (m >= threshold * max(float(m.max()), 1e-8)).astype(np.uint8)
    contours, _ = cv2.findContours(region, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    out = np.array(img.convert("RGB"))  # a writable copy: OpenCV draws in place
    cv2.drawContours(out, contours, -1, colour, thickness=max(1, round(max(w, h) / 250)))
    return Image.fromarray(out)


def _font(size: int) -> ImageFont.ImageFont:
    try:
        return ImageFont.truetype("DejaVuSans.ttf", size)
    except OSError:
        return ImageFont.load_default(size=size)


def _wrap(draw: ImageDraw.ImageDraw, text: str, font, width: int) -> list[str]:
    lines, line = [], ""
    for word in text.split():
        trial = f"{line} {word}".strip()
        if draw.textlength(trial, font=font) <= width or not line:
            line = trial
        else:
            lines.append(line)
            line = word
    return lines + ([line] if line else [])


def panel(photo: Image.Image, tiles: list[tuple[str, Image.Image]], title: list[str], height: int = 320) -> Image.Image:
    """Tiles side by side at one height, each captioned, under a title of one or more lines."""
    scaled = [(cap, im.resize((max(1, round(im.width * height / im.height)), height), Image.Resampling.LANCZOS))
              for cap, im in [("Photo", photo), *tiles]]
    pad, fs = 12, max(14, height // 18)
    width = sum(im.width for _, im in scaled) + pad * (len(scaled) + 1)
    probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    title_lines = [ln for i, t in enumerate(title) for ln in _wrap(probe, t, _font(fs + (4 if i == 0 else 0)), width - 2 * pad)]
    caps = [_wrap(probe, cap, _font(fs), im.width) for cap, im in scaled]
    top = pad + len(title_lines) * (fs + 8) + pad
    cap_h = max(len(c) for c in caps) * (fs + 4) + pad
    canvas = Image.new("RGB", (width, top + height + cap_h + pad), "white")
    draw = ImageDraw.Draw(canvas)
    y = pad
    for i, line in enumerate(title_lines):
        draw.text((pad, y), line, fill="black", font=_font(fs + (4 if i == 0 else 0)))
        y += fs + 8
    x = pad
    for (_, im), cap in zip(scaled, caps, strict=True):
        canvas.paste(im, (x, top))
        for j, line in enumerate(cap):
            draw.text((x, top + height + 6 + j * (fs + 4)), line, fill="black", font=_font(fs))
        x += im.width + pad
    return canvas


def save_image_atomic(img: Image.Image, out: Path) -> Path:
    """Write via a temporary file in the same folder, then rename: no half-written files."""
    out = Path(out)
    if out.suffix.lower() not in (".png", ".jpg", ".jpeg", ".webp"):
        raise PathError(f"Cannot tell the image format of {out}.", "Use a file name ending in .png or .jpg.")
    make_folder(out.parent)
    return atomic_write(out, img.save)
