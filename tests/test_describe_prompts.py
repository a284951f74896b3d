"""Candidate phrases (vocabulary, expert, controls, filters) and the hedged paragraph."""

from __future__ import annotations

from prompts.compose import Clause, compose_paragraph, trait_clause
from prompts.phrases import (
    CONTROL_WORDS,
    Candidate,
    candidate_phrases,
    control_candidates,
    expert_candidates,
    filter_candidates,
    measurable_controls,
    vocab_candidates,
)
from prompts.templates import TRAIT_TEMPLATES, trait_prompts
from traits.model import Trait
from traits.vocab import load_vocab


def test_vocabulary_phrases_cover_parts_colours_and_presence():
    phrases = {c.phrase: c.trait for c in vocab_candidates("butterfly")}
    assert "orange forewing band" in phrases and phrases["orange forewing band"].key == ("forewing band", "colour", "orange")
    assert "hindwing tail" in phrases and phrases["hindwing tail"].key == ("hindwing tail", "presence", "present")
    assert "long hindwing tail" in phrases and "spotted forewing" in phrases
    assert len([p for p in phrases if p.endswith(" body")]) == 11  # the whole traits/ palette


def test_filters_drop_species_names_duplicates_and_long_phrases():
    t = Trait("wing", "colour", "red")
    cands = [Candidate("red wing", t), Candidate("red wings", Trait("wing", "colour", "red", raw="x")),
             Candidate("wing red", Trait("wing", "colour", "crimson")),
             Candidate("vanessa red wing", Trait("wing", "colour", "pink")),
             Candidate("a " * 30 + "wing", Trait("wing", "pattern", "spotted")),
             Candidate("painted wing", Trait("wing", "pattern", "banded"))]
    kept = [c.phrase for c in filter_candidates(cands, ["Vanessa cardui", "Painted Lady"])]
    assert kept == ["red wing"]


def test_expert_absence_becomes_a_presence_phrase_and_controls_are_random_words():
    (c,) = expert_candidates([[Trait("hindwing tail", "presence", "absent", text="no tail")]])
    assert c.phrase == "hindwing tail" and c.trait.value == "present" and c.source == "expert"
    ctrl = control_candidates(5, seed=1)
    assert len(ctrl) == 5 and all(c.control and len(c.phrase.split()) == 2 for c in ctrl)
    assert [c.phrase for c in ctrl] == [c.phrase for c in control_candidates(5, seed=1)]  # seeded
    allc = candidate_phrases("butterfly", species_names=["Synthia rubra"], n_controls=3)
    assert sum(c.control for c in allc) == 3 and not any("rubra" in c.phrase for c in allc)
    assert trait_prompts("red wing") == [t.format(phrase="red wing") for t in TRAIT_TEMPLATES]


def test_paragraph_hedges_by_confidence():
    strong = Clause("forewing band", "colour", "red", "+", "strong", expert_status="confirmed")
    weak = Clause("hindwing tail", "presence", "present", "-", "weak")
    text = compose_paragraph("A a (Aa)", "B b (Bb)", [strong, weak])
    assert text.startswith("Compared with B b (Bb), this A a (Aa) shows more red on the forewing band.")
    assert "It may show no clear hindwing tail." in text and "1 of these matches the expert descriptions" in text
    only_weak = compose_paragraph("A", "B", [weak])
    assert "may show" in only_weak and "None of these differences is strongly supported" in only_weak
    assert "not sure" in compose_paragraph("A", "B", [strong], 0.31, True, "C")
    assert compose_paragraph("A", "B", []).startswith("No trait phrase separated A from B")
    assert trait_clause(Clause("wing", "pattern", "spotted", "-", "moderate")) == "a less spotted wing"


def test_measurable_controls_only_touch_controls_the_scorer_cannot_read():
    cands = candidate_phrases("butterfly", n_controls=6)
    everything = measurable_controls(cands, lambda phrase: True)
    assert everything == cands  # an embedding scorer reads random words: the WaffleCLIP controls stay
    colour_only = measurable_controls(cands, lambda phrase: not phrase.startswith(tuple(CONTROL_WORDS)))
    real = [c for c in cands if not c.control]
    assert [c for c in colour_only if not c.control] == real
    parts = {c.trait.part for c in real}
    moved = [c for c in colour_only if c.control]
    assert len(moved) == 6 and all(c.trait.part in parts for c in moved)
    assert all(c.phrase.split()[2] in load_vocab().for_group("butterfly").base_colours for c in moved)
