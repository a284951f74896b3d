"""Our CAMs against the reference implementation pytorch-grad-cam 1.5.7 on a small CNN and a small ViT."""

from __future__ import annotations

import functools

import numpy as np
import pytest
import torch
from cam_helpers import images, tiny_cnn, tiny_multilayer, tiny_vit, unfrozen

from pipeline.cam import explain
from pipeline.cam.reshape import GridReshape, token_layout

gc = pytest.importorskip("pytorch_grad_cam")
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget, FinerWeightedTarget  # noqa: E402

TOL = 1e-4
BASES = {"gradcam": gc.GradCAM, "gradcam++": gc.GradCAMPlusPlus, "layercam": gc.LayerCAM, "scorecam": gc.ScoreCAM}
# (model factory, CAM layer, the shallower layers RefineCAM adds)
SETUPS = {
    # layer1 keeps Score-CAM's per-channel passes few (64); layer4 exercises the head-weight fast path.
    "cnn": (tiny_cnn, "backbone.layer1", ["backbone.act1"]),
    "cnn-fast": (tiny_cnn, "backbone.layer4", ["backbone.layer3", "backbone.layer2"]),
    "vit": (tiny_vit, "backbone.blocks.1.norm1", ["backbone.blocks.0.norm1"]),
    # A multi-layer probe: its deepest tap takes the fast path, the shallower taps the backward pass.
    "cnn-multilayer": (tiny_multilayer, "backbone.layer4", ["backbone.layer3", "backbone.layer2"]),
}
TARGETS = [0, 1, 2]
CONTRASTS = [[1, 2], [0, 3], [4, 1]]


# Score-CAM has no fast path, and 512 masked passes per image on layer4 would only slow the suite down.
CASES = [(name, m) for name in SETUPS for m in BASES if not (name in ("cnn-fast", "cnn-multilayer") and m == "scorecam")]


@functools.cache
def _setup(name: str):
    make, layer, shallow = SETUPS[name]
    clf = make()
    x = images(3, clf.preprocess.size)
    theirs = unfrozen(clf)
    modules = dict(theirs.named_modules())
    reshape = GridReshape(tuple(x.shape[-2:]), *token_layout(clf, layer))
    return clf, x, theirs, modules, layer, shallow, reshape


@pytest.fixture(params=list(SETUPS))
def setup(request):
    return _setup(request.param)


def _theirs(cam_cls, setup, targets, layers=None, **kw):
    clf, x, theirs, modules, layer, _, reshape = setup
    cam = cam_cls(theirs, [modules[name] for name in (layers or [layer])], reshape_transform=reshape, **kw)
    try:
        return cam(x, targets)
    finally:
        for base in getattr(cam, "base_cam_per_layer", None) or [getattr(cam, "base_cam", cam)]:
            base.activations_and_grads.release()


@pytest.mark.parametrize(("name", "method"), CASES)
def test_base_methods_match_grad_cam(name, method):
    setup = _setup(name)
    clf, x, *_ , layer, _, _ = setup
    ours = explain(clf, x, target=TARGETS, method=method, layer=layer)
    ref = _theirs(BASES[method], setup, [ClassifierOutputTarget(t) for t in TARGETS])
    assert ours.maps.shape == ref.shape
    assert float(ours.maps.max()) == pytest.approx(1.0)
    assert np.abs(ours.maps.numpy() - ref).max() < TOL


@pytest.mark.parametrize(("name", "method"), CASES)
def test_finer_softmax_matches_finer_weighted_target(name, method):
    setup = _setup(name)
    clf, x, *_ , layer, _, _ = setup
    ours = explain(clf, x, target=TARGETS, contrast=CONTRASTS, method=f"finer-{method}", gamma=0.8,
                   weighting="softmax", layer=layer)
    targets = [FinerWeightedTarget(t, c, 0.8) for t, c in zip(TARGETS, CONTRASTS, strict=True)]
    ref = _theirs(gc.FinerCAM, setup, targets, base_method=BASES[method])
    assert np.abs(ours.maps.numpy() - ref).max() < TOL
    assert ours.reference_idx.tolist() == CONTRASTS


def test_finer_uniform_single_reference_matches(setup):
    clf, x, *_ , layer, _, _ = setup
    ours = explain(clf, x, target=TARGETS, contrast=[1, 0, 4], method="finer", gamma=0.6, layer=layer)
    targets = [FinerWeightedTarget(t, [c], 0.6) for t, c in zip(TARGETS, [1, 0, 4], strict=True)]
    ref = _theirs(gc.FinerCAM, setup, targets, base_method=gc.GradCAM)
    assert np.abs(ours.maps.numpy() - ref).max() < TOL
    plain = explain(clf, x, target=TARGETS, method="gradcam", layer=layer)
    assert np.abs(ours.maps.numpy() - plain.maps.numpy()).max() > 1e-2  # the contrast changes the map


def test_refinecam_matches(setup):
    clf, x, *_ , layer, shallow, _ = setup
    layers = [layer, *shallow]
    ours = explain(clf, x, target=TARGETS, method="refinecam", layer=layers)
    ref = _theirs(gc.RefineCAM, setup, [ClassifierOutputTarget(t) for t in TARGETS], layers=layers)
    assert np.abs(ours.maps.numpy() - ref).max() < TOL


def test_fast_path_equals_gradient_path():
    clf = tiny_cnn()
    x = images(2, clf.preprocess.size)
    for method in ("gradcam", "finer", "finer-gradcam++", "layercam"):
        fast = explain(clf, x, method=method, layer="backbone.layer4")
        slow = explain(clf, x, method=method, layer="backbone.layer4", fast=False)
        assert torch.allclose(fast.raw, slow.raw, atol=1e-6, rtol=1e-4)
        assert (fast.maps - slow.maps).abs().max() < TOL


@pytest.mark.parametrize("base", ["gradcam", "layercam"])
def test_refine_with_other_bases_matches(base):
    setup = _setup("cnn-multilayer")
    clf, x, *_ = setup
    ours = explain(clf, x, target=TARGETS, method=f"refine-{base}")  # layers: the probe's taps, deep to shallow
    assert ours.layers == ["backbone.layer4", "backbone.layer3", "backbone.layer2"]
    ref = _theirs(gc.RefineCAM, setup, [ClassifierOutputTarget(t) for t in TARGETS], layers=ours.layers,
                  base_method=BASES[base])
    assert np.abs(ours.maps.numpy() - ref).max() < TOL


def test_finer_refine_layercam_matches_finer_cam_per_layer():
    """Finer on top of RefineCAM: the Finer score is explained at every tap, then the maps are combined."""
    setup = _setup("cnn-multilayer")
    clf, x, *_ = setup
    ours = explain(clf, x, target=TARGETS, contrast=[1, 0, 4], method="finer-refine-layercam", gamma=0.6)
    targets = [FinerWeightedTarget(t, [c], 0.6) for t, c in zip(TARGETS, [1, 0, 4], strict=True)]
    ref = _theirs(gc.RefineCAM, setup, targets, layers=ours.layers, base_method=BASES["layercam"])
    assert np.abs(ours.maps.numpy() - ref).max() < TOL


def test_multilayer_fast_path_only_at_the_deepest_tap():
    clf = tiny_multilayer()
    x = images(2, clf.preprocess.size)
    for layer in ("backbone.layer4", "backbone.layer2"):
        fast = explain(clf, x, method="finer", contrast=1, layer=layer)
        slow = explain(clf, x, method="finer", contrast=1, layer=layer, fast=False)
        assert (fast.maps - slow.maps).abs().max() < TOL
