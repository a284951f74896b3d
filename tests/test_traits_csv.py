"""Trait CSV files: round trip, clear errors naming row and column, property tests, load_expert sources."""

from __future__ import annotations

import csv

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from traits_data import need

from traits import Trait, TraitList, TraitsError, load_expert, load_trait_csv, save_trait_csv
from traits.csv_io import REQUIRED

HEADER = list(REQUIRED) + ["side"]


def _write(path, rows, header=HEADER):
    with path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(header)
        w.writerows(rows)
    return path


def test_round_trip(tmp_path):
    lists = {"A a": TraitList("A a", [Trait("forewing band", "colour", "red", "red", "upper", None, None, "red band"),
                                      Trait("hindwing tail", "presence", "absent", text="no tail")], "csv")}
    path = save_trait_csv(lists, tmp_path / "t.csv")
    back = load_trait_csv(path)
    assert back["A a"].keys() == lists["A a"].keys()
    assert back["A a"].traits[0].side == "upper" and back["A a"].traits[1].text == "no tail"
    assert not list(tmp_path.glob("*.tmp"))


def test_normalises_colour_and_part(tmp_path):
    path = _write(tmp_path / "t.csv", [["X", "FW tip", "colour", "Vermilion", "", "csv", ""]])
    t = load_trait_csv(path)["X"].traits[0]
    assert (t.part, t.value, t.raw) == ("forewing tip", "red", "Vermilion")


def test_errors_name_row_and_column(tmp_path):
    path = _write(tmp_path / "t.csv", [["X", "wing", "colour", "red", "", "csv", ""],
                                       ["X", "", "colour", "red", "", "csv", ""],
                                       ["X", "wing", "smell", "red", "", "csv", ""],
                                       ["X", "wing", "colour", "red", "", "csv", "sideways"]])
    with pytest.raises(TraitsError) as err:
        load_trait_csv(path)
    msg = str(err.value)
    assert "row 3, column 'part'" in msg
    assert "row 4, column 'attribute'" in msg and "smell" in msg
    assert "row 5, column 'side'" in msg
    assert "row 2" not in msg and "3 problem(s)" in msg


def test_missing_columns(tmp_path):
    path = _write(tmp_path / "t.csv", [["X", "wing"]], header=["taxon", "part"])
    with pytest.raises(TraitsError, match="missing column"):
        load_trait_csv(path)


CELL = st.text(max_size=12) | st.sampled_from(["colour", "pattern", "count", "wing", "red", "upper", "csv", ""])


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=st.lists(st.lists(CELL, min_size=7, max_size=7), max_size=6))
def test_loader_reports_bad_rows(tmp_path, rows):
    path = tmp_path / "h.csv"
    _write(path, rows)
    try:
        lists = load_trait_csv(path)
    except TraitsError as exc:
        assert "row " in str(exc) or "not a readable" in str(exc) or "Cannot read" in str(exc)
        return
    n = sum(len(t) for t in lists.values())
    assert n <= len(rows)
    for tl in lists.values():
        for t in tl:
            assert t.attribute in {"colour", "pattern", "shape", "size", "count", "presence"}


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.binary(max_size=200))
def test_loader_never_crashes_on_bytes(tmp_path, blob):
    path = tmp_path / "b.csv"
    path.write_bytes(blob)
    try:
        load_trait_csv(path)
    except TraitsError:
        pass


def test_load_expert_sources(tmp_path):
    path = _write(tmp_path / "t.csv", [["X", "wing", "colour", "red", "", "csv", ""]])
    assert load_expert(path)["X"].keys() == {("wing", "colour", "red")}
    desc = tmp_path / "d.csv"
    _write(desc, [["Y", "Above, brown with white bars across FW."]], header=["scientific_name", "description"])
    got = load_expert(desc)["Y"]
    assert ("forewing band", "colour", "white") in got.keys() and got.source == "field_guide"
    tl = TraitList("Z", [Trait("wing", "colour", "red")])
    assert load_expert(tl) == {"Z": tl} and load_expert([tl]) == {"Z": tl}
    with pytest.raises(TraitsError):
        load_expert(tmp_path / "nope.csv")
    with pytest.raises(TraitsError):
        load_expert(tmp_path)


def test_load_expert_real_sources():
    leeds = load_expert(need("leeds-butterflies/species.csv"))
    assert len(leeds) == 10 and all(len(t) > 3 for t in leeds.values())
    cub = load_expert(need("cub-attributes"), min_percent=50)
    assert len(cub) == 200 and cub["001.Black_footed_Albatross"].source == "cub"
