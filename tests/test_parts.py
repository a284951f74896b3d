"""Part concepts (pipeline.parts): fitting and naming on synthetic photos whose part colours and part masks are known,
storage, the hook into scoring, errors, and a run on CUB photos when the data is there."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from pipeline.errors import BadValueError, CheckpointError, MissingValueError
from pipeline.parts import (
    PARTS_CARD,
    PARTS_WEIGHTS,
    PartLocator,
    PhotoSet,
    expert_part_colours,
    fit_parts,
    photo_activations,
    prepare_photos,
)

pytestmark = pytest.mark.usefixtures("one_torch_thread")
TAP = "blocks.2"  # the test model reads 64 px photos: stride 8 gives an 8 x 8 grid, stride 16 only 4 x 4
PARTS = ("forewing tip", "forewing band", "hindwing", "hindwing margin", "noise")


@pytest.fixture(scope="module")
def classifier(describe_model_dir):
    from pipeline.models import load_classifier

    return load_classifier(describe_model_dir, device="cpu")


@pytest.fixture(scope="module")
def synthetic(synthetic_species_dir, classifier):
    """(train photos, test photos, manifest, part colours with a 'noise' part whose colours are random per species)."""
    manifest = pd.read_csv(synthetic_species_dir / "manifest.csv")
    sets = {split: prepare_photos(classifier, [str(synthetic_species_dir / p) for p in rows["image"]],
                                  list(rows["species"]))
            for split, rows in manifest.groupby("split")}
    colours = expert_part_colours(synthetic_species_dir / "traits.csv", "butterfly")
    rng = np.random.default_rng(0)
    for table in colours.values():  # a part the photos cannot show: colours drawn at random per species
        table["noise"] = {str(rng.choice(["red", "blue", "green", "yellow"])): 100.0}
    return sets["train"], sets["test"], manifest, colours


@pytest.fixture(scope="module")
def fitted(classifier, synthetic):
    train, _, _, colours = synthetic
    return fit_parts(classifier, train, colours, PARTS, "butterfly", k=6, tap=TAP)


def test_expert_part_colours_read_a_trait_list(synthetic):
    colours = synthetic[3]
    assert colours["Synthia rubra"]["forewing band"] == {"red": 100.0}
    assert colours["Synthia aurantiaca"]["forewing band"] == {"orange": 100.0}


def test_a_part_whose_colours_the_photos_show_is_located_and_noise_is_not(fitted):
    naming = fitted.info["naming"]
    assert set(naming) >= set(PARTS)
    # Colours drawn at random per species agree with no region better than with the whole organism.
    assert "noise" not in fitted.parts and not naming["noise"]["located"]
    # The tip is white on two species pairs and black on the third, a small share of the organism that the whole
    # butterfly's colours do not show: only a concept on the tip reads it.
    assert "forewing tip" in fitted.parts, naming
    for part, concepts in fitted.parts.items():
        assert naming[part]["located"] and naming[part]["gain"] > 0 and 1 <= len(concepts) <= 2


def test_located_tip_lies_on_the_true_tip(fitted, classifier, synthetic, synthetic_species_dir):
    """On held-out photos the located tip mask holds tip pixels far above their share of the organism (the
    synthetic photos come with true part masks)."""
    _, test, manifest, _ = synthetic
    rows = manifest[manifest["split"] == "test"].reset_index(drop=True)
    names = {v: int(k) for k, v in json.loads((synthetic_species_dir / "parts.json").read_text()).items()}
    inside, share = [], []
    for i, row in rows.iterrows():
        organism, truth_file = test.organisms[i], synthetic_species_dir / str(row["parts"])
        if organism is None or not truth_file.is_file():
            continue
        found = fitted.locate(test.images[i], organism, classifier).get("forewing tip")
        if found is None:
            continue
        tip = np.asarray(Image.open(truth_file).resize(test.images[i].size, Image.NEAREST)) == names["forewing tip"]
        inside.append((tip & found).sum() / found.sum())
        share.append((tip & organism).sum() / organism.sum())
    assert len(inside) >= 5
    assert np.mean(inside) > 2 * np.mean(share), (np.mean(inside), np.mean(share))


def test_locate_gives_masks_inside_the_organism(fitted, classifier, synthetic):
    _, test, _, _ = synthetic
    i = next(j for j, o in enumerate(test.organisms) if o is not None)
    masks = fitted.locate(test.images[i], test.organisms[i], classifier)
    assert masks and set(masks) <= set(fitted.parts)
    for mask in masks.values():
        assert mask.shape == test.organisms[i].shape and mask.dtype == bool and not (mask & ~test.organisms[i]).any()
    assert fitted.locate(test.images[i], None, classifier) == {}  # no outline: nothing is located


def test_save_and_load_round_trip(fitted, tmp_path):
    assert PartLocator.load(tmp_path) is None  # a model folder without parts
    fitted.save(tmp_path)
    assert (tmp_path / PARTS_WEIGHTS).is_file() and (tmp_path / PARTS_CARD).is_file()
    back = PartLocator.load(tmp_path)
    assert back.tap == fitted.tap and back.parts == fitted.parts and back.k == fitted.k
    np.testing.assert_array_equal(back.components, fitted.components)
    np.testing.assert_array_equal(back.scale, fitted.scale)
    assert back.cache_id == fitted.cache_id
    card = json.loads((tmp_path / PARTS_CARD).read_text())
    assert card["method"] == "dff" and card["naming"]["noise"]["located"] is False


def test_damaged_parts_are_a_clear_error(fitted, tmp_path):
    fitted.save(tmp_path)
    card = json.loads((tmp_path / PARTS_CARD).read_text())
    card["parts"]["forewing tip"] = [99]
    (tmp_path / PARTS_CARD).write_text(json.dumps(card))
    with pytest.raises(CheckpointError, match="damaged"):
        PartLocator.load(tmp_path)
    (tmp_path / PARTS_WEIGHTS).write_bytes(b"not safetensors")
    with pytest.raises(CheckpointError, match="cannot be read"):
        PartLocator.load(tmp_path)


def test_bad_input_is_a_clear_error(classifier, synthetic):
    train, _, _, colours = synthetic
    with pytest.raises(BadValueError, match="k must be"):
        fit_parts(classifier, train, colours, PARTS, "butterfly", k=1, tap=TAP)
    with pytest.raises(MissingValueError, match="No photos"):
        fit_parts(classifier, PhotoSet([], [], []), colours, PARTS, "butterfly", k=4, tap=TAP)
    few = PhotoSet(train.images[:1], [None], train.species[:1])  # no outline: no cells on an organism
    with pytest.raises(MissingValueError, match="too few"):
        fit_parts(classifier, few, colours, PARTS, "butterfly", k=4, tap=TAP)


def test_image_profile_measures_a_located_part_on_its_mask():
    """The hook into scoring: a bird part found by the concepts is cut from its mask; unlocated parts and models
    without concepts measure the whole bird."""
    from pipeline.scorers import create_scorer
    from pipeline.scoring import image_profile
    from prompts.phrases import Candidate
    from traits.model import Trait

    rgb = np.zeros((40, 40, 3), np.uint8)
    rgb[:20] = (200, 30, 30)  # red top half (the "breast" here), blue bottom half
    rgb[20:] = (30, 60, 200)
    image, organism = Image.fromarray(rgb), np.ones((40, 40), bool)
    breast = np.zeros((40, 40), bool)
    breast[:20] = True
    cands = [Candidate(p, Trait(part, "colour", v, v, text=p), "vocab")
             for p, part, v in (("red breast", "breast", "red"), ("red whole bird", "whole bird", "red"))]
    scorer = create_scorer("color").for_group("bird")
    located = image_profile(image, organism, cands, scorer, "bird", {"breast": breast})
    plain = image_profile(image, organism, cands, scorer, "bird")
    assert located[0] == pytest.approx(1.0) and plain[0] == pytest.approx(0.5)
    assert located[1] == pytest.approx(0.5) == plain[1]


def test_describe_uses_the_fitted_parts(fitted, describe_model_dir, tmp_path, synthetic_species_dir):
    """A model folder with parts: the pipeline loads them, measures located parts on their masks and keys its
    reference cache on them (scores made without parts are not reused)."""
    from pipeline.describe import Pipeline

    model = tmp_path / "model"
    shutil.copytree(describe_model_dir, model, ignore=shutil.ignore_patterns(".cache"))
    plain = Pipeline.load(model, device="cpu")
    assert plain.parts is None
    fitted.save(model)
    pipe = Pipeline.load(model, device="cpu")
    assert pipe.parts is not None and pipe.parts.parts == fitted.parts
    assert pipe._cache_key() != plain._cache_key() and fitted.cache_id in pipe._cache_key()
    photo = next((synthetic_species_dir / "images" / "Synthia_rubra").glob("*.png"))
    result = pipe.describe(photo, "Synthia aurantiaca", target_species="Synthia rubra")
    assert result.traits


CUB = Path(os.environ.get("FINER_TRAITS_DATA", "../shared/data"))


@pytest.mark.skipif(not (CUB / "cub-photos" / "manifest.csv").is_file() or
                    not (CUB / "cub-attributes" / "attributes.txt").is_file(),
                    reason="CUB photos / attributes not found under FINER_TRAITS_DATA (default ../shared/data)")
def test_fit_on_cub_photos(classifier):
    """A small fit on real CUB photos: parts come from CUB's colour parts, unlocated ones stay out of the masks."""
    colours = expert_part_colours(CUB / "cub-attributes", "bird")
    assert colours["014.Indigo_Bunting"]["breast"]["blue"] > 80
    manifest = pd.read_csv(CUB / "cub-photos" / "manifest.csv")
    rows = manifest[manifest["split"] == "train"].groupby("species").head(1).head(24)
    photos = prepare_photos(classifier, [str(CUB / "cub-photos" / p) for p in rows["image"]], list(rows["species"]))
    parts = ("crown", "throat", "breast", "wing", "tail", "leg")
    acts = photo_activations(classifier, photos, TAP)
    locator = fit_parts(classifier, photos, colours, parts, "bird", k=5, tap=TAP, activations=acts)
    assert set(locator.info["naming"]) >= set(parts)
    assert set(locator.parts) <= set(parts)
    unlocated = [p for p in parts if p not in locator.parts]
    i = next(j for j, o in enumerate(photos.organisms) if o is not None)
    masks = locator.locate(photos.images[i], photos.organisms[i], classifier)
    assert not set(masks) & set(unlocated)


def test_colour_ceiling_ranks_the_largest_shown_differences_once_per_region():
    """The ceiling benchmark's ideal ranker: the largest |difference| first, signed, only where a side shows the
    colour, and parts measured on one located region are one candidate (describe counts them once)."""
    from evaluation.benchmarks.cub_colour_ceiling import WHOLE, candidate_parts, part_shares, top_traits

    diff = np.array([[0.30, -0.50, 0.01], [0.0, 0.20, -0.40]])
    shown = np.array([[True, True, True], [True, False, True]])
    assert top_traits(diff, shown, k=3) == [(0, 1, "-"), (1, 2, "-"), (0, 0, "+")]
    assert top_traits(diff, np.zeros_like(shown)) == []  # nothing shown, nothing claimed
    locator = PartLocator(tap="blocks.4", components=np.ones((3, 2)), scale=np.ones(3),
                          parts={"crown": (0, 1), "nape": (0, 1), "breast": (2,)})
    parts = candidate_parts(locator)
    assert parts == {WHOLE: (), "breast": (2,), "crown": (0, 1)}
    counts = np.zeros((1, 4, 2))
    counts[0, 0] = [4, 0]   # concept 0: colour 0
    counts[0, 2] = [0, 2]   # concept 2: colour 1
    counts[0, 3] = [4, 2]   # the whole organism
    shares = part_shares(counts, parts)
    np.testing.assert_allclose(shares[0], [[4 / 6, 2 / 6], [0, 1], [1, 0]])
