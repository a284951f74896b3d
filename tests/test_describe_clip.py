"""The CLIP route through the whole describe path: an open_clip ViT-B-16 with random weights (BioCLIP's
architecture; no weights can be downloaded here) as the scorer. A smoke test: it checks plumbing, not quality."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from pipeline.describe import Pipeline
from pipeline.models import load_classifier
from pipeline.scorers.base import CropPolicy


@pytest.fixture(scope="module")
def vit_scorer():
    from pipeline.scorers.openclip import OpenClipScorer

    torch.manual_seed(0)
    # One template keeps the CPU text pass short; ensembling itself is covered by the tiny transformers CLIP test.
    return OpenClipScorer("random:ViT-B-16", device="cpu", templates=["a photo of {phrase}."])


@pytest.fixture(scope="module")
def small_model(describe_model_dir):
    return describe_model_dir


def test_openclip_scorer_caches_text_and_scores_crops(vit_scorer):
    from PIL import Image

    crops = [Image.new("RGB", (40, 30), (200, 30, 30)), Image.new("RGBA", (30, 30), (20, 20, 200, 255))]
    s = vit_scorer.score(crops, ["red forewing band", "kettle lantern"])
    assert s.shape == (2, 2) and torch.isfinite(s).all() and (s.abs() <= 1.0001).all()
    assert vit_scorer.spec == "openclip:random:ViT-B-16" and vit_scorer.supports("anything at all")
    cached = dict(vit_scorer._text_cache)
    assert set(cached) == {"red forewing band", "kettle lantern"}
    s2 = vit_scorer.score(crops[:1], ["kettle lantern"])
    assert torch.allclose(s2[0, 0], s[0, 1], atol=1e-5)


def test_random_vit_b16_runs_through_the_whole_describe_path(vit_scorer, small_model, synthetic_species_dir):
    clf = load_classifier(small_model, device="cpu")
    # The 'generic' group has few phrases and no part layout (one crop per photo): the same path, less CPU time.
    pipe = Pipeline(clf, scorer=vit_scorer, model_dir=small_model, max_references=2, n_controls=3, group="generic")
    m = pd.read_csv(synthetic_species_dir / "manifest.csv")
    photo = synthetic_species_dir / m[(m["species"] == "Synthia rubra") & (m["split"] == "test")]["image"].iloc[0]
    r = pipe.describe(photo, "Synthia aurantiaca", target_species="Synthia rubra", top_k=3)
    assert r.provenance["scorer"] == "openclip:random:ViT-B-16"
    assert r.provenance["n_contrast_references"] == 2 and len(r.controls) == 3
    assert r.text.startswith("Compared with Synthia aurantiaca")
    assert all(np.isfinite(t.score) and t.direction in "+-" for t in r.traits)
    # Random weights carry no meaning: the controls must be scored like any phrase, not dropped.
    assert all(np.isfinite(c.score) for c in r.controls)


class _PartShiftScorer:
    """Fake embedding scorer: every phrase naming the forewing band rises with how band-like the crop is (its
    green channel), and the colour the crop shows (red channel > 128: red, else orange) adds 0.2."""

    crop_policy = CropPolicy(batch_crops=True, value_scores="prob", logit_scale=20.0)

    def score(self, crops, phrases):
        rows = []
        for c in crops:
            r, g, _ = c.convert("RGB").getpixel((0, 0))
            colour = "red" if r > 128 else "orange"
            rows.append([(g / 255 if "forewing band" in p else 0.0) + (0.2 if p.startswith(colour + " ") else 0.0)
                         for p in phrases])
        return torch.tensor(rows)


def test_value_softmax_removes_the_shared_part_shift():
    from PIL import Image

    from pipeline.scoring import image_profile, value_alternatives
    from prompts.phrases import Candidate, control_candidates
    from traits.model import Trait

    def cand(value):
        t = Trait(part="forewing band", attribute="colour", value=value)
        return Candidate(f"{value} forewing band", t, "vocab")

    cands = [cand("red"), cand("blue"), cand("orange"), *control_candidates(2)]
    alts = value_alternatives(cands[0])
    assert alts[0] == "red forewing band" and "blue forewing band" in alts and "red forewing band" not in alts[1:]
    assert value_alternatives(Candidate("hindwing tail", Trait(part="hindwing tail", attribute="presence",
                                                                value="present"), "vocab")) == \
        ["hindwing tail", "no hindwing tail"]
    assert set(value_alternatives(cands[3], [c.phrase for c in cands[3:]])) == {c.phrase for c in cands[3:]}
    scorer = _PartShiftScorer()
    # Two red crops, one far more band-like: raw scores of every band phrase differ by 0.6 between them.
    weak, strong = Image.new("RGB", (8, 8), (200, 20, 0)), Image.new("RGB", (8, 8), (200, 173, 0))
    raw = scorer.score([weak, strong], [c.phrase for c in cands])
    assert torch.allclose(raw[1, :3] - raw[0, :3], torch.full((3,), 0.6), atol=1e-5)
    pw, ps = (image_profile(im, None, cands, scorer) for im in (weak, strong))
    # As probabilities among the colours of the band, the shift is gone; only the colour shown counts.
    np.testing.assert_allclose(pw, ps, atol=1e-6)
    assert np.isclose(pw[0], np.exp(4) / (np.exp(4) + 10), rtol=1e-5) and np.isclose(pw[1], pw[2], rtol=1e-5)
    orange = image_profile(Image.new("RGB", (8, 8), (90, 20, 0)), None, cands, scorer)
    assert orange[2] > 0.2 > orange[0]
    assert np.isclose(pw[3] + pw[4], 1.0)  # the two controls compete only with each other
