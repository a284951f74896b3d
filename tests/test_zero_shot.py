"""open_clip loading (local folder, arch@file, hub offline) and the zero-shot classifier."""

from __future__ import annotations

import json

import pytest
import torch

from pipeline.errors import ConfigError, ModelUnavailableError
from pipeline.models import ZeroShotClassifier, load_classifier, load_open_clip, save_classifier

SPECIES = ["Vanessa atalanta", "Vanessa cardui", "Pieris rapae"]


@pytest.fixture(scope="module")
def clip_folder(tmp_path_factory):
    """A random-weight ViT-S-32 saved as an open_clip folder, the layout of a downloaded hub model."""
    import open_clip
    from safetensors.torch import save_file

    folder = tmp_path_factory.mktemp("clip")
    torch.manual_seed(0)
    model = open_clip.create_model("ViT-S-32", pretrained=None, pretrained_text=False)
    config = {"model_cfg": open_clip.get_model_config("ViT-S-32"),
              "preprocess_cfg": {"mean": [0.5, 0.5, 0.5], "std": [0.25, 0.25, 0.25], "size": 224}}
    (folder / "open_clip_config.json").write_text(json.dumps(config))
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(folder / "open_clip_model.safetensors"))
    return folder


def test_local_folder_loads_with_its_own_preprocessing(clip_folder):
    bundle = load_open_clip(str(clip_folder))
    assert bundle.preprocess.mean == (0.5, 0.5, 0.5) and bundle.preprocess.std == (0.25, 0.25, 0.25)
    again = load_open_clip(str(clip_folder))
    tokens = bundle.tokenizer(["a red band"])
    with torch.no_grad():
        assert torch.equal(bundle.model.encode_text(tokens), again.model.encode_text(tokens))


def test_zero_shot_round_trip_and_head(clip_folder, tmp_path):
    bundle = load_open_clip(str(clip_folder))
    clf = ZeroShotClassifier(bundle.model, bundle.tokenizer, SPECIES, ["Red Admiral", "Painted Lady", None],
                             bundle.preprocess, model_id=str(clip_folder))
    assert clf.text_weights.shape == (3, 384)
    assert torch.allclose(clf.text_weights.norm(dim=-1), torch.ones(3), atol=1e-5)
    x = torch.randn(2, 3, 224, 224)
    with torch.no_grad():
        logits = clf.logits(x)
        expected = clf.logit_scale * clf.image_embeddings(x) @ clf.text_weights.t()
    assert torch.allclose(logits, expected)
    save_classifier(clf, tmp_path / "zs")
    loaded = load_classifier(tmp_path / "zs", device="cpu")
    with torch.no_grad():
        assert torch.allclose(loaded.logits(x), logits, atol=1e-5)
    assert loaded.index("painted lady") == 1
    assert loaded.default_cam_layer() == "clip.visual.transformer.resblocks.11.ln_1"


def test_specs_that_cannot_resolve_say_how_to_fix(tmp_path, monkeypatch):
    import huggingface_hub.constants as hf_constants

    monkeypatch.setattr(hf_constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelUnavailableError, match="huggingface-cli download imageomics/bioclip"):
        load_open_clip("hf-hub:imageomics/bioclip")
    with pytest.raises(ConfigError, match="Cannot resolve"):
        load_open_clip("no-such-model")
    (tmp_path / "w.pt").write_bytes(b"x")
    with pytest.raises(ConfigError, match="ARCH@"):
        load_open_clip(str(tmp_path / "w.pt"))
    with pytest.raises(ModelUnavailableError, match="does not exist"):
        load_open_clip(f"ViT-S-32@{tmp_path / 'missing.pt'}")
