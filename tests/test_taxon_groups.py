"""Taxon groups as data (traits/vocab/groups/*.json): birds as the second group, a new group without code, clear
errors for unknown groups, the bird palette, and CUB names in expert lists."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from pipeline.cli import main
from pipeline.describe import _expert_lists, expert_coverage_warnings
from pipeline.scorers.color import ColorScorer, base_colours, classify_colours
from prompts.phrases import candidate_phrases, vocab_candidates
from traits.errors import TraitsError, UnknownChoiceError, UnknownGroupError
from traits.model import Trait, TraitList
from traits.names import normalise_name
from traits.vocab import VOCAB_DIR, group_names, load_vocab, normalise_colour, normalise_part, taxon_group

# Butterfly anatomy that must never reach a bird (the complaint: 'forewing spot', 'hindwing eyespot').
BUTTERFLY_WORDS = {"forewing", "hindwing", "eyespot", "antenna", "thorax", "abdomen", "palp", "costa", "chevron"}
CUB_PARTS = ["back", "beak", "belly", "breast", "crown", "forehead", "left eye", "left leg", "left wing", "nape",
             "right eye", "right leg", "right wing", "tail", "throat"]
CUB_COLOURS = ["blue", "brown", "iridescent", "purple", "rufous", "grey", "yellow", "olive", "green", "pink",
               "orange", "black", "white", "red", "buff"]


def test_groups_are_files_listed_with_the_default_first():
    assert group_names()[:2] == ("butterfly", "bird") and "generic" in group_names()
    for name in group_names():
        g = taxon_group(name)
        assert g.path == VOCAB_DIR / "groups" / f"{name}.json" and g.description
    assert taxon_group().name == "butterfly"
    assert taxon_group("butterfly").locate == "layout" and taxon_group("butterfly").locates("forewing band")
    # Birds locate parts with concepts fitted per model: the group alone locates none of them.
    bird = taxon_group("bird")
    assert bird.locate == "dff" and not bird.locates("breast") and bird.locate_options == {"tap": "blocks.4", "k": 10}
    assert bird.placed_part("breast", "colour") == "whole bird"
    assert bird.placed_part("breast", "colour", located={"breast"}) == "breast"
    assert bird.placed_part("bill", "shape") is None and bird.placed_part("bill", "shape", located={"bill"}) == "bill"


def test_unknown_group_is_a_clear_error_with_a_suggestion():
    with pytest.raises(UnknownGroupError) as err:
        taxon_group("brid")
    assert isinstance(err.value, UnknownChoiceError) and isinstance(err.value, TraitsError)
    text = str(err.value)
    assert "[FT014]" in text and "Did you mean 'bird'?" in text and "butterfly, bird, generic" in text


def test_bird_group_has_cubs_parts_and_colour_words():
    bird = taxon_group("bird")
    for part in CUB_PARTS:
        normalised = normalise_part(part, "bird")
        assert normalised in bird.parts.parents, part
        assert "whole bird" in bird.parts.ancestors(normalised) or normalised == "whole bird"
    assert normalise_part("beak", "bird") == "bill" and bird.parts.ancestors("left wing") == {"wing", "whole bird"}
    palette = load_vocab().for_group("bird")
    assert set(palette.base_colours) | set(palette.sheens) == set(CUB_COLOURS)
    for word, value in [("vermilion", "red"), ("blue", "blue"), ("rufous", "rufous"), ("buff", "buff"),
                        ("olive", "olive"), ("chestnut", "rufous"), ("crimson", "red"), ("grey", "grey")]:
        assert normalise_colour(word, palette) == value, word
    # The shared palette (butterflies) is unchanged.
    assert normalise_colour("rufous") == "brown" and normalise_colour("olive") == "green"


def test_bird_pixels_are_named_in_the_bird_palette():
    def name(rgb, group=None):
        return base_colours(group)[classify_colours(np.full((1, 1, 3), np.array(rgb) / 255.0), group)[0, 0]]

    assert name((227, 66, 52), "bird") == "red"        # vermilion
    assert name((40, 80, 200), "bird") == "blue"
    assert name((30, 60, 140), "bird") == "blue"       # a dark indigo blue
    assert name((170, 80, 40), "bird") == "rufous"
    assert name((110, 110, 50), "bird") == "olive"
    assert name((220, 190, 140), "bird") == "buff"
    assert name((170, 80, 40)) != "rufous"              # the shared palette has no rufous
    scorer = ColorScorer().for_group("bird")
    assert scorer.supports("rufous whole bird") and "palette=bird" in scorer.cache_id
    assert ColorScorer().for_group("butterfly").cache_id == ColorScorer().cache_id


def test_bird_candidates_never_name_butterfly_parts_or_a_guessed_part():
    expert = [[Trait("breast", "colour", "red"), Trait("bill", "shape", "cone"), Trait("wing", "pattern", "striped"),
               Trait("body", "size", "small")]]
    cands = candidate_phrases("bird", expert, species_names=["Passerina cyanea"], n_controls=2)
    real = [c for c in cands if not c.control]
    assert real and {c.trait.part for c in real} == {"whole bird"}  # parts cannot be located: never guessed
    words = {w for c in real for w in c.phrase.split()}
    assert not words & BUTTERFLY_WORDS
    phrases = {c.phrase for c in real}
    assert {"red whole bird", "rufous whole bird", "striped whole bird"} <= phrases
    assert "cone whole bird" not in phrases  # a bill's shape cannot be judged on the whole bird
    assert {c.trait.part for c in vocab_candidates("butterfly")} >= {"forewing band", "hindwing eyespot"}


def test_a_new_group_is_a_new_file(tmp_path, monkeypatch):
    vocab_dir = tmp_path / "vocab"
    shutil.copytree(VOCAB_DIR, vocab_dir)
    fish = {"description": "Ray-finned fishes seen from the side.", "organism": "fish", "whole_part": "whole fish",
            "parts": {"whole fish": None, "fin": "whole fish", "dorsal fin": "fin", "head": "whole fish"},
            "synonyms": {"fins": "fin"}, "candidates": {"colour": ["dorsal fin", "head"]},
            "values": {"pattern": ["striped"]}, "locate": {"method": "none", "unlocated": "whole"}}
    (vocab_dir / "groups" / "fish.json").write_text(json.dumps(fish))
    monkeypatch.setenv("FINER_TRAITS_VOCAB", str(vocab_dir))
    load_vocab.cache_clear()
    try:
        assert "fish" in group_names() and normalise_part("fins", "fish") == "fin"
        phrases = {c.phrase for c in vocab_candidates("fish")}
        assert "red dorsal fin" in phrases
        placed = {c.phrase for c in candidate_phrases("fish", n_controls=0)}
        assert "red whole fish" in placed and "red dorsal fin" not in placed
        (vocab_dir / "groups" / "bad.json").write_text(json.dumps({"parts": {"x": None},
                                                                   "locate": {"method": "guess"}}))
        load_vocab.cache_clear()
        with pytest.raises(TraitsError, match="locate.method 'guess'"):
            load_vocab()
    finally:
        monkeypatch.delenv("FINER_TRAITS_VOCAB")
        load_vocab.cache_clear()


@pytest.mark.parametrize("name", ["014.Indigo_Bunting", "Indigo Bunting", "indigo bunting", "Indigo_Bunting",
                                  " 014.indigo-bunting "])
def test_cub_class_names_match_with_or_without_prefix(name):
    assert normalise_name(name) == "indigo bunting"


def test_expert_lists_match_cub_names_and_warn_when_they_match_neither_species():
    source = {"014.Indigo_Bunting": TraitList("014.Indigo_Bunting", [Trait("breast", "colour", "blue")]),
              "017.Cardinal": TraitList("017.Cardinal", [Trait("breast", "colour", "red")])}
    a, b = _expert_lists(source, ["Indigo Bunting", "cardinal"])
    assert a is source["014.Indigo_Bunting"] and b is source["017.Cardinal"]
    assert expert_coverage_warnings(source, ["Indigo Bunting", "Cardinal"]) == []
    assert expert_coverage_warnings(None, ["Indigo Bunting", "Cardinal"]) == []
    (neither,) = expert_coverage_warnings(source, ["Indigo Buntin", "Painted Bunting"])
    assert "match neither Indigo Buntin nor Painted Bunting" in neither and "'indigo bunting'" in neither
    (one,) = expert_coverage_warnings(source, ["Indigo Bunting", "Painted Bunting"])
    assert one.startswith("The expert lists have no entry for Painted Bunting")


def test_cli_lists_groups_and_refuses_an_unknown_one(tmp_path, capsys):
    with pytest.raises(SystemExit) as done:
        main(["groups"])
    assert done.value.code in (0, None)
    out = capsys.readouterr().out
    assert out.splitlines()[0].startswith("butterfly") and any(line.startswith("bird ") for line in out.splitlines())
    with pytest.raises(SystemExit) as failed:
        main(["train", str(tmp_path), "--out", str(tmp_path / "m"), "--taxon-group", "brids"])
    assert failed.value.code == 2
    err = capsys.readouterr().err
    assert "Unknown taxon group 'brids'" in err and "bird" in err and "Traceback" not in err


def _photo(rng, colour, size=48):
    from PIL import Image

    arr = rng.normal(0, 25, (size, size, 3)) + np.array(colour)
    arr[size // 4: 3 * size // 4, size // 4: 3 * size // 4] = colour
    return Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))


def test_train_is_honest_about_small_samples_and_stores_the_group(tmp_path):
    import pandas as pd

    from pipeline.describe import Pipeline
    from pipeline.errors import DatasetError
    from pipeline.train import train_classifier

    rng = np.random.default_rng(0)
    species = {"Rubra_alpha": ((200, 40, 30), 8), "Viridis_beta": ((40, 170, 60), 8), "Caerulea_gamma": ((40, 60, 200), 2)}
    for name, (colour, n) in species.items():
        (tmp_path / "data" / name).mkdir(parents=True)
        for i in range(n):
            _photo(rng, colour).save(tmp_path / "data" / name / f"{i:03d}.png")
    report = train_classifier(tmp_path / "data", tmp_path / "m", image_size=64, epochs=60, device="cpu",
                              taxon_group="bird")
    (warning,) = report.warnings
    assert warning.startswith("Caerulea gamma has only 1 training photo (fewer than 3)")
    card = json.loads((tmp_path / "m" / "card.json").read_text())
    training = card["training"]
    assert card["taxon_group"] == "bird" and training["warnings"] == [warning]
    assert training["train_images_per_species"] == {"Caerulea gamma": 1, "Rubra alpha": 6, "Viridis beta": 6}
    assert training["test_images_per_species"] == {"Caerulea gamma": 1, "Rubra alpha": 2, "Viridis beta": 2}
    ci = card["accuracy_interval"]
    assert ci["method"] == "wilson" and ci["level"] == 0.95 and ci["n_test"] == 5
    assert ci["low"] <= card["accuracy"] <= ci["high"] and ci["high"] - ci["low"] > 0.3  # 5 photos: a wide interval
    per = pd.read_csv(tmp_path / "m" / "per_species.csv")
    assert {"n_train", "n_test", "accuracy_low", "accuracy_high"} <= set(per.columns)
    assert "NaN" not in (tmp_path / "m" / "card.json").read_text()
    assert Pipeline.load(tmp_path / "m", device="cpu").group == "bird"  # read back from the card
    assert Pipeline.load(tmp_path / "m", device="cpu", taxon_group="generic").group == "generic"

    rows = [{"image": f"data/{sp}/{i:03d}.png", "species": sp, "split": "test" if sp == "Caerulea_gamma" else "train"}
            for sp, (_, n) in species.items() for i in range(n)]
    pd.DataFrame(rows).to_csv(tmp_path / "manifest.csv", index=False)
    with pytest.raises(DatasetError, match=r"(?s)no training photos: Caerulea gamma.*split=train"):
        train_classifier(tmp_path, tmp_path / "m2", manifest=tmp_path / "manifest.csv", image_size=64, epochs=5,
                         device="cpu")
    assert not (tmp_path / "m2" / "card.json").exists()


def _no_nan(text: str) -> dict:
    def refuse(constant):
        raise ValueError(f"not strict JSON: {constant}")

    return json.loads(text, parse_constant=refuse)


def test_describe_a_bird_names_the_whole_bird_and_warns_about_unmatched_expert_lists(describe_model_dir,
                                                                                   synthetic_species_dir):
    import pandas as pd

    from pipeline.describe import Pipeline

    m = pd.read_csv(synthetic_species_dir / "manifest.csv")
    photo = synthetic_species_dir / m[(m["species"] == "Synthia aurantiaca") & (m["split"] == "test")]["image"].iloc[0]
    cub_style = {"014.Synthia_aurantiaca": TraitList("014.Synthia_aurantiaca", [Trait("breast", "colour", "orange")]),
                 "015.Synthia_rubra": TraitList("015.Synthia_rubra", [Trait("breast", "colour", "red")])}
    pipe = Pipeline.load(describe_model_dir, expert=cub_style, device="cpu", taxon_group="bird")
    r = pipe.describe(photo, "Synthia rubra", target_species="Synthia aurantiaca")
    assert r.traits and {t.trait.part for t in r.traits} == {"whole bird"}
    assert not {w for t in r.traits for w in t.phrase.split()} & BUTTERFLY_WORDS
    assert "whole bird" in r.text and r.provenance["taxon_group"] == "bird"
    assert not [w for w in r.warnings if "expert" in w]  # '014.Synthia_aurantiaca' is Synthia aurantiaca
    assert any(t.expert_status is not None for t in r.traits)
    other = Pipeline.load(describe_model_dir, expert={"Passer domesticus": TraitList("Passer domesticus", [])},
                          device="cpu", taxon_group="bird")
    r2 = other.describe(photo, "Synthia rubra", target_species="Synthia aurantiaca")
    assert any("match neither Synthia aurantiaca nor Synthia rubra" in w for w in r2.warnings)
    assert any("match neither" in w for w in _no_nan(r2.to_json())["warnings"])
    pair = pipe.describe_pair([photo], [photo], "Synthia aurantiaca", "Synthia rubra")
    assert _no_nan(pair.to_json())["target_probability"] is None  # NaN is not JSON


def test_cli_describe_json_is_strict_and_carries_the_group_and_warnings(describe_model_dir, synthetic_species_dir,
                                                                         tmp_path, capsys):
    import pandas as pd

    m = pd.read_csv(synthetic_species_dir / "manifest.csv")
    photo = synthetic_species_dir / m[(m["species"] == "Synthia rubra") & (m["split"] == "test")]["image"].iloc[0]
    pd.DataFrame([{"taxon": "001.Turdus_merula", "part": "breast", "attribute": "colour", "value": "black",
                   "text": "", "source": "csv"}]).to_csv(tmp_path / "experts.csv", index=False)
    with pytest.raises(SystemExit) as done:
        main(["describe", str(photo), "--contrast", "Synthia aurantiaca", "--model", str(describe_model_dir),
              "--target", "Synthia rubra", "--taxon-group", "bird", "--expert", str(tmp_path / "experts.csv"),
              "--json", "--device", "cpu"])
    assert done.value.code in (0, None)
    out = _no_nan(capsys.readouterr().out)
    assert out["provenance"]["taxon_group"] == "bird"
    assert any("match neither Synthia rubra nor Synthia aurantiaca" in w for w in out["warnings"])
