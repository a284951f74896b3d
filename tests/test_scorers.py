"""Scorers: ColorScorer on drawn crops, the factory's specs and errors, and a tiny random transformers CLIP."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from pipeline.errors import ConfigError, ModelUnavailableError
from pipeline.scorers import ColorScorer, create_scorer
from pipeline.scorers.color import BASE_COLOURS, classify_colours, parse_phrase


def _crop(colour, size=64, alpha=None):
    arr = np.zeros((size, size, 3), np.uint8)
    arr[:] = colour
    img = Image.fromarray(arr)
    if alpha is not None:
        img = img.convert("RGBA")
        img.putalpha(Image.fromarray(alpha.astype(np.uint8) * 255))
    return img


@pytest.mark.parametrize("rgb,name", [((200, 30, 30), "red"), ((240, 140, 30), "orange"), ((245, 225, 50), "yellow"),
                                      ((20, 20, 20), "black"), ((250, 250, 250), "white"), ((40, 70, 200), "blue"),
                                      ((110, 65, 30), "brown"), ((40, 150, 60), "green"), ((240, 160, 190), "pink")])
def test_named_colours(rgb, name):
    cls = classify_colours(np.full((2, 2, 3), np.array(rgb) / 255.0))
    assert BASE_COLOURS[cls[0, 0]] == name


def test_phrase_parsing_uses_the_traits_vocabulary():
    assert parse_phrase("orange-red forewing band") == ({"orange", "red"}, None)  # the colour of the band part
    assert parse_phrase("banded hindwing") == (set(), "bands")
    assert parse_phrase("hindwing eyespot") == (set(), "spots")
    assert parse_phrase("vermilion bars") == ({"red"}, "bands")
    assert parse_phrase("white spots at the tip") == ({"white"}, "spots")
    assert parse_phrase("long hindwing tail") == (set(), None)
    s = ColorScorer()
    assert s.supports("salmon-orange wing") and s.supports("spotted hindwing") and not s.supports("long tail")


def test_colour_shares_count_only_organism_pixels():
    arr = np.zeros((40, 40, 3), np.uint8)
    arr[:, :20] = (200, 30, 30)  # red organism half
    arr[:, 20:] = (40, 150, 60)  # green background half
    alpha = np.zeros((40, 40), bool)
    alpha[:, :20] = True
    img = Image.fromarray(arr).convert("RGBA")
    img.putalpha(Image.fromarray(alpha.astype(np.uint8) * 255))
    s = ColorScorer().score([img, Image.fromarray(arr)], ["red wing", "green wing", "long tail"])
    assert s[0, 0] == pytest.approx(1.0) and s[0, 1] == pytest.approx(0.0)
    assert s[1, 0] == pytest.approx(0.5, abs=0.02) and s[1, 1] == pytest.approx(0.5, abs=0.02)
    assert torch.isnan(s[:, 2]).all()


def test_spots_and_bands_are_told_apart():
    spots = np.full((96, 96, 3), 20, np.uint8)
    for y in range(10, 90, 20):
        for x in range(10, 90, 20):
            spots[y:y + 6, x:x + 6] = 255
    bands = np.full((96, 96, 3), 20, np.uint8)
    bands[20:28, 5:90] = 255
    bands[60:68, 5:90] = 255
    s = ColorScorer().score([Image.fromarray(spots), Image.fromarray(bands)], ["white spots", "white band"])
    assert s[0, 0] == pytest.approx(16 * 36 / 96**2, rel=0.05) and s[0, 1] == 0.0
    assert s[1, 1] > 0.1 and s[1, 0] == 0.0


def test_factory_specs_and_errors(tmp_path):
    assert isinstance(create_scorer("color"), ColorScorer)
    assert create_scorer("color").spec == "color"
    with pytest.raises(ConfigError, match="Unknown scorer"):
        create_scorer("sonar")
    with pytest.raises(ConfigError, match="needs a model"):
        create_scorer("hf")
    with pytest.raises(ModelUnavailableError, match="save_pretrained"):
        create_scorer(f"hf:{tmp_path / 'missing'}")
    with pytest.raises(ConfigError):
        create_scorer("openclip:no-such-architecture-xyz")


def _byte_chars() -> list[str]:
    """The 256 printable stand-ins for bytes used by byte-level BPE vocabularies (GPT-2 / CLIP convention)."""
    keep = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    out, extra = [], 0
    for b in range(256):
        if b in keep:
            out.append(chr(b))
        else:
            out.append(chr(256 + extra))
            extra += 1
    return out


def _tiny_clip_folder(path):
    """A random CLIPModel with a byte-level tokenizer (no merges) and a 32 px image processor, saved to path."""
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPProcessor, CLIPTokenizer

    chars = _byte_chars()
    vocab = {c: i for i, c in enumerate(chars)}
    vocab.update({c + "</w>": i + len(chars) for i, c in enumerate(chars)})
    vocab["<|startoftext|>"] = len(vocab)
    vocab["<|endoftext|>"] = len(vocab)
    path.mkdir(parents=True, exist_ok=True)
    (path / "vocab.json").write_text(json.dumps(vocab))
    (path / "merges.txt").write_text("#version: 0.2\n")
    tok = CLIPTokenizer(str(path / "vocab.json"), str(path / "merges.txt"))
    proc = CLIPProcessor(image_processor=CLIPImageProcessor(size={"shortest_edge": 32},
                                                            crop_size={"height": 32, "width": 32}), tokenizer=tok)
    torch.manual_seed(0)
    cfg = CLIPConfig(text_config=dict(vocab_size=len(vocab), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                      num_attention_heads=2, max_position_embeddings=77,
                                      bos_token_id=vocab["<|startoftext|>"], eos_token_id=vocab["<|endoftext|>"]),
                     vision_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                                        image_size=32, patch_size=8), projection_dim=16)
    CLIPModel(cfg).save_pretrained(path)
    proc.save_pretrained(path)
    return path


def test_transformers_clip_scorer_with_a_tiny_random_model(tmp_path):
    from pipeline.scorers.hf_clip import TransformersClipScorer

    folder = _tiny_clip_folder(tmp_path / "tiny-clip")
    scorer = create_scorer(f"hf:{folder}", device="cpu")
    assert isinstance(scorer, TransformersClipScorer) and scorer.spec == f"hf:{folder}"
    crops = [_crop((200, 30, 30)), _crop((30, 30, 200), 48, alpha=np.ones((48, 48), bool))]
    s = scorer.score(crops, ["red forewing band", "blue hindwing", "kettle lantern"])
    assert s.shape == (2, 3) and torch.isfinite(s).all() and (s.abs() <= 1.0001).all()
    assert not torch.allclose(s[0], s[1])  # different crops, different scores
    assert set(scorer._text_cache) == {"red forewing band", "blue hindwing", "kettle lantern"}
    again = scorer.score(crops, ["blue hindwing"])
    assert torch.allclose(again[:, 0], s[:, 1], atol=1e-5)  # cached text embedding, same numbers
    assert scorer.score([], ["red wing"]).shape == (0, 1)
    # describe() reads the same settings as for open_clip: value log-probabilities at the model's own temperature,
    # side crops at several framings; both are part of the reference cache key.
    assert scorer.value_scores == "logprob" and scorer.crop_pads == (0.1, 0.3, 0.5)
    assert scorer.logit_scale == pytest.approx(float(scorer.model.logit_scale.detach().exp()))
    assert "|pads=0.1,0.3,0.5|values=logprob|" in scorer.cache_id


def test_default_openclip_scorer_is_bioclip_and_fails_offline_with_a_fix(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelUnavailableError, match="imageomics/bioclip") as exc:
        create_scorer("openclip")
    assert "color" in str(exc.value) and "--scorer openclip:DIR" in str(exc.value)
