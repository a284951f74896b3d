"""Backbone weights, classifier save/load, species lookup."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch import nn

from pipeline.errors import CheckpointError, ConfigError, UnknownSpeciesError
from pipeline.models import LinearProbeClassifier, create_backbone, load_classifier, save_classifier
from pipeline.models import efficientnet_lite0 as lite0
from pipeline.species import SpeciesIndex

# ImageNet classes 281-285: tabby, tiger cat, Persian, Siamese, Egyptian cat.
IMAGENET_CATS = set(range(281, 286))


@pytest.fixture(scope="module")
def lite0_backbone():
    return create_backbone("efficientnet_lite0")


def test_packaged_weights_map_every_tensor():
    import timm

    source = torch.load(lite0.packaged_weights_path(), map_location="cpu", weights_only=True)
    model = timm.create_model(lite0.TIMM_NAME, pretrained=False)
    mapped = lite0.map_state_dict(source, model.state_dict())
    assert len(mapped) == lite0.EXPECTED_TENSORS == 247
    own = {k for k in model.state_dict() if not k.endswith("num_batches_tracked")}
    assert set(mapped) == own
    # Order mapping must carry the values, not only the shapes.
    src_values = [v for k, v in source.items() if not k.endswith("num_batches_tracked")]
    assert torch.equal(mapped["conv_stem.weight"], src_values[0])
    assert torch.equal(mapped["classifier.bias"], src_values[-1])


def test_mapping_rejects_wrong_shapes():
    import timm

    model = timm.create_model(lite0.TIMM_NAME, pretrained=False)
    source = torch.load(lite0.packaged_weights_path(), map_location="cpu", weights_only=True)
    first = next(iter(source))
    source[first] = torch.zeros(3, 3)
    with pytest.raises(CheckpointError, match="shape"):
        lite0.map_state_dict(source, model.state_dict())


def test_mapped_model_sees_a_cat():
    import timm
    from skimage import data

    from pipeline.models.preprocess import Preprocess

    model = lite0.load_packaged_weights(timm.create_model(lite0.TIMM_NAME, pretrained=False)).eval()
    x = Preprocess.from_timm(model)(data.chelsea())
    with torch.no_grad():
        probs = model(x).softmax(-1)[0]
    top = int(probs.argmax())
    assert top in IMAGENET_CATS, f"top-1 class {top} is not a cat"
    assert float(probs[list(IMAGENET_CATS)].sum()) > 0.5


def _random_probe(backbone, names, commons=None, seed=0):
    torch.manual_seed(seed)
    head = nn.Linear(backbone.num_features, len(names))
    return LinearProbeClassifier(backbone.model, head, names, commons, backbone.preprocess)


def test_save_load_round_trip_gives_identical_logits(tmp_path, lite0_backbone):
    clf = _random_probe(lite0_backbone, ["Vanessa_atalanta", "Vanessa cardui", "Pieris rapae"],
                        ["Red Admiral", "Painted Lady", None])
    save_classifier(clf, tmp_path / "m", {"backbone": {"name": "efficientnet_lite0", "weights": "default"}})
    loaded = load_classifier(tmp_path / "m", device="cpu")
    x = torch.randn(2, 3, 224, 224)
    with torch.no_grad():
        assert torch.equal(clf.logits(x), loaded.logits(x))
    assert loaded.class_names == ["Vanessa atalanta", "Vanessa cardui", "Pieris rapae"]
    assert loaded.common_names == ["Red Admiral", "Painted Lady", None]
    assert loaded.preprocess == clf.preprocess
    assert loaded.default_cam_layer() == "backbone.bn2"


def test_load_rejects_mismatched_head(tmp_path, lite0_backbone):
    clf = _random_probe(lite0_backbone, ["a b", "c d"])
    save_classifier(clf, tmp_path / "m", {"backbone": {"name": "efficientnet_lite0", "weights": "default"}})
    card = json.loads((tmp_path / "m" / "card.json").read_text())
    card["class_names"].append("e f")
    card["common_names"].append(None)
    (tmp_path / "m" / "card.json").write_text(json.dumps(card))
    with pytest.raises(CheckpointError, match="expected \\(3, 1280\\)"):
        load_classifier(tmp_path / "m", device="cpu")


def test_load_rejects_folders_that_are_not_models(tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        load_classifier(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(CheckpointError, match="not a finer-traits model directory"):
        load_classifier(tmp_path / "empty")
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "card.json").write_text("{not json")
    (bad / "head.safetensors").write_bytes(b"junk")
    with pytest.raises(CheckpointError, match="cannot be read"):
        load_classifier(bad)


def test_weights_file_must_fit_the_backbone(tmp_path):
    torch.save({"conv1.weight": torch.zeros(1)}, tmp_path / "w.pth")
    with pytest.raises(CheckpointError, match="do not fit"):
        create_backbone("resnet10t", weights=tmp_path / "w.pth")
    good = create_backbone("resnet10t", weights="random")
    from safetensors.torch import save_file

    save_file({k: v.contiguous() for k, v in good.model.state_dict().items()}, str(tmp_path / "w.safetensors"))
    again = create_backbone("resnet10t", weights=tmp_path / "w.safetensors")
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(good.model(x), again.model(x))


def test_unknown_backbone_names_suggest_real_ones():
    with pytest.raises(ConfigError, match="Unknown backbone 'efficientnet_lite9'"):
        create_backbone("efficientnet_lite9")


def test_weights_refuse_pickled_code(tmp_path):
    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    torch.save({"x": Evil()}, tmp_path / "evil.pth")
    with pytest.raises(CheckpointError, match="pickled code is refused"):
        create_backbone("resnet10t", weights=tmp_path / "evil.pth")


def test_species_lookup_by_any_name_and_suggestions():
    idx = SpeciesIndex(["Vanessa_atalanta", "Vanessa cardui", "Heliconius erato"],
                       ["Red Admiral", "Painted Lady", "Crimson-patched Longwing"])
    assert idx.index("vanessa ATALANTA") == 0
    assert idx.index("Vanessa_cardui") == 1
    assert idx.index("painted lady") == 1
    assert idx.index("crimson patched longwing") == 2
    assert idx.index(2) == 2
    assert idx.index(np.int64(1)) == 1
    with pytest.raises(UnknownSpeciesError) as err:
        idx.index("Vanesa cardiu")
    assert "Did you mean 'Vanessa cardui (Painted Lady)'" in str(err.value)
    with pytest.raises(UnknownSpeciesError, match="out of range"):
        idx.index(3)
    with pytest.raises(UnknownSpeciesError, match="Unknown species 'Danaus plexippus'"):
        idx.index("Danaus plexippus")
    assert idx.label(0) == "Vanessa atalanta (Red Admiral)"


def test_classifier_index_and_predict_accept_images(lite0_backbone):
    clf = _random_probe(lite0_backbone, ["a a", "b b"])
    probs, pred = clf.predict([np.zeros((40, 50, 3), np.uint8), np.full((30, 30), 200, np.uint8)])
    assert probs.shape == (2, 2) and torch.allclose(probs.sum(-1), torch.ones(2))
    assert pred.tolist() == probs.argmax(-1).tolist()
    assert clf.index("B B") == 1
