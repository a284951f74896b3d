"""Multimodal Finer-CAM: a text prompt against a generic prompt, on a tiny random open_clip model."""

from __future__ import annotations

import pytest
import torch
from cam_helpers import images, tiny_cnn, tiny_zero_shot

from pipeline.cam import explain, explain_text
from pipeline.errors import ConfigError


@pytest.fixture(scope="module")
def zs():
    return tiny_zero_shot()


def test_text_cam_is_prompt_minus_gamma_generic(zs):
    x = images(2, zs.preprocess.size)
    p, q = "orange band on the forewing", "a photo of a butterfly"
    finer = explain_text(zs, x, p, contrast_prompt=q, gamma=0.8)
    assert finer.maps.shape == (2, 32, 32) and finer.raw.shape == (2, 4, 4)  # class token dropped, 4x4 patches
    assert finer.target_idx.tolist() == [0, 0] and finer.reference_idx.tolist() == [[1], [1]]
    # y(p) - gamma y(q) before the ReLU: check against the two plain text maps
    only_p = explain_text(zs, x, p, contrast_prompt="unused", method="gradcam").raw
    only_q = explain_text(zs, x, q, contrast_prompt="unused", method="gradcam").raw
    assert torch.allclose(finer.raw, only_p - 0.8 * only_q, atol=1e-6, rtol=1e-4)
    assert 0 <= float(finer.maps.min()) and float(finer.maps.max()) <= 1


def test_text_prompts_per_image_and_errors(zs):
    x = images(2, zs.preprocess.size)
    res = explain_text(zs, x, ["white spots", "red band"], contrast_prompt="a butterfly")
    assert res.target_idx.tolist() == [0, 1] and res.reference_idx.tolist() == [[2], [2]]
    one = explain_text(zs, x[1:], "red band", contrast_prompt="a butterfly")
    assert torch.allclose(one.raw[0], res.raw[1], atol=1e-6)
    with pytest.raises(ConfigError):
        explain_text(zs, x, "a butterfly", contrast_prompt="a butterfly")
    with pytest.raises(ConfigError):
        explain_text(tiny_cnn(), x, "red band")


def test_zero_shot_classifier_species_maps(zs):
    res = explain(zs, images(1, zs.preprocess.size), target="Red Admiral", contrast="Vanessa cardui")
    assert res.layers == ["clip.visual.transformer.resblocks.1.ln_1"]
    assert res.raw.shape == (1, 4, 4) and torch.isfinite(res.maps).all()
