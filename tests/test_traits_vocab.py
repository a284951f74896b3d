"""Vocabularies: naturalists' colour names, compounds, part synonyms, the part hierarchy, the trait model."""

from __future__ import annotations

import pytest

from traits import (
    Trait,
    TraitDifference,
    TraitList,
    TraitsError,
    load_vocab,
    normalise_colour,
    normalise_part,
)


@pytest.mark.parametrize("word, value", [
    ("vermilion", "red"), ("crimson", "red"), ("rufous", "brown"), ("buff", "brown"), ("tawny", "brown"),
    ("salmon", "orange"), ("copper", "orange"), ("ash", "grey"), ("cream", "white"), ("olive", "green"),
    ("lilac", "purple"), ("gray", "grey"), ("grayish", "grey"),
    ("salmon-orange", "orange"), ("orange-red", "orange-red"), ("blue-gray", "blue-grey"),
    ("brass-colored", "yellow"), ("jet-black", "black"), ("pale yellow", "yellow"), ("rose-pink", "pink"),
])
def test_colours(word, value):
    assert normalise_colour(word) == value


@pytest.mark.parametrize("word", ["dark", "pale", "wing", "black-rimmed", "", "-", "zebra"])
def test_not_colours(word):
    assert normalise_colour(word) is None


def test_every_colour_word_maps_to_palette():
    v = load_vocab()
    assert len(v.base_colours) == 11
    for word, base in v.colour_words.items():
        assert base in v.base_colours or base in v.sheens, word


@pytest.mark.parametrize("words, part", [
    ("FW", "forewing"), ("HW", "hindwing"), ("FW tip", "forewing tip"), ("HW border", "hindwing margin"),
    ("hind wings", "hindwing"), ("forewing band", "forewing band"), ("hindwing eyespot", "hindwing eyespot"),
    ("hindwing tail", "hindwing tail"), ("body", "body"), ("hindwing margin", "hindwing margin"),
])
def test_butterfly_parts(words, part):
    assert normalise_part(words, "butterfly") == part


def test_hierarchy():
    pv = load_vocab().part_vocab("butterfly")
    assert pv.ancestors("forewing tip") == {"forewing", "wing", "wing tip"}
    assert "wing" in pv.ancestors("hindwing margin")
    # Birds: CUB's parts under the whole bird (the part a trait names when its part cannot be located).
    assert load_vocab().part_vocab("bird").ancestors("crown") == {"head", "whole bird"}
    assert normalise_part("body", "bird") == "whole bird"
    assert normalise_part("beak", "bird") == "bill"
    with pytest.raises(TraitsError):
        load_vocab().part_vocab("fish")


def test_model_helpers():
    t = Trait("forewing band", "colour", "orange-red", "vermilion", side="upper")
    assert t.key == ("forewing band", "colour", "orange-red")
    assert t.phrase() == "orange-red forewing band (upperside)"
    d = TraitDifference(t, "+", "A", "B", 2.0)
    f = d.flipped()
    assert (f.direction, f.target, f.contrast) == ("-", "B", "A")
    tl = TraitList("A", [t])
    tl.extend([t, t.with_(side="under")])
    assert len(tl) == 2 and tl.keys() == {t.key}


def test_a_photos_side_in_field_guide_words():
    from traits.errors import BadValueError
    from traits.vocab import normalise_side

    assert [normalise_side(w) for w in ("upper", "Above", "dorsal", "UPPERSIDE", "below", "ventral", "under side")] \
        == ["upper"] * 4 + ["under"] * 3
    assert normalise_side(None) is None and normalise_side("  ") is None
    with pytest.raises(BadValueError, match="Unknown side 'left'"):
        normalise_side("left")
