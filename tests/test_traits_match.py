"""check / expert_differences / score: structural tiers, colour families, the guarded fallback, metrics."""

from __future__ import annotations

import pytest

from traits import (
    Trait,
    TraitDifference,
    TraitList,
    check,
    expert_differences,
    match_tier,
    parse_phrase,
    score,
)
from traits.match import guard_ok, part_tier


def D(part, attribute, value, direction="+", s=0.0, side=None, phrase=""):
    return TraitDifference(Trait(part, attribute, value, side=side), direction, "A", "B", s, phrase)


A = TraitList("A", [Trait("wing", "colour", "black", side="upper"), Trait("forewing band", "colour", "orange-red"),
                    Trait("forewing tip", "colour", "white"), Trait("hindwing tail", "shape", "long")])
B = TraitList("B", [Trait("wing", "colour", "orange", side="upper"), Trait("forewing tip", "colour", "white"),
                    Trait("hindwing tail", "shape", "short")])


def test_expert_differences_sets():
    got = {(d.trait.key, d.direction) for d in expert_differences(A, B)}
    assert got == {(("wing", "colour", "black"), "+"), (("forewing band", "colour", "orange-red"), "+"),
                   (("hindwing tail", "shape", "long"), "+"), (("wing", "colour", "orange"), "-"),
                   (("hindwing tail", "shape", "short"), "-")}
    # an unstated side is compatible with either side: not a difference
    same = expert_differences([Trait("wing", "colour", "red")], [Trait("wing", "colour", "red", side="under")])
    assert same == []


def test_a_colour_on_a_coarser_part_covers_the_finer_part():
    """'Black above' (wing) already says the forewing patch is black: a black forewing spot of the other species is
    no difference, so a trait 'more black on the forewing spot' is not contradicted by it. Only colours inherit,
    only downwards, only the same colour, and only on a compatible side."""
    red_admiral = [Trait("wing", "colour", "black", side="upper"), Trait("wing", "colour", "brown", side="under")]
    painted_lady = [Trait("wing", "colour", "orange", side="upper"), Trait("forewing spot", "colour", "black"),
                    Trait("forewing", "colour", "black", side="under"), Trait("hindwing tail", "shape", "short")]
    got = {(d.trait.key, d.direction) for d in expert_differences(red_admiral, painted_lady, "butterfly")}
    assert got == {(("wing", "colour", "black"), "+"),  # finer black on the other side covers nothing coarser
                   (("wing", "colour", "brown"), "+"), (("wing", "colour", "orange"), "-"),
                   (("forewing", "colour", "black"), "-"),  # black below is not covered by black above
                   (("hindwing tail", "shape", "short"), "-")}
    [c] = check([D("forewing spot", "colour", "black", "+")], red_admiral, painted_lady, group="butterfly")
    assert c.status != "contradicted"
    # A shape does not inherit: a long-tailed hindwing says nothing about a 'short' statement on its tail.
    assert expert_differences([Trait("hindwing", "shape", "short")], [Trait("hindwing tail", "shape", "short")],
                              "butterfly") != []
    # Orange wings do not cover an orange-red band: a field mark of its own.
    assert expert_differences([Trait("wing", "colour", "orange")], [Trait("forewing band", "colour", "orange-red")],
                              "butterfly") != []


def test_tiers():
    assert part_tier("forewing", "forewing", "butterfly") == "exact"
    assert part_tier("wing", "forewing tip", "butterfly") == "coarser"
    assert part_tier("hindwing margin", "wing", "butterfly") == "finer"
    assert part_tier("FW", "forewing", "butterfly") == "exact"
    assert part_tier("forewing", "hindwing", "butterfly") is None
    assert part_tier("head", "crown", "bird") == "coarser"
    assert match_tier(Trait("wing", "colour", "red"), Trait("forewing band", "colour", "orange-red")) == "coarser"
    assert match_tier(Trait("wing", "colour", "red"), Trait("forewing band", "colour", "blue")) is None
    assert match_tier(Trait("wing", "colour", "red", side="upper"), Trait("wing", "colour", "red", side="under")) is None
    assert match_tier(Trait("forewing", "pattern", "banded"), Trait("forewing band", "colour", "red")) == "exact"


def test_check_statuses():
    gen = [D("wing", "colour", "black", "+", side="upper"),      # confirmed, exact
           D("forewing", "colour", "red", "+"),                   # confirmed via colour family, finer part -> coarser
           D("wing", "colour", "orange", "+"),                    # experts: B is the orange one -> contradicted
           D("forewing tip", "colour", "white", "+"),             # both have it -> new, with a note
           D("hindwing eyespot", "count", "2", "+")]              # not in the lists -> new
    out = check(gen, A, B, group="butterfly")
    assert [c.status for c in out] == ["confirmed", "confirmed", "contradicted", "new", "new"]
    assert out[0].tier == "exact" and out[1].tier == "coarser"
    assert out[1].match.trait.key == ("forewing band", "colour", "orange-red")
    assert "both species" in out[3].note and out[4].note == "not in the expert lists"


def test_a_coloured_mark_confirms_its_pattern_but_never_contradicts_it():
    # Field guide: H. charitonius is banded (yellow); H. erato has a red forewing patch. "Less red forewing band"
    # is true of charitonius and must not be called a contradiction of "banded wing +".
    zebra = TraitList("A", [Trait("wing", "pattern", "banded")])
    crimson = TraitList("B", [Trait("forewing spot", "colour", "red")])
    gen = [D("forewing band", "colour", "red", "-"), D("forewing band", "colour", "red", "+")]
    [less_red, more_red] = check(gen, zebra, crimson, group="butterfly", similarity=None)
    assert less_red.status == "new" and less_red.match is None
    assert more_red.status == "confirmed" and more_red.match.trait.key == ("wing", "pattern", "banded")
    # The phrase fallback does not step in either: "red forewing band" and "red forewing spot" share two of three
    # words, but both parts are in the vocabulary and the structural test already says they are different parts.
    [less_red, _] = check(gen, zebra, crimson, group="butterfly")
    assert less_red.status == "new"
    # A present band and a banded pattern say the same thing: there a mismatch in direction is a contradiction.
    [absent] = check([D("forewing band", "presence", "present", "-")], zebra, crimson, group="butterfly")
    assert absent.status == "contradicted"


def test_fallback_guard_blocks_antonyms():
    assert not guard_ok("long tail", "short tail")
    assert not guard_ok("2 eyespots", "1 eyespot")
    assert not guard_ok("red band", "blue band")
    assert guard_ok("long hindwing tail", "long tail")
    # An unknown part falls back to phrase similarity; the guard keeps "long" away from B's "short" tail.
    gen = [TraitDifference(Trait("tail streamer", "shape", "long"), "+", phrase="long tail streamer")]
    [c] = check(gen, A, B, group="butterfly")
    assert c.status == "confirmed" and c.tier == "embedding" and 0.5 <= c.similarity < 1
    assert c.match.trait.value == "long"
    gen = [TraitDifference(Trait("tail streamer", "shape", "short"), "+", phrase="short tail streamer")]
    [c] = check(gen, A, B, group="butterfly")
    assert c.status == "contradicted" and c.match.trait.value == "short"
    [c] = check(gen, A, B, similarity=None)
    assert c.status == "new"


def test_score_numbers():
    experts = expert_differences(A, B)  # 5 differences
    gen = [D("wing", "colour", "black", "+", 0.9, side="upper"), D("wing", "colour", "green", "+", 0.8),
           D("hindwing tail", "shape", "short", "+", 0.7), D("forewing band", "colour", "red", "+", 0.1)]
    s = score(gen, experts)
    assert s.n_generated == 4 and s.n_expert == 5 and s.n_hits == 3
    assert s.precision == pytest.approx(3 / 4)
    assert s.recall == pytest.approx(3 / 5)
    assert s.f1 == pytest.approx(2 * 0.75 * 0.6 / 1.35)
    assert s.direction_accuracy == pytest.approx(2 / 3)  # the short tail is B's, not A's
    assert s.hit_at_k == {1: 1.0, 3: 1.0, 5: 1.0}
    late = score([D("wing", "colour", "green", "+", 0.9), D("wing", "colour", "blue", "+", 0.8),
                  D("wing", "colour", "black", "+", 0.1, side="upper")], experts)
    assert late.hit_at_k == {1: 0.0, 3: 1.0, 5: 1.0}
    empty = score([], experts)
    assert empty.precision == 0 and empty.recall == 0


def test_synthetic_pair_traits():
    from evaluation.synthetic.species import DESIGNS, trait_rows

    a, b = DESIGNS[0], DESIGNS[1]
    lists = {}
    for r in trait_rows(a) + trait_rows(b):
        lists.setdefault(r["taxon"], TraitList(r["taxon"], [], "synthetic")).traits.append(
            Trait(r["part"], r["attribute"], r["value"], text=r["text"]))
    diffs = {(d.trait.key, d.direction) for d in expert_differences(lists[a.name], lists[b.name])}
    assert (("forewing band", "colour", a.band), "+") in diffs and (("forewing band", "colour", b.band), "-") in diffs
    # every synthetic trait text parses back to its own row
    for design in DESIGNS:
        for r in trait_rows(design):
            assert (r["part"], r["attribute"], r["value"]) in {t.key for t in parse_phrase(r["text"])}, r["text"]
