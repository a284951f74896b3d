"""Scoring helpers of describe(): side crops for embedding models, where presence is judged, and which value
probabilities count as shown."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from pipeline.scoring import MIN_SHOWN, crop_part, rank_phrases, shown_floor, square_crop
from prompts.phrases import Candidate
from traits.model import Trait


def test_square_crop_stays_inside_the_photo_and_keeps_context():
    img = Image.new("RGB", (200, 100))
    mask = np.zeros((100, 200), bool)
    mask[90:100, 190:200] = True  # a 10 px piece in the corner
    crop = square_crop(img, mask)
    assert crop.size[0] == crop.size[1] == round(0.18 * 100 * 1.5)  # the minimum side, grown by the padding
    big = np.zeros((100, 200), bool)
    big[0:100, 0:150] = True
    assert square_crop(img, big).size == (100, 100)  # never larger than the photo


def test_presence_count_and_shape_are_judged_on_the_whole_host_wing():
    assert crop_part("hindwing tail", "presence") == ("hindwing", "hindwing tail")
    assert crop_part("hindwing eyespot", "count") == ("hindwing", "hindwing eyespot")
    assert crop_part("hindwing tail", "shape") == ("hindwing", "hindwing tail")
    assert crop_part("forewing band", "colour") == ("forewing band",)
    assert crop_part("body", "presence") == ("body",)
    assert crop_part("antenna club", "presence", group="no such group") == ("antenna club",)
    assert crop_part(None, "colour") is None


def test_a_presence_crop_covers_the_host_wing_and_where_its_tail_would_be():
    from pipeline.regions import core_box
    from pipeline.scoring import side_pieces

    organism = np.zeros((160, 120), bool)
    organism[10:110, 10:110] = True
    organism[110:135, 30:33] = True  # a tail on the left hindwing, below the core box
    box = core_box(organism)
    pieces = side_pieces(organism, ("hindwing", "hindwing tail"), "butterfly", box)
    assert len(pieces) == 2  # left and right side
    left = pieces[0] if pieces[0][:, :60].any() else pieces[1]
    assert left[110:135, 30:33].all()  # the tail is in the left side's crop
    (hind_left, _) = sorted(side_pieces(organism, ("hindwing",), "butterfly", box), key=lambda m: np.nonzero(m)[1].mean())
    assert not hind_left[115:135].any()  # the hindwing's own box ends at the core box


def test_moves_among_values_neither_side_shows_are_not_ranked():
    class LogProbScorer:
        value_scores = "logprob"

    assert shown_floor(LogProbScorer()) == pytest.approx(np.log(MIN_SHOWN)) and shown_floor(object()) is None
    floor = shown_floor(LogProbScorer())
    rng = np.random.default_rng(0)
    cands = [Candidate(f"{v} body", Trait(part="body", attribute="colour", value=v), "vocab")
             for v in ("yellow", "orange", "red")]
    # log-probabilities among the colours of the body: yellow is improbable everywhere (1e-4 here, 1e-6 in the
    # contrast), orange is what this photo and its species show, red is what the contrast species shows.
    target = np.stack([rng.normal(-9.0, 0.5, 16), rng.normal(-0.2, 0.1, 16), rng.normal(-3.0, 0.3, 16)], 1)
    contrast = np.stack([rng.normal(-13.0, 0.5, 16), rng.normal(-3.0, 0.3, 16), rng.normal(-0.2, 0.1, 16)], 1)
    profile = np.array([-9.2, -0.3, -2.9])
    plain = rank_phrases(cands, profile, np.zeros(3), np.zeros((0, 3)), contrast, target).set_index("phrase")
    gated = rank_phrases(cands, profile, np.zeros(3), np.zeros((0, 3)), contrast, target,
                         floor_shown=floor).set_index("phrase")
    assert plain.loc["yellow body", "rank_score"] > 0  # a big log-space move of an improbable value...
    assert gated.loc["yellow body", "rank_score"] == 0  # ...is not a difference between the species
    for phrase in ("orange body", "red body"):  # '+' shown by the photo, '-' shown by the contrast
        assert gated.loc[phrase, "rank_score"] == plain.loc[phrase, "rank_score"] > 0
    assert gated.loc["red body", "direction"] == "-"
