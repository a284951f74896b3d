"""Region evidence (pipeline.evidence): regions are matched to their counterparts on reference photos by the
classifier's features, scored against them, and traits that sit in a region the classifier used rank first."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from pipeline.describe import Pipeline
from pipeline.evidence import (
    Counterpart,
    ReferencePhoto,
    RegionEvidence,
    apply_region_evidence,
    counterparts,
    feature_grids,
    match_region,
    region_descriptor,
    region_statistics,
)
from pipeline.images import load_image
from pipeline.masks import Box
from pipeline.models import load_classifier
from pipeline.regions import Region
from pipeline.scoring import PhraseScore, PhraseTable
from prompts.phrases import Candidate
from traits.model import Trait


@pytest.fixture(scope="module")
def classifier(describe_model_dir, one_torch_thread):
    return load_classifier(describe_model_dir, device="cpu")


def _photo(root, species: str, split: str = "test", k: int = 0) -> Image.Image:
    m = pd.read_csv(root / "manifest.csv")
    path = m[(m["species"] == species) & (m["split"] == split)]["image"].iloc[k]
    return Image.open(root / path).convert("RGB")


def test_feature_grids_are_unit_length_per_location(classifier, synthetic_species_dir):
    img = _photo(synthetic_species_dir, "Synthia aurantiaca")
    (feats,) = feature_grids(classifier, [img])
    assert feats.ndim == 3 and feats.shape[1] >= 4
    norms = feats.norm(dim=0)
    assert torch.allclose(norms, torch.ones_like(norms), atol=1e-4)


def test_the_cam_pass_keeps_the_matching_features(classifier, synthetic_species_dir):
    """explain_many(keep=...) carries the matching layers' grids from its own forward pass: they give exactly the
    features a separate feature_grids pass gives, so describe needs no second pass for region matching."""
    from pipeline.cam import CamRequest, explain_many
    from pipeline.evidence import matching_features, matching_layers

    img = _photo(synthetic_species_dir, "Synthia aurantiaca")
    layers = matching_layers(classifier)
    cams = explain_many(classifier, img, [CamRequest(method="gradcam"), CamRequest(method="finer", target=0)],
                        keep=layers)
    assert set(cams[0].activations) == set(layers) and cams[1].activations.keys() == cams[0].activations.keys()
    kept = matching_features(cams[0].activations, layers)[0]
    torch.testing.assert_close(kept, feature_grids(classifier, [img])[0], atol=1e-5, rtol=1e-5)
    assert explain_many(classifier, img, [CamRequest(method="gradcam")])[0].activations == {}  # nothing unasked


def test_a_region_is_found_again_on_a_shifted_copy(classifier, synthetic_species_dir):
    """Matching by features follows the content: on a translated copy of the photo the counterpart of a region
    moves with it (to within about one feature cell)."""
    img = _photo(synthetic_species_dir, "Synthia aurantiaca")
    w, h = img.size
    dx, dy = w // 4, h // 8
    shifted = Image.new("RGB", (w, h), img.getpixel((0, 0)))
    shifted.paste(img.crop((0, 0, w - dx, h - dy)), (dx, dy))
    f_img, f_ref = feature_grids(classifier, [img, shifted])
    box = Box(w // 4, h // 4, w // 2, h // 2)
    mask = np.zeros((h, w), dtype=bool)
    mask[box.top:box.bottom, box.left:box.right] = True
    d = region_descriptor(f_img, mask)
    ref = ReferencePhoto(path="shifted", image=shifted, organism=None, features=f_ref)
    found, sim = match_region(d, ref, (box.right - box.left, box.bottom - box.top))
    cell = w / f_ref.shape[-1]
    assert abs(found.left - (box.left + dx)) <= 1.5 * cell and abs(found.top - (box.top + dy)) <= 1.5 * cell
    assert (found.right - found.left, found.bottom - found.top) == (box.right - box.left, box.bottom - box.top)
    assert sim > 0.5


def test_counterparts_keep_the_organism_scale(classifier, synthetic_species_dir):
    """A reference photo showing the organism twice as large gets a counterpart box twice the region's size."""
    img = _photo(synthetic_species_dir, "Synthia aurantiaca")
    w, h = img.size
    organism = np.zeros((h, w), dtype=bool)
    organism[h // 4: 3 * h // 4, w // 4: 3 * w // 4] = True
    big = img.resize((2 * w, 2 * h))
    big_org = np.kron(organism, np.ones((2, 2), dtype=bool))
    f_img, f_big = feature_grids(classifier, [img, big])
    region = Region(index=0, box=Box(w // 4, h // 4, w // 2, h // 2), mass=1.0, area=0.1, peak=1.0)
    (found,) = counterparts(img, organism, f_img, [region],
                            [("Synthia aurantiaca", ReferencePhoto("big", big, big_org, f_big))])
    (c,) = found
    assert (c.box.right - c.box.left, c.box.bottom - c.box.top) == (2 * (w // 4), 2 * (h // 4))
    assert c.species == "Synthia aurantiaca" and c.image == "big"


def test_region_statistics_follow_the_species_difference():
    """Phrase 0: the region scores like the target's counterparts, far from the contrast's -> support > 0.
    Phrase 1: the region differs from the contrast the other way than the target does -> no support."""
    region = np.array([[0.8, 0.1]])
    contrast = np.array([[[0.2, 0.5], [0.25, 0.55], [0.15, 0.45]]])  # [R, n, P]
    target = np.array([[[0.75, 0.9], [0.85, 0.95]]])
    effect, support = region_statistics(region, contrast, target, np.array([True, True]))
    assert effect[0, 0] > 2 and support[0, 0] > 1
    assert effect[0, 1] < 0 and support[0, 1] == 0


def _cands() -> list[Candidate]:
    return [Candidate(phrase="red band", trait=Trait("band", "colour", "red"), source="vocab"),
            Candidate(phrase="blue band", trait=Trait("band", "colour", "blue"), source="vocab"),
            Candidate(phrase="quiet lamp", trait=Trait("band", "colour", "green"), source="control")]


def test_traits_in_a_region_rank_first_and_say_so():
    cands = _cands()
    table = PhraseTable(tuple(PhraseScore(cands[j], j, direction="+", rank_score=rank)
                              for j, rank in ((1, 5.0), (2, 4.0), (0, 1.0))), "target_vs_contrast_llr")
    regions = [Region(index=0, box=Box(0, 0, 10, 10), mass=1.0, area=0.1, peak=1.0)]
    ev = RegionEvidence(counterparts=[[]], region_scores=np.zeros((1, 3)), contrast_scores=np.zeros((1, 0, 3)),
                        target_scores=np.zeros((1, 0, 3)), effect=np.array([[3.0, -0.5, 9.0]]),
                        support=np.array([[2.0, 0.0, 9.0]]))
    out = apply_region_evidence(table, cands, ev, regions, lambda part, region: 1.0)
    assert out[0].phrase == "red band"  # in a region: first although its photo-level score is lower
    first = out[0]
    assert first.in_region is True and first.region == 0 and first.region_support == 2.0
    assert first.rank_score == 1.0 + 2.0 and first.region_effect == 3.0  # photo-level plus region-level support
    by_phrase = {r.phrase: r for r in out}
    assert by_phrase["blue band"].in_region is False and by_phrase["blue band"].region_effect is None
    assert by_phrase["quiet lamp"].in_region is False  # controls never count as region evidence
    assert out.method == table.method
    # A trait whose part is located elsewhere on the photo does not sit in the region, whatever the scores say.
    away = apply_region_evidence(table, cands, ev, regions, lambda part, region: 0.0)
    assert not any(r.in_region for r in away)
    # Nor does a trait whose part cannot be located on the photo: nobody can say it sits in the region.
    unknown = apply_region_evidence(table, cands, ev, regions, lambda part, region: None)
    assert not any(r.in_region for r in unknown)
    # Without evidence the order is unchanged and nothing claims a region.
    none = apply_region_evidence(table, cands, None, regions, lambda part, region: 1.0)
    assert [r.phrase for r in none] == [r.phrase for r in table] and not any(r.in_region for r in none)


def test_describe_reports_counterparts_and_region_flags(describe_model_dir, synthetic_species_dir, one_torch_thread):
    pipe = Pipeline.load(describe_model_dir, scorer="color", device="cpu")
    pair = pd.read_csv(synthetic_species_dir / "pairs.csv").iloc[0]
    target, sibling = pair["species_a"], pair["species_b"]
    m = pd.read_csv(synthetic_species_dir / "manifest.csv")
    photo = synthetic_species_dir / m[(m["species"] == target) & (m["split"] == "test")]["image"].iloc[0]
    r = pipe.describe(photo, sibling, target_species=target)
    assert r.counterparts and len(r.counterparts) == len(r.regions)
    species = {c["species"] for c in r.counterparts[0]["counterparts"]}
    assert species == {sibling, target}
    for c in r.counterparts[0]["counterparts"]:
        with Image.open(c["image"]) as ref:
            x0, y0, x1, y1 = c["box"]
            assert 0 <= x0 < x1 <= ref.size[0] and 0 <= y0 < y1 <= ref.size[1]
    assert all(t.in_region is not None for t in r.traits)
    flags = [t.in_region for t in r.traits]
    assert flags == sorted(flags, reverse=True)  # region traits first
    json.loads(r.to_json())  # strict JSON with the new fields
    assert isinstance(Counterpart(image="a", species="b", box=Box(0, 0, 1, 1), similarity=0.5).to_dict(), dict)


def test_part_share_says_where_a_region_lies():
    """A region over the left forewing of a spread-wing outline lies on the forewing, not on the hindwing; the
    whole organism always holds it; a part the group cannot locate gives None (cannot be checked)."""
    from pipeline.evidence import PartShares

    organism = np.zeros((100, 100), dtype=bool)
    organism[10:90, 5:95] = True
    region = Region(index=0, box=Box(5, 10, 30, 35), mass=1.0, area=0.06, peak=1.0)  # upper left
    fly = PartShares(organism, "butterfly")
    fore = fly("forewing", region)
    hind = fly("hindwing", region)
    assert fore is not None and hind is not None and fore > 0.5 > hind
    assert fly(None, region) == 1.0
    bird = PartShares(organism, "bird", whole="whole bird")
    assert bird("whole bird", region) == 1.0
    assert bird("crown", region) is None
    assert PartShares(organism, "bird", whole="whole bird", located={"crown": organism})("crown", region) == 1.0
    assert PartShares(None, "butterfly")("forewing", region) is None


def test_parts_on_one_located_region_count_as_one_for_diversity():
    """Crown and nape located on the same concepts are one measurement: a repeat of 'less buff' is not a new trait;
    parts on different concepts, or unlocated, are judged by the hierarchy alone."""
    from pipeline.describe import PartRelations

    rel = PartRelations("bird", {"crown": (1, 4), "nape": (1, 4), "breast": (2,)})
    assert rel.related("crown", "nape") and rel.related("nape", "crown")
    assert not rel.related("crown", "breast")
    assert not PartRelations("bird").related("crown", "nape")
    assert rel.related("head", "crown")  # the hierarchy still holds


def test_a_cold_describe_outlines_each_reference_photo_once(describe_model_dir, synthetic_species_dir, tmp_path,
                                                             one_torch_thread, monkeypatch):
    """On an empty reference cache the reference scores and the region matching share one Grad-CAM outline per
    reference photo (they were computed twice), and the scores are the ones the old path gave."""
    import importlib
    import shutil

    from pipeline.references import reference_images

    model = tmp_path / "model"
    shutil.copytree(describe_model_dir, model, ignore=shutil.ignore_patterns("reference-scores*"))
    pair = pd.read_csv(synthetic_species_dir / "pairs.csv").iloc[0]
    target, sibling = pair["species_a"], pair["species_b"]
    m = pd.read_csv(synthetic_species_dir / "manifest.csv")
    photo = synthetic_species_dir / m[(m["species"] == target) & (m["split"] == "test")]["image"].iloc[0]
    pipe = Pipeline.load(model, scorer="color", device="cpu")
    seen: list[int] = []
    saliency = Pipeline._saliency
    monkeypatch.setattr(Pipeline, "_saliency", lambda self, images, species: seen.append(len(images))
                        or saliency(self, images, species))
    matched: list[int] = []  # photos given their own forward pass for region matching
    describe_module = importlib.import_module("pipeline.describe")  # the package's `describe` is the function
    grids = describe_module.feature_grids
    monkeypatch.setattr(describe_module, "feature_grids", lambda clf, images, *a: matched.append(len(images))
                        or grids(clf, images, *a))
    pipe.describe(photo, sibling, target_species=target)
    n_refs = sum(len(reference_images(model, s, max_images=pipe.max_references)) for s in (target, sibling))
    assert n_refs > 0 and sum(seen) == n_refs
    assert sum(matched) == n_refs  # the described photo's features came with its CAM pass
    # The shared outline gives the reference scores an outline of its own would: the same numbers.
    cands, _ = pipe._candidates(target, sibling, [target, sibling])
    cached = pipe.references(sibling, cands)
    fresh = Pipeline.load(model, scorer="color", device="cpu")
    images = [load_image(p) for p in reference_images(model, sibling, max_images=pipe.max_references)]
    own = fresh._profile_fn(cands, sibling)(images, [c.phrase for c in cands])
    np.testing.assert_allclose(cached, own, atol=1e-9, equal_nan=True)
