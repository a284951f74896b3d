"""CUB attributes: real rows of the class table, directions, and a readable rendering for all 312 names."""

from __future__ import annotations

import numpy as np
import pytest
from traits_data import need

from traits import TraitsError, load_cub, render_cub_attribute
from traits.cub import GROUPS


def _read_table(root):
    names = [ln.split()[1] for ln in (root / "attributes.txt").read_text().splitlines() if ln.strip()]
    classes = [ln.split()[1] for ln in (root / "classes.txt").read_text().splitlines() if ln.strip()]
    rows = [[float(x) for x in ln.split()] for ln in
            (root / "class_attribute_labels_continuous.txt").read_text().splitlines() if ln.strip()]
    return names, classes, rows


@pytest.fixture(scope="module")
def cub():
    return load_cub(need("cub-attributes"))


@pytest.mark.parametrize("a, b", [("001.Black_footed_Albatross", "002.Laysan_Albatross"),
                                  ("182.Yellow_Warbler", "159.Black_and_white_Warbler")])
def test_differences_match_file(cub, a, b):
    names, classes, rows = _read_table(cub.root)
    pa, pb = rows[classes.index(a)], rows[classes.index(b)]
    expected = {names[j]: ("+" if pa[j] > pb[j] else "-", abs(pa[j] - pb[j]))
                for j in range(len(names)) if abs(pa[j] - pb[j]) >= 40}
    diffs = cub.differences(a, b, tau=40)
    assert len(diffs) == len(expected) > 0
    by_label = {render_cub_attribute(n): v for n, v in expected.items()}
    for d in diffs:
        direction, gap = by_label[d.phrase]
        assert d.direction == direction
        assert d.score == pytest.approx(gap)
        assert d.target == a and d.contrast == b
    assert [d.score for d in diffs] == sorted((d.score for d in diffs), reverse=True)


def test_albatross_white_underparts_direction(cub):
    # Laysan albatrosses are white below, black-footed ones are dark: seen from the black-footed, '-'.
    diffs = {d.phrase: d for d in cub.differences(1, 2)}
    assert diffs["white breast"].direction == "-"
    assert diffs["white breast"].trait.key == ("breast", "colour", "white")
    flipped = {d.phrase: d.direction for d in cub.differences(2, 1)}
    assert flipped["white breast"] == "+"


def test_warbler_yellow(cub):
    diffs = {d.phrase: d for d in cub.differences("Yellow Warbler", "Black and white Warbler", tau=40)}
    assert diffs["yellow breast"].direction == "+"
    assert diffs["yellow breast"].score > 40


def test_tau_changes_count(cub):
    assert len(cub.differences(1, 2, tau=30)) >= len(cub.differences(1, 2, tau=50))
    with pytest.raises(TraitsError):
        cub.differences(1, 2, tau=0)
    with pytest.raises(TraitsError):
        cub.class_index("Dodo")


def test_all_312_render(cub):
    assert len(cub.attributes) == 312
    labels = [a.label for a in cub.attributes]
    assert len(set(labels)) == 312
    for a in cub.attributes:
        assert a.label and "::" not in a.label and "has_" not in a.label and "_" not in a.label
        assert a.trait.attribute in {"colour", "pattern", "shape", "size"}
        assert a.trait.value and a.trait.raw
    assert render_cub_attribute("has_wing_color::blue") == "blue wings"
    assert render_cub_attribute("has_bill_shape::dagger") == "dagger bill"
    assert render_cub_attribute("has_size::small_(5_-_9_in)") == "small size (5-9 in)"
    colours = {a.trait.value for a in cub.attributes if a.trait.attribute == "colour"}
    assert {"brown", "green", "iridescent"} <= colours and "rufous" not in colours and "buff" not in colours


def test_trait_list_threshold(cub):
    row = cub.row(1)
    tl = cub.trait_list(1, min_percent=50)
    assert len(tl) == int(np.sum(row >= 50)) and tl.source == "cub"


def test_bad_folder(tmp_path):
    with pytest.raises(TraitsError, match="attributes.txt"):
        load_cub(tmp_path)
    assert len(GROUPS) == 28


def test_check_generated_bird_phrases_against_cub(cub):
    from traits import TraitDifference, check, parse_phrase

    a, b = cub.trait_list("182.Yellow_Warbler"), cub.trait_list("159.Black_and_white_Warbler")
    gen = [TraitDifference(parse_phrase("yellow breast", "bird")[0], "+"),
           TraitDifference(parse_phrase("white breast", "bird")[0], "+"),
           TraitDifference(parse_phrase("yellow head", "bird")[0], "+")]
    out = check(gen, a, b, group="bird")
    assert [c.status for c in out] == ["confirmed", "contradicted", "confirmed"]
    assert out[2].tier == "coarser"  # 'head' is coarser than the CUB crown/forehead/nape/throat colours
