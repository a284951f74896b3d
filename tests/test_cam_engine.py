"""Behaviour of the CAM engine: targets, Finer linearity, shared passes, fast path, hygiene, devices."""

from __future__ import annotations

import gc

import numpy as np
import pytest
import torch
from cam_helpers import images, tiny_cnn, tiny_vit
from PIL import Image

from pipeline.cam import CamRequest, explain, explain_many
from pipeline.cam import base as cam_base
from pipeline.cam.methods import normalise
from pipeline.cam.reshape import to_grid
from pipeline.errors import ConfigError, UnknownSpeciesError


@pytest.fixture(scope="module")
def cnn():
    return tiny_cnn()


@pytest.fixture(scope="module")
def vit():
    return tiny_vit()


@pytest.fixture
def count_backward(monkeypatch):
    calls = []
    real = cam_base.batched_vjp

    def counting(logits, layers, vectors):
        calls.append(vectors.shape[0])
        return real(logits, layers, vectors)

    monkeypatch.setattr("pipeline.cam.engine.batched_vjp", counting)
    return calls


def _forward_counter(model):
    calls = []
    handle = model.register_forward_hook(lambda m, a, o: calls.append(a[0].shape[0]))
    return calls, handle


def test_shapes_ranges_and_defaults(vit):
    x = images(3, vit.preprocess.size)
    res = explain(vit, x)
    assert res.maps.shape == (3, 32, 48) and res.raw.shape == (3, 4, 6)  # non-square 4x6 patch grid
    assert res.maps.min() >= 0 and res.maps.max() <= 1 and torch.isfinite(res.maps).all()
    assert torch.equal(res.target_idx, res.logits.argmax(1))
    # contrast=None: the 3 top-ranked classes after the target, in rank order
    ranked = res.logits.argsort(1, descending=True)[:, 1:4]
    assert torch.equal(res.reference_idx, ranked)
    assert res.method == "finer" and res.gamma == 0.6 and res.layers == ["backbone.blocks.1.norm1"]


@pytest.mark.parametrize("weighting", ["uniform", "softmax"])
def test_gamma_zero_is_gradcam(vit, weighting):
    x = images(2, vit.preprocess.size)
    plain = explain(vit, x, method="gradcam", target=[1, 2])
    finer = explain(vit, x, method="finer", target=[1, 2], contrast=[0, 3], gamma=0.0, weighting=weighting)
    assert torch.allclose(plain.raw, finer.raw, atol=1e-7)


def test_finer_is_linear_before_relu(vit):
    # Grad-CAM's raw map is linear in the explained score: finer = map(c) - gamma * mean_t map(d_t).
    x = images(2, vit.preprocess.size)
    raw = {c: explain(vit, x, method="gradcam", target=c).raw for c in range(5)}
    finer = explain(vit, x, method="finer", target=2, contrast=[[0, 4], [1, 3]], gamma=0.7)
    expect = raw[2] - 0.7 * torch.stack([(raw[0][0] + raw[4][0]) / 2, (raw[1][1] + raw[3][1]) / 2])
    assert torch.allclose(finer.raw, expect, atol=1e-6, rtol=1e-4)
    assert not torch.allclose(finer.maps, explain(vit, x, method="gradcam", target=2).maps, atol=1e-2)


def test_targets_by_name_and_per_image(cnn):
    x = images(2, cnn.preprocess.size)
    by_name = explain(cnn, x, target=["Vanessa atalanta", "painted lady"], contrast="Danaus_plexippus")
    by_idx = explain(cnn, x, target=[0, 1], contrast=2)
    assert by_name.target_idx.tolist() == [0, 1] and by_name.reference_idx.tolist() == [[2], [2]]
    assert torch.equal(by_name.maps, by_idx.maps)
    with pytest.raises(UnknownSpeciesError, match="Vanessa cardui"):
        explain(cnn, x, target="Vanessa cardi")
    with pytest.raises(ConfigError, match="equals the target"):
        explain(cnn, x, target=0, contrast="Red Admiral")
    with pytest.raises(ConfigError, match="3 entries for 2 images"):
        explain(cnn, x, target=[0, 1, 2])
    with pytest.raises(ConfigError, match="Unknown CAM method"):
        explain(cnn, x, method="gradcam+++")
    with pytest.raises(ConfigError, match="gamma"):
        explain(cnn, x, gamma=-1)
    with pytest.raises(ConfigError, match="no layer"):
        explain(cnn, x, layer="backbone.layer9")


def test_explain_many_one_forward_one_backward(vit, count_backward):
    x = images(4, vit.preprocess.size)
    a, b = [0, 1, 2, 3], [1, 0, 4, 2]
    reqs = [CamRequest("gradcam", target=a), CamRequest("finer", target=a, contrast=b),
            CamRequest("finer", target=b, contrast=a)]
    forwards, handle = _forward_counter(vit)
    try:
        many = explain_many(vit, x, reqs)
    finally:
        handle.remove()
    assert forwards == [4] and count_backward == [2]  # two classes per image span the three scores
    for req, res in zip(reqs, many, strict=True):
        one = explain(vit, x, method=req.method, target=req.target, contrast=req.contrast)
        assert torch.allclose(one.raw, res.raw, atol=1e-6, rtol=1e-4)
    assert many[1].reference_idx[:, 0].tolist() == b


def test_fast_path_needs_no_backward(count_backward):
    from cam_helpers import COMMON, SPECIES

    from pipeline.models import LinearProbeClassifier, create_backbone

    bb = create_backbone("tf_efficientnet_lite0", weights="random")
    clf = LinearProbeClassifier(bb.model, torch.nn.Linear(bb.num_features, 5), SPECIES, COMMON, bb.preprocess)
    x = torch.randn(2, 3, 64, 64)
    assert clf.default_cam_layer() == "backbone.bn2"
    fast = explain(clf, x, method="finer")
    assert count_backward == []
    slow = explain(clf, x, method="finer", fast=False)
    assert count_backward == [1]  # one request: its score's gradient vector is back-propagated directly
    assert torch.allclose(fast.raw, slow.raw, atol=1e-6, rtol=1e-4)


def test_fast_path_not_taken_for_unsafe_layers(cnn, vit, count_backward):
    explain(cnn, images(1, cnn.preprocess.size), method="gradcam", layer="backbone.layer3")
    explain(vit, images(1, vit.preprocess.size), method="gradcam")
    assert count_backward == [1, 1]


def test_zero_map_stays_zero():
    assert torch.equal(normalise(torch.zeros(2, 3, 3), (8, 8)), torch.zeros(2, 8, 8))
    assert torch.equal(normalise(-torch.rand(1, 3, 3), (8, 8)), torch.zeros(1, 8, 8))
    noise = -torch.ones(1, 3, 3)
    noise[0, 1, 1] = 1e-9  # float noise, not a highlight
    assert torch.equal(normalise(noise, (6, 6)), torch.zeros(1, 6, 6))
    real = torch.zeros(1, 3, 3)
    real[0, 0, 0] = 0.5
    assert normalise(real, (6, 6)).max() == 1.0


def test_negative_evidence_gives_an_empty_map():
    clf = tiny_cnn()
    with torch.no_grad():
        clf.head.weight[0] = -clf.head.weight[0].abs()  # layer4 is post-ReLU: every channel counts against class 0
    res = explain(clf, images(2, clf.preprocess.size), method="gradcam", target=0)
    assert (res.raw <= 0).all() and torch.equal(res.maps, torch.zeros_like(res.maps))


def test_no_hooks_graphs_or_growth_after_many_calls(cnn, vit):
    x = images(2, vit.preprocess.size)
    explain(vit, x)

    def live_tensors():
        gc.collect()
        return sum(1 for o in gc.get_objects() if isinstance(o, torch.Tensor))

    before = live_tensors()
    for _ in range(15):
        explain_many(vit, x, [CamRequest("finer"), CamRequest("layercam"), CamRequest("gradcam", target=1)])
    with pytest.raises(UnknownSpeciesError):
        explain(vit, x, target="nope")
    with pytest.raises(ConfigError):
        explain(cnn, images(1, cnn.preprocess.size), layer="backbone.layer9")
    assert live_tensors() <= before + 5
    for model in (cnn, vit):
        assert all(not m._forward_hooks and not m._backward_hooks for m in model.modules())
    assert torch.is_grad_enabled()


def test_grad_modes_and_training_flag(vit):
    x = images(2, vit.preprocess.size)
    ref = explain(vit, x, method="finer-layercam")
    with torch.no_grad():
        assert torch.equal(explain(vit, x, method="finer-layercam").maps, ref.maps)
        assert not torch.is_grad_enabled()
    with torch.inference_mode():
        inf = explain(vit, x.clone(), method="finer-layercam")
    assert torch.allclose(inf.maps, ref.maps, atol=1e-6)
    vit.train()
    try:
        assert torch.allclose(explain(vit, x, method="finer-layercam").maps, ref.maps, atol=1e-6)
        assert vit.training and vit.head.training
    finally:
        vit.eval()


def test_images_as_pil_and_paths(cnn, tmp_path):
    rng = np.random.default_rng(0)
    pil = Image.fromarray(rng.integers(0, 255, (80, 100, 3), dtype=np.uint8))
    pil.save(tmp_path / "a.png")
    a = explain(cnn, [pil, tmp_path / "a.png"], method="gradcam")
    assert a.maps.shape == (2, 64, 64) and torch.equal(a.maps[0], a.maps[1])


def test_random_and_refine_and_scorecam_smoke(cnn):
    x = images(1, cnn.preprocess.size)
    r1 = explain(cnn, x, method="random", seed=3)
    assert torch.equal(r1.maps, explain(cnn, x, method="random", seed=3).maps)
    assert not torch.equal(r1.maps, explain(cnn, x, method="random", seed=4).maps)
    ref = explain(cnn, x, method="finer-refinecam", contrast=1, target=0)
    assert ref.layers == ["backbone.layer4", "backbone.layer3", "backbone.layer2", "backbone.layer1"]
    assert ref.maps.max() == 1.0 and ref.raw.shape == (1, 2, 2)


def test_reshape_tokens_any_layout():
    grid = torch.arange(2 * 6 * 5, dtype=torch.float32).view(2, 5, 6)  # [N, D, h*w]
    tokens = torch.cat([torch.full((2, 5, 3), -1.0), grid], dim=2).transpose(1, 2)  # 3 prefix tokens
    out = to_grid(tokens, 2, (20, 30), num_prefix=3)
    assert out.shape == (2, 5, 2, 3) and torch.equal(out.flatten(2), grid)
    assert torch.equal(to_grid(tokens.transpose(0, 1), 2, (20, 30), num_prefix=3), out)  # sequence-first
    assert torch.equal(to_grid(tokens, 2, (20, 30), patch=(10, 10)), out)  # prefix inferred from the patch size
    with pytest.raises(ConfigError):
        to_grid(torch.zeros(2, 7, 4), 2, (20, 30), num_prefix=0)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_gpu_matches_cpu(vit):
    x = images(2, vit.preprocess.size)
    cpu = explain(vit, x, method="finer")
    gpu_model = tiny_vit().cuda()
    gpu = explain(gpu_model, x, method="finer")
    assert torch.allclose(cpu.maps, gpu.maps, atol=1e-3)
    assert not any(m._forward_hooks for m in gpu_model.modules())
