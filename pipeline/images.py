"""Reading photos from paths, PIL images or arrays into clean 8-bit RGB, with clear errors."""

from __future__ import annotations

import stat
import warnings
from collections.abc import Iterable
from pathlib import Path

import numpy as np
from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

from traits.errors import BadImageError

ImageSource = str | Path | Image.Image | np.ndarray

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp"}
MAX_PIXELS = 120_000_000  # about 11k x 11k: beyond this a photo is almost surely a mistake or a decompression bomb
MIN_SIDE = 8
# Truncated files must fail loudly rather than load half-grey.
ImageFile.LOAD_TRUNCATED_IMAGES = False


def is_image_file(path: Path) -> bool:
    """True when the file name has a known image suffix."""
    return path.suffix.lower() in IMAGE_SUFFIXES


def image_files(paths: Iterable[str | Path]) -> list[Path]:
    """The photos named by paths: files as given, folders expanded to their image files (sorted, not recursive)."""
    out: list[Path] = []
    for path in map(Path, paths):
        if path.is_dir():
            found = sorted(p for p in path.iterdir() if p.is_file() and is_image_file(p))
            if not found:
                raise BadImageError(f"The folder {path} holds no photos ({', '.join(sorted(IMAGE_SUFFIXES))}).",
                                    "Pass photo files, or a folder that holds some.")
            out += found
        else:
            out.append(path)
    return out


def _to_rgb(img: Image.Image, name: str) -> Image.Image:
    if img.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        # 16-bit and float grayscale: stretch the real range to 8 bits instead of clipping to white.
        arr = np.asarray(img, dtype=np.float64)
        return Image.fromarray(_scale_to_uint8(arr, name)).convert("RGB")
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        background = Image.new("RGB", rgba.size, (255, 255, 255))
        background.paste(rgba, mask=rgba.getchannel("A"))
        return background
    return img.convert("RGB")


def _scale_to_uint8(arr: np.ndarray, name: str) -> np.ndarray:
    if not np.isfinite(arr).all():
        raise BadImageError(f"Image {name} contains NaN or infinite values.", "Pass finite pixel values.")
    if arr.dtype == np.uint8:
        return arr
    if np.issubdtype(arr.dtype, np.floating) and arr.size and arr.min() >= 0 and arr.max() <= 1:
        return np.round(arr * 255).astype(np.uint8)
    lo, hi = (float(arr.min()), float(arr.max())) if arr.size else (0.0, 0.0)
    if np.issubdtype(arr.dtype, np.integer) and lo >= 0 and hi <= 255:
        return arr.astype(np.uint8)
    if hi <= lo:
        return np.zeros(arr.shape, dtype=np.uint8)
    return np.round((arr.astype(np.float64) - lo) / (hi - lo) * 255).astype(np.uint8)


def _check_size(width: int, height: int, name: str) -> None:
    if width * height > MAX_PIXELS:
        raise BadImageError(f"Image {name} is {width}x{height} pixels, above the {MAX_PIXELS:,}-pixel limit.",
                            "Downscale the photo (a longest side of 1000-4000 px is plenty).")
    if min(width, height) < MIN_SIDE:
        raise BadImageError(f"Image {name} is only {width}x{height} pixels.",
                            f"Use a photo at least {MIN_SIDE} px on each side (224 px or more is best).")


EXIF_ORIENTATION = 0x0112
_TRANSPOSED = (5, 6, 7, 8)  # EXIF orientations that swap width and height


def upright(img: Image.Image) -> Image.Image:
    """The photo as its owner sees it: EXIF orientation applied (phones store portraits sideways + a tag)."""
    try:
        orientation = img.getexif().get(EXIF_ORIENTATION, 1)
    except Exception:  # noqa: BLE001 - a damaged EXIF block leaves the pixels as stored
        return img
    if orientation in (None, 1):
        return img
    try:
        return ImageOps.exif_transpose(img)
    except Exception:  # noqa: BLE001
        return img


def upright_size(path: str | Path) -> tuple[int, int]:
    """(width, height) of an image file as displayed (after its EXIF orientation), without decoding pixels."""
    check_regular_file(Path(path))
    with Image.open(path) as img:
        w, h = img.size
        try:
            orientation = img.getexif().get(EXIF_ORIENTATION, 1)
        except Exception:  # noqa: BLE001
            orientation = 1
    return (h, w) if orientation in _TRANSPOSED else (w, h)


def check_regular_file(path: Path) -> None:
    """Raise BadImageError unless path is a regular file (a named pipe or device would block or never end)."""
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        raise BadImageError(f"Image file {path} does not exist.",
                            "Check the path (relative paths start from the current folder).") from None
    except OSError as exc:
        raise BadImageError(f"Image file {path} cannot be read ({exc.strerror or exc}).",
                            "Check the path and its permissions.") from exc
    if stat.S_ISDIR(mode):
        raise BadImageError(f"{path} is a folder, not an image file.", "Pass one image file.")
    if not stat.S_ISREG(mode):
        raise BadImageError(f"{path} is not a regular file (a named pipe, socket or device).",
                            "Pass a photo file saved on disk.")


ACHROMATIC_CHROMA = 8  # 0-255 channel spread: below this at the 99th percentile a photo carries no colour


def is_achromatic(img: Image.Image) -> bool:
    """True for a photo without colour (grayscale, 16-bit mono, or RGB with equal channels): hues can't be judged."""
    small = img.convert("RGB")
    small.thumbnail((128, 128))
    arr = np.asarray(small, dtype=np.int16)
    spread = arr.max(axis=-1) - arr.min(axis=-1)
    return float(np.percentile(spread, 99)) < ACHROMATIC_CHROMA


def check_image_bytes(data: bytes, name: str, pil_format: str, max_pixels: int = MAX_PIXELS) -> tuple[int, int]:
    """(width, height) of encoded image bytes of pil_format (e.g. 'PNG'), read from the header only, after checking
    the decoded-pixel limit and the file's structure (Pillow's verify); BadImageError otherwise. For uploads:
    nothing is decoded, so a decompression bomb is refused before it costs memory."""
    import io

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data), formats=[pil_format]) as img:
                w, h = img.size
                if w * h > max_pixels:
                    raise BadImageError(f"The uploaded photo is {w}x{h} = {w * h:,} pixels, above the "
                                        f"{max_pixels:,}-pixel limit.", "Downscale the photo.")
                img.verify()
    except BadImageError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning, UnidentifiedImageError, OSError,
            SyntaxError, ValueError) as exc:
        raise BadImageError(f"The uploaded file {name!r} is a damaged or unreadable image ({exc}).",
                            "Re-export the photo and upload it again.") from exc
    return w, h


def load_image(source: ImageSource) -> Image.Image:
    """Load a path, PIL image or HxW / HxWxC array as an 8-bit RGB PIL image, or raise BadImageError.

    Paths and PIL images are turned upright by their EXIF orientation, so every stage sees what the user sees.
    """
    if isinstance(source, Image.Image):
        _check_size(*source.size, name="(PIL image)")
        return _to_rgb(upright(source), "(PIL image)")
    if isinstance(source, np.ndarray):
        return _array_to_image(source)
    if isinstance(source, (str, Path)):
        return _read_file(Path(source))
    raise BadImageError(f"Cannot read an image from a {type(source).__name__}.",
                        "Pass a file path, a PIL.Image or a numpy array (HxW or HxWx3).")


def _array_to_image(arr: np.ndarray) -> Image.Image:
    if arr.ndim == 3 and arr.shape[0] in (1, 3, 4) and arr.shape[-1] not in (1, 3, 4):
        arr = np.moveaxis(arr, 0, -1)  # accept CHW tensors converted to numpy
    if arr.ndim == 3 and arr.shape[-1] == 1:
        arr = arr[..., 0]
    if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[-1] not in (3, 4)):
        raise BadImageError(f"Array of shape {arr.shape} is not an image.",
                            "Pass an HxW (grayscale), HxWx3 (RGB) or HxWx4 (RGBA) array.")
    _check_size(arr.shape[1], arr.shape[0], name="(array)")
    img = Image.fromarray(_scale_to_uint8(np.asarray(arr), "(array)"))
    return _to_rgb(img, "(array)")


def _read_file(path: Path) -> Image.Image:
    check_regular_file(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as img:
                _check_size(*img.size, name=str(path))
                img.load()
                return _to_rgb(upright(img), str(path))
    except BadImageError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise BadImageError(f"Image {path} is too large to open safely ({exc}).", "Downscale the photo.") from exc
    except UnidentifiedImageError as exc:
        raise BadImageError(f"{path} is not an image file that can be read.",
                            "Pass a JPEG, PNG, TIFF, BMP or WebP photo.") from exc
    except (OSError, SyntaxError, ValueError) as exc:
        raise BadImageError(f"Image {path} is damaged or truncated ({exc}).", "Re-export or re-download the photo.") from exc
