"""Scoring helpers of describe(): side crops for embedding models, where presence is judged, and which value
probabilities count as shown."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from pipeline.scorers.base import CropPolicy
from pipeline.scoring import (
    MIN_SHOWN,
    PhraseScore,
    PhraseTable,
    crop_part,
    rank_phrases,
    select_diverse,
    set_statistics,
    shown_floor,
    square_crop,
)
from prompts.phrases import Candidate
from traits.model import Trait


def _plain(**policy):
    """A stand-in scorer that declares only its crop policy (defaults: raw scores, masked cut-outs)."""
    return type("Plain", (), {"crop_policy": CropPolicy(**policy)})()


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
        crop_policy = CropPolicy(value_scores="logprob")

    assert shown_floor(LogProbScorer()) == pytest.approx(np.log(MIN_SHOWN)) and shown_floor(_plain()) is None
    floor = shown_floor(LogProbScorer())
    rng = np.random.default_rng(0)
    cands = [Candidate(f"{v} body", Trait(part="body", attribute="colour", value=v), "vocab")
             for v in ("yellow", "orange", "red")]
    # log-probabilities among the colours of the body: yellow is improbable everywhere (1e-4 here, 1e-6 in the
    # contrast), orange is what this photo and its species show, red is what the contrast species shows.
    target = np.stack([rng.normal(-9.0, 0.5, 16), rng.normal(-0.2, 0.1, 16), rng.normal(-3.0, 0.3, 16)], 1)
    contrast = np.stack([rng.normal(-13.0, 0.5, 16), rng.normal(-3.0, 0.3, 16), rng.normal(-0.2, 0.1, 16)], 1)
    profile = np.array([-9.2, -0.3, -2.9])
    plain = {r.phrase: r for r in rank_phrases(cands, profile, np.zeros(3), np.zeros((0, 3)), contrast, target)}
    gated = {r.phrase: r for r in rank_phrases(cands, profile, np.zeros(3), np.zeros((0, 3)), contrast, target,
                                               floor_shown=floor)}
    assert plain["yellow body"].rank_score > 0  # a big log-space move of an improbable value...
    assert gated["yellow body"].rank_score == 0  # ...is not a difference between the species
    for phrase in ("orange body", "red body"):  # '+' shown by the photo, '-' shown by the contrast
        assert gated[phrase].rank_score == plain[phrase].rank_score > 0
    assert gated["red body"].direction == "-"


def test_a_value_its_species_shows_is_ranked_when_this_photo_scores_it_low():
    """A tailed species whose model gives 'hindwing tail' a low probability everywhere (log P -1.7, the tailless
    contrast -3.4): a photo at -2.4 (under the 0.1 floor) is still evidence of the tail, since its species shows it."""
    floor = float(np.log(MIN_SHOWN))
    cands = [Candidate("hindwing tail", Trait(part="hindwing tail", attribute="presence", value="present"), "vocab")]
    rng = np.random.default_rng(1)
    target, contrast = rng.normal(-1.7, 0.6, (16, 1)), rng.normal(-3.4, 0.8, (16, 1))
    (row,) = rank_phrases(cands, np.array([-2.4]), np.zeros(1), np.zeros((0, 1)), contrast, target,
                          floor_shown=floor)
    assert row.direction == "+" and row.rank_score > 0
    # Without the species' references only the photo counts: under the floor, not ranked.
    (alone,) = rank_phrases(cands, np.array([-2.4]), np.zeros(1), np.zeros((0, 1)), contrast, None,
                            floor_shown=floor)
    assert alone.rank_score == 0


def test_embedding_scorers_get_each_side_at_every_framing():
    from PIL import Image

    from pipeline.scoring import _part_crops

    class Framed:
        crop_policy = CropPolicy(side_crops=True, crop_pads=(0.1, 0.5))

    img = Image.new("RGB", (160, 160))
    organism = np.zeros((160, 160), bool)
    organism[30:130, 20:140] = True
    (band,) = _part_crops(img, organism, [("forewing band",)], Framed(), "butterfly")
    assert len(band) == 4  # two sides x two framings
    assert band[0].size[0] < band[1].size[0]  # the tighter framing first, per side
    (single,) = _part_crops(img, organism, [("forewing band",)], _plain(side_crops=True), "butterfly")
    assert len(single) == 2 and single[0].size == band[1].size  # default: the 0.5 framing only


def test_no_tail_shape_is_claimed_for_the_side_without_a_tail():
    from pipeline.scoring import absent_threshold, describes_a_missing_part

    def cand(phrase, part, attribute, value):
        return Candidate(phrase, Trait(part=part, attribute=attribute, value=value), "vocab")

    cands = [cand("hindwing tail", "hindwing tail", "presence", "present"),
             cand("short hindwing tail", "hindwing tail", "shape", "short"),
             cand("long hindwing tail", "hindwing tail", "shape", "long"),
             cand("red forewing band", "forewing band", "colour", "red"),
             cand("forewing band", "forewing band", "presence", "present")]
    absent = absent_threshold(_plain(value_scores="logprob"))
    assert absent == pytest.approx(np.log(0.5)) and absent_threshold(_plain()) is None
    # log P(present) of each presence phrase on this species (here) and on the contrast (there).
    here, there = np.array([-1.5, 0, 0, 0, -0.2]), np.array([-0.1, 0, 0, 0, -0.1])
    ranks = np.array([2.0, 1.5, 1.2, 1.0, 0.8])
    # This species lacks the tail the contrast has: no shape of its own tail; the contrast's still holds. Both
    # show a band (P 0.82 vs 0.90): a ranked band-presence difference does not silence the band's colour.
    lacks = describes_a_missing_part(cands, np.array(["-", "+", "-", "-", "-"]), ranks, here, there, absent)
    assert lacks.tolist() == [False, True, False, False, False]
    # The other way round: the contrast lacks the tail, so no claim about the contrast's tail shape.
    flipped = describes_a_missing_part(cands, np.array(["+", "+", "-", "+", "+"]), ranks, there, here, absent)
    assert flipped.tolist() == [False, False, True, False, False]
    # Presence that is not a ranked difference restricts nothing.
    ranks[0] = 0.0
    assert not describes_a_missing_part(cands, np.array(["-", "+", "-", "-", "-"]), ranks, here, there, absent).any()


def _scored(phrase: str, j: int, **fields) -> PhraseScore:
    part, value = phrase.split(" ", 1)[1], phrase.split(" ", 1)[0]
    source = "control" if fields.pop("control", False) else "vocab"
    return PhraseScore(Candidate(phrase, Trait(part=part, attribute="colour", value=value), source), j, **fields)


def test_the_phrase_table_sorts_region_traits_first_keeps_ties_and_converts_to_a_frame():
    rows = (_scored("red band", 0, rank_score=1.0, in_region=False),
            _scored("blue band", 1, rank_score=float("nan"), in_region=False),
            _scored("green band", 2, rank_score=3.0, in_region=False),
            _scored("grey band", 3, rank_score=0.5, in_region=True),
            _scored("white band", 4, rank_score=3.0, in_region=False),
            _scored("quiet lamp", 5, rank_score=9.0, control=True))
    table = PhraseTable(rows, "target_vs_contrast").sorted()
    # In a region first whatever its score; then by score, ties in their order, NaN last.
    assert [r.phrase for r in table] == ["grey band", "quiet lamp", "green band", "white band", "red band",
                                         "blue band"]
    assert [r.phrase for r in table.controls] == ["quiet lamp"] and table.n_real == 5
    assert [r.index for r in table.take([2, 0])] == [2, 3] and table.take([0]).method == "target_vs_contrast"
    frame = table.to_frame()
    assert frame["phrase"].tolist() == [r.phrase for r in table] and (frame["method"] == "target_vs_contrast").all()
    assert frame.loc[0, "part"] == "band" and frame.loc[0, "value"] == "grey" and bool(frame.loc[1, "control"])
    assert frame.loc[0, "rank_score"] == 0.5 and frame.loc[0, "index"] == 3


def test_producers_return_typed_tables_and_select_diverse_keeps_one_trait_per_part():
    cands = [Candidate(f"{v} {p}", Trait(part=p, attribute="colour", value=v), "vocab")
             for v, p in (("red", "forewing"), ("red", "forewing band"), ("blue", "hindwing"))]
    rng = np.random.default_rng(0)
    a = np.stack([rng.normal(m, 0.05, 12) for m in (0.9, 0.8, 0.5)], 1)
    b = np.stack([rng.normal(m, 0.05, 12) for m in (0.1, 0.1, 0.5)], 1)
    stats_table = set_statistics(cands, a, b)
    assert stats_table.method == "visdiff_auroc" and stats_table[0].auroc == 1.0 and stats_table[0].support is None
    assert [r.rank_score for r in stats_table] == sorted((r.rank_score for r in stats_table), reverse=True)
    # 'red forewing band' lies inside 'red forewing' with most of its score: the finer part replaces the coarser.
    chosen = select_diverse(stats_table, 5, related=lambda x, y: x in y or y in x,
                            finer=lambda x, y: y in x and x != y, min_effect=0.0)
    assert isinstance(chosen, PhraseTable) and chosen[0].phrase == "red forewing band"
    assert "red forewing" not in {r.phrase for r in chosen}
