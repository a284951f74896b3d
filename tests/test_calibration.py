"""Temperature scaling: fitted on out-of-fold training logits, applied to probabilities only, never to CAMs."""

from __future__ import annotations

import json

import pytest
import torch

from pipeline import calibration as cal
from pipeline.cam import CamRequest, explain_many
from pipeline.models import load_classifier
from pipeline.train import train_classifier
from tests.test_train import FAST, make_folder


def _overconfident(n=2000, classes=4, scale=8.0, seed=0):
    """Labels drawn from softmax(z), logits reported as scale * z: a classifier far too sure of itself."""
    gen = torch.Generator().manual_seed(seed)
    z = torch.randn(n, classes, generator=gen)
    labels = torch.multinomial(z.softmax(-1), 1, generator=gen).flatten()
    return scale * z, labels


def test_temperature_undoes_overconfidence():
    logits, labels = _overconfident()
    t = cal.fit_temperature(logits, labels)
    assert 6.0 < t < 10.0  # the true temperature is 8
    assert cal.negative_log_likelihood(logits, labels, t) < cal.negative_log_likelihood(logits, labels) - 0.5
    assert cal.expected_calibration_error(logits, labels, t) < 0.05 < cal.expected_calibration_error(logits, labels)


def test_ece_of_a_perfectly_calibrated_and_a_wrong_classifier():
    # Two photos at confidence 1.0 (logit gap huge): both right -> ECE 0; both wrong -> ECE 1.
    logits = torch.tensor([[50.0, 0.0], [0.0, 50.0]])
    assert cal.expected_calibration_error(logits, torch.tensor([0, 1])) == pytest.approx(0.0, abs=1e-9)
    assert cal.expected_calibration_error(logits, torch.tensor([1, 0])) == pytest.approx(1.0, abs=1e-9)
    assert cal.expected_calibration_error(torch.zeros(0, 2), torch.zeros(0, dtype=torch.long)) is None


def test_folds_are_stratified_and_singletons_stay_in_training():
    labels = torch.tensor([0] * 10 + [1] * 2 + [2])
    folds = cal.fold_assignment(labels, folds=5, seed=3)
    assert folds[12] == -1  # the only photo of species 2 is never held out
    assert sorted(folds[:10].tolist()) == [0, 0, 1, 1, 2, 2, 3, 3, 4, 4]
    assert folds[10] != folds[11] and min(folds[10:12].tolist()) >= 0


def test_out_of_fold_logits_never_come_from_a_head_that_saw_the_photo():
    feats = torch.arange(40, dtype=torch.float32).reshape(20, 2)
    labels = torch.arange(20) % 2
    seen: list[set[float]] = []

    def fit(f, y, k):
        seen.append({float(v) for v in f[:, 0]})
        head = torch.nn.Linear(2, k)
        torch.nn.init.zeros_(head.weight)
        torch.nn.init.zeros_(head.bias)
        return head

    logits, kept = cal.out_of_fold_logits(feats, labels, 2, fit, folds=5)
    assert logits.shape == (20, 2) and len(seen) == 5
    held_per_fold = [set(map(float, feats[:, 0].tolist())) - s for s in seen]
    assert sorted(v for held in held_per_fold for v in held) == sorted(map(float, feats[:, 0].tolist()))
    assert sorted(kept.tolist()) == sorted(labels.tolist())


def test_no_photo_to_hold_out_means_no_calibration():
    feats, labels = torch.randn(3, 4), torch.tensor([0, 1, 2])
    entry = cal.calibrate(feats, labels, torch.randn(2, 3), torch.tensor([0, 1]), 3,
                          lambda f, y, k: torch.nn.Linear(4, k))
    assert entry["temperature"] == 1.0 and "2 or more" in entry["skipped"] and entry["n"] == 0
    assert entry["ece_test_before"] == entry["ece_test_after"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("calibrated")
    data = make_folder(root / "data")
    train_classifier(data, root / "model", **FAST)
    return data, root / "model"


def test_card_stores_the_temperature_and_test_metrics(trained):
    _, model = trained
    entry = json.loads((model / "card.json").read_text())["calibration"]
    assert entry["method"] == "temperature" and entry["fitted_on"] == "out-of-fold training logits"
    assert entry["temperature"] > 0 and entry["ece_bins"] == 15 and entry["n"] > 0
    for key in ("ece_test_before", "ece_test_after", "nll_test_before", "nll_test_after"):
        assert 0 <= entry[key] < 10
    clf = load_classifier(model, device="cpu")
    assert clf.temperature == entry["temperature"]


def test_predict_uses_the_temperature_and_old_cards_mean_one(trained, tmp_path):
    data, model = trained
    clf = load_classifier(model, device="cpu")
    photo = data / "Rubra_alpha" / "000.png"
    raw = clf.logits(clf.prepare(photo))
    clf.card = {**clf.card, "calibration": {"temperature": 4.0}}
    probs, _ = clf.predict(photo)
    assert torch.allclose(probs, (raw / 4.0).softmax(-1), atol=1e-6)
    card = json.loads((model / "card.json").read_text())
    card.pop("calibration")
    old = tmp_path / "old"
    old.mkdir()
    for f in model.iterdir():
        if f.is_file():
            (old / f.name).write_bytes(f.read_bytes())
    (old / "card.json").write_text(json.dumps(card))
    before = load_classifier(old, device="cpu")
    assert before.temperature == 1.0
    assert torch.allclose(before.predict(photo)[0], raw.softmax(-1), atol=1e-6)
    assert cal.card_temperature({"calibration": {"temperature": -2}}) == 1.0


def test_cam_maps_ignore_the_temperature(trained):
    data, model = trained
    clf = load_classifier(model, device="cpu")
    photo = clf.prepare(data / "Rubra_alpha" / "001.png")
    reqs = [CamRequest("gradcam", target=0), CamRequest("finer", target=0, contrast=1)]
    clf.card = {**clf.card, "calibration": {"temperature": 1.0}}
    plain = explain_many(clf, photo, reqs)
    clf.card = {**clf.card, "calibration": {"temperature": 7.5}}
    hot = explain_many(clf, photo, reqs)
    for a, b in zip(plain, hot, strict=True):
        assert torch.equal(a.maps, b.maps) and torch.equal(a.logits, b.logits)
