"""Image loading: every odd input becomes 8-bit RGB or a clear BadImageError."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from pipeline import images
from pipeline.errors import BadImageError
from pipeline.images import load_image


def test_grayscale_rgba_and_palette_become_rgb(tmp_path):
    Image.new("L", (20, 10), 128).save(tmp_path / "g.png")
    rgba = Image.new("RGBA", (20, 10), (255, 0, 0, 0))
    rgba.save(tmp_path / "a.png")
    Image.new("P", (20, 10), 3).save(tmp_path / "p.gif")
    for name in ("g.png", "a.png", "p.gif"):
        img = load_image(tmp_path / name)
        assert img.mode == "RGB" and img.size == (20, 10)
    # Fully transparent pixels are composited on white, not left as their hidden colour.
    assert load_image(tmp_path / "a.png").getpixel((0, 0)) == (255, 255, 255)
    assert load_image(tmp_path / "g.png").getpixel((5, 5)) == (128, 128, 128)


def test_16bit_images_keep_their_contrast(tmp_path):
    arr = np.zeros((16, 16), np.uint16)
    arr[:, 8:] = 4000  # a dim 16-bit image: naive conversion would make it near-black
    Image.fromarray(arr).save(tmp_path / "deep.png")
    img = np.asarray(load_image(tmp_path / "deep.png"))
    assert img[0, 0, 0] == 0 and img[0, 15, 0] == 255


def test_arrays_in_common_layouts():
    assert load_image(np.zeros((3, 12, 14), np.float32)).size == (14, 12)  # CHW
    assert load_image(np.ones((12, 14, 1), np.float64)).getpixel((0, 0)) == (255, 255, 255)
    with pytest.raises(BadImageError, match="is not an image"):
        load_image(np.zeros((5,)))
    with pytest.raises(BadImageError, match="NaN"):
        load_image(np.full((12, 12), np.nan))


def test_truncated_missing_and_non_images_fail_clearly(tmp_path):
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), np.uint8)).save(tmp_path / "ok.jpg")
    data = (tmp_path / "ok.jpg").read_bytes()
    (tmp_path / "cut.jpg").write_bytes(data[: len(data) // 2])
    (tmp_path / "notes.jpg").write_text("not a photo")
    with pytest.raises(BadImageError, match="damaged or truncated"):
        load_image(tmp_path / "cut.jpg")
    with pytest.raises(BadImageError, match="not an image file"):
        load_image(tmp_path / "notes.jpg")
    with pytest.raises(BadImageError, match="does not exist"):
        load_image(tmp_path / "nope.jpg")
    with pytest.raises(BadImageError, match="is a folder"):
        load_image(tmp_path)
    with pytest.raises(BadImageError, match="Cannot read an image from a int"):
        load_image(3)


def test_tiny_and_huge_images_are_refused(tmp_path, monkeypatch):
    with pytest.raises(BadImageError, match="only 4x4"):
        load_image(Image.new("RGB", (4, 4)))
    monkeypatch.setattr(images, "MAX_PIXELS", 1000)
    Image.new("RGB", (100, 100)).save(tmp_path / "big.png")
    with pytest.raises(BadImageError, match="above the 1,000-pixel limit"):
        load_image(tmp_path / "big.png")
