"""Multi-layer (hypercolumn) probes: training, saving, the measured CAM default in the card, sharp maps (issue 13)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from cam_helpers import images, tiny_multilayer
from PIL import Image
from test_train import FAST, make_folder

from evaluation import evaluate_cams as ev
from pipeline.cam import default_method, explain, parse_method, plain_method
from pipeline.cam.render import outline
from pipeline.cli import main
from pipeline.errors import ConfigError
from pipeline.models import LinearProbeClassifier, create_backbone, load_classifier
from pipeline.models.backbones import default_taps
from pipeline.models.classifier import pooled_features
from pipeline.train import DEFAULT_CAM, train_classifier


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("ml")
    data = make_folder(root / "data")
    report = train_classifier(data, root / "model", **FAST)
    return data, root / "model", report


def test_default_head_reads_three_stages_and_round_trips(trained):
    data, model, report = trained
    assert report.accuracy == 1.0
    clf = load_classifier(model, device="cpu")
    assert clf.card["head"] == {"type": "multilayer", "taps": ["blocks.2", "blocks.4", "blocks.6"],
                                "tap_channels": [40, 112, 320]}
    x = clf.prepare([data / "Rubra_alpha" / "000.png", data / "Viridis beta" / "001.png"])
    feats = pooled_features(clf.backbone, clf.taps, x)
    assert feats.shape == (2, 472)
    assert torch.allclose(clf.logits(x), clf.head(feats), atol=1e-5)
    assert [clf.class_names[i] for i in clf.predict(x)[1]] == ["Rubra alpha", "Viridis beta"]


def test_card_names_the_measured_cam_default(trained):
    clf = load_classifier(trained[1], device="cpu")
    assert clf.card["cam"]["method"] == DEFAULT_CAM["multilayer"] == default_method(clf)
    assert plain_method(default_method(clf)) == "refine-layercam"
    assert clf.cam_layers() == ["backbone.blocks.6", "backbone.blocks.4", "backbone.blocks.2"]
    res = explain(clf, trained[0] / "Rubra_alpha" / "000.png", contrast="Viridis beta", method=default_method(clf))
    assert res.layers == clf.cam_layers() and res.maps.shape == (1, 64, 64)


def test_pooled_head_is_the_classic_probe(tmp_path):
    data = make_folder(tmp_path / "data")
    train_classifier(data, tmp_path / "model", head="pooled", **FAST)
    clf = load_classifier(tmp_path / "model", device="cpu")
    assert clf.taps == [] and clf.head.in_features == 1280
    assert default_method(clf) == "finer"
    clf.card.pop("cam")  # a model folder written before the card recorded a default
    assert default_method(clf) == "finer"


def test_bad_head_and_layers_are_clear_errors(tmp_path, capsys):
    data = make_folder(tmp_path / "data", n=3)
    with pytest.raises(ConfigError, match="Unknown head"):
        train_classifier(data, tmp_path / "m1", head="deep", **FAST)
    with pytest.raises(SystemExit) as exc:
        main(["train", str(data), "--out", str(tmp_path / "m2"), "--layers", "blocks.2,blocks.99",
              "--image-size", "64", "--epochs", "5", "--device", "cpu"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "blocks.99" in err and "Traceback" not in err


def test_default_taps_come_from_the_stages():
    assert default_taps(create_backbone("resnet10t", weights="random").model) == ["layer2", "layer3", "layer4"]
    from timm.models.vision_transformer import VisionTransformer

    vit = VisionTransformer(img_size=32, patch_size=8, embed_dim=48, depth=2, num_heads=2, num_classes=0)
    assert default_taps(vit) == []  # one resolution throughout: nothing to tap


def test_effective_grid_is_28_at_224_px():
    bb = create_backbone("efficientnet_lite0", weights="random")
    taps = default_taps(bb.model)
    head = torch.nn.Linear(472, 3)
    clf = LinearProbeClassifier(bb.model, head, ["a b", "c d", "e f"], None, bb.preprocess, taps, [40, 112, 320])
    res = explain(clf, images(1, (224, 224)), target=0, contrast=1, method="finer-layercam", layer="backbone.blocks.2")
    assert res.raw.shape[-2:] == (28, 28)
    assert parse_method("finer-refine-layercam") == ("finer-refine-layercam", "layercam", True, True)


def test_multilayer_taps_must_fit_the_head_in_forward_order():
    clf = tiny_multilayer()
    with pytest.raises(ValueError, match="do not fit"):
        LinearProbeClassifier(clf.backbone, clf.head, clf.class_names, None, clf.preprocess, clf.taps, [1, 2, 3])
    with pytest.raises(ValueError, match="forward order"):
        LinearProbeClassifier(clf.backbone, clf.head, clf.class_names, None, clf.preprocess,
                              clf.taps[::-1], clf.tap_channels[::-1])


def test_layers_given_out_of_order_are_trained_in_forward_order(tmp_path):
    data = make_folder(tmp_path / "data", n=4)
    train_classifier(data, tmp_path / "model", taps=["blocks.4", "blocks.2"], **FAST)
    clf = load_classifier(tmp_path / "model", device="cpu")
    assert clf.taps == ["blocks.2", "blocks.4"] and clf.tap_channels == [40, 112]


def test_outline_traces_the_region_at_half_the_peak():
    photo = Image.new("RGB", (200, 100), (0, 0, 0))
    cam = torch.zeros(50, 100)
    cam[10:30, 40:60] = 1.0  # a square blob at (80..120, 20..60) in photo pixels
    out = np.asarray(outline(photo, cam, colour=(0, 255, 255)))
    drawn = (out == (0, 255, 255)).all(-1)
    ys, xs = np.nonzero(drawn)
    assert drawn.any() and 70 <= xs.min() and xs.max() <= 130 and 10 <= ys.min() and ys.max() <= 70
    assert not drawn[40, 100]  # the inside stays as it was: only the contour is drawn


def test_part_pointing_allows_15_px_at_224():
    maps = torch.zeros(2, 224, 224)
    maps[0, 100, 110] = 1.0  # 10 px right of the part
    maps[1, 100, 125] = 1.0  # 25 px right of the part
    part = torch.zeros(2, 224, 224)
    part[:, 90:110, 80:100] = 1.0
    out = ev.batch_metrics(None, torch.zeros(2, 3, 224, 224), maps, torch.zeros(2, dtype=torch.long), None, [],
                           part_masks=part)
    assert out["part_pointing"].tolist() == [1.0, 0.0]
    assert out["part_pointing_exact"].tolist() == [0.0, 0.0]


@pytest.mark.slow
def test_candidates_benchmark_runs_every_candidate_and_resumes(tmp_path, monkeypatch):
    from evaluation.benchmarks import cam_candidates as cc
    from evaluation.synthetic import make_species

    data = make_species(tmp_path / "species", n_per_species=6, image_size=64, seed=0)
    summary, paired = cc.run(data, None, tmp_path / "out", limit=6)
    got = set(zip(summary["head"], summary["layer_set"], summary["method"], strict=True))
    for head in cc.HEADS:
        for layer_set in cc.LAYER_SETS:
            assert {(head, layer_set, m) for m in cc.methods_for(layer_set)} <= got
    assert ("pooled", "default", "random-smooth") in got
    assert {"part_pointing", "part_pointing_exact", "part_mass_iou"} <= set(summary["metric"])
    vs_gradcam = paired[(paired["method"] == "finer-refine-layercam") & (paired["base"] == "gradcam")]
    assert set(vs_gradcam["head"]) == set(cc.HEADS)
    text = (tmp_path / "out" / "candidates.md").read_text()
    assert "| multilayer | refine | finer-refine-layercam |" in text
    # A second run reuses the trained models and every finished method.
    monkeypatch.setattr(ev, "batch_metrics", lambda *a, **k: pytest.fail("recomputed a finished method"))
    monkeypatch.setattr("pipeline.train.train_classifier", lambda *a, **k: pytest.fail("retrained a model"))
    again, _ = cc.run(data, None, tmp_path / "out", limit=6)
    assert len(again) == len(summary)
