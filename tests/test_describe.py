"""describe() end to end on the synthetic species with the offline ColorScorer: the designed difference is found,
results serialise, the CLI and report work, and bad inputs give clear errors."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from pipeline.cli import main
from pipeline.describe import DescribeResult, Pipeline
from pipeline.errors import BadImageError, ConfigError, UnknownSpeciesError


@pytest.fixture(scope="module")
def model_dir(describe_model_dir):
    return describe_model_dir


@pytest.fixture(scope="module")
def pipe(model_dir, synthetic_species_dir):
    return Pipeline.load(model_dir, scorer="color", expert=synthetic_species_dir / "traits.csv", device="cpu")


def _test_photos(root, species):
    m = pd.read_csv(root / "manifest.csv")
    return [root / p for p in m[(m["species"] == species) & (m["split"] == "test")]["image"]]


def _hit(result, part, attribute, value_a, value_b, k=3):
    """True when a top-k trait names the designed difference with the right direction."""
    for t in result.traits[:k]:
        tr = t.trait
        if tr.attribute != attribute or not (tr.part == part or part.startswith(tr.part)):
            continue
        if (tr.value == value_a and t.direction == "+") or (tr.value == value_b and t.direction == "-"):
            return True
    return False


def test_finds_the_designed_colour_difference(pipe, synthetic_species_dir):
    pairs = pd.read_csv(synthetic_species_dir / "pairs.csv")
    hits, n = 0, 0
    for row in pairs[pairs["attribute"] == "colour"].itertuples():
        for a, b, va, vb in ((row.species_a, row.species_b, row.value_a, row.value_b),
                             (row.species_b, row.species_a, row.value_b, row.value_a)):
            for photo in _test_photos(synthetic_species_dir, a)[:2]:
                r = pipe.describe(photo, b, target_species=a)
                hits += _hit(r, row.part, "colour", va, vb)
                n += 1
                assert r.controls and max(abs(c.effect) for c in r.controls) < abs(r.traits[0].effect)
    assert n == 8 and hits / n >= 0.75, (hits, n)


def test_result_fields_and_serialisation(pipe, synthetic_species_dir):
    photo = _test_photos(synthetic_species_dir, "Synthia aurantiaca")[0]
    r = pipe.describe(photo, "Synthia rubra", target_species="Synthia aurantiaca", top_k=4)
    assert isinstance(r, DescribeResult) and 1 <= len(r.traits) <= 4
    assert r.text.startswith("Compared with Synthia rubra") and "this Synthia aurantiaca" in r.text
    assert [t.rank for t in r.traits] == list(range(1, len(r.traits) + 1))
    assert all(t.direction in "+-" and t.confidence in ("strong", "moderate", "weak") for t in r.traits)
    assert all(t.expert_status in ("confirmed", "contradicted", "new") for t in r.traits)
    assert set(r.maps) == {"gradcam", "finer", "finer_reverse"}
    assert all(m.shape == (64, 64) and 0 <= m.min() and m.max() <= 1 for m in r.maps.values())
    assert r.regions and all(reg.crop is not None for reg in r.regions)
    d = json.loads(r.to_json())
    assert {"text", "traits", "regions", "provenance", "target_species", "contrast_species", "target_probability",
            "uncertain"} <= set(d)
    assert "crop" not in d["regions"][0] and d["traits"][0]["trait"]["part"]
    assert d["provenance"]["scorer"] == "color" and d["provenance"]["gamma"] == 0.6
    assert 6 <= d["provenance"]["n_contrast_references"] <= 9
    from traits.db import normalise_result

    rec = normalise_result(r)  # the database layer reads our result as it is
    assert len(rec.assertions) == len(r.traits)


def test_describe_pair_ranks_the_designed_trait_first(pipe, synthetic_species_dir):
    a = _test_photos(synthetic_species_dir, "Marginia alba") + [
        synthetic_species_dir / p for p in pd.read_csv(synthetic_species_dir / "manifest.csv").query(
            "species == 'Marginia alba' and split == 'train'")["image"]]
    b = [p for p in (synthetic_species_dir / "images" / "Marginia_flava").glob("*.png")]
    r = pipe.describe_pair(a, b, "Marginia alba", "Marginia flava", top_k=3)
    assert _hit(r, "hindwing margin", "colour", "white", "yellow", k=3)
    assert r.provenance["method"] == "visdiff-auroc" and r.provenance["side"] is None
    above = pipe.describe_pair(a[:3], b[:3], "Marginia alba", "Marginia flava", top_k=3, side="above")
    assert above.provenance["side"] == "upper" and {t.trait.side for t in above.traits} == {"upper"}


def test_bad_inputs(pipe, synthetic_species_dir, tmp_path):
    photo = _test_photos(synthetic_species_dir, "Caudia caudata")[0]
    with pytest.raises(UnknownSpeciesError, match="Did you mean 'Caudia ecaudata"):
        pipe.describe(photo, "Caudia ecaudatta")
    with pytest.raises(ConfigError, match="contrast species is the target"):
        pipe.describe(photo, "Caudia caudata", target_species="Caudia caudata")
    with pytest.raises(ConfigError, match="top_k"):
        pipe.describe(photo, "Caudia ecaudata", top_k=0)
    with pytest.raises(BadImageError):
        pipe.describe(Image.new("RGB", (4, 4)), "Caudia ecaudata")
    img = Image.open(photo).convert("RGB")
    for variant in (img.convert("L"), np.asarray(img.convert("L")).astype(np.uint16) * 200, img.resize((12, 12))):
        r = pipe.describe(variant, "Caudia ecaudata", target_species="Caudia caudata")
        assert r.text and r.target_species == "Caudia caudata"
    assert any("only 12x12" in w for w in r.warnings)
    big = pipe.describe(img.convert("RGBA").resize((2400, 2400)), "Caudia ecaudata", target_species="Caudia caudata")
    assert any("downscaled" in w for w in big.warnings) and max(big.image.size) <= 1024


def test_uncertain_classifier_is_flagged(pipe, synthetic_species_dir):
    photo = _test_photos(synthetic_species_dir, "Synthia aurantiaca")[0]
    # Claim the photo shows a species of another genus: the classifier disagrees, the result must say so.
    r = pipe.describe(photo, "Synthia rubra", target_species="Marginia alba")
    assert r.uncertain and r.target_probability < 0.5
    assert "not sure" in r.text and any("unsure" in w for w in r.warnings)


def test_module_level_describe_needs_a_model(monkeypatch, model_dir, synthetic_species_dir):
    import pipeline

    monkeypatch.delenv("FINER_TRAITS_MODEL", raising=False)
    photo = _test_photos(synthetic_species_dir, "Synthia rubra")[0]
    with pytest.raises(ConfigError, match="FINER_TRAITS_MODEL"):
        pipeline.describe(photo, "Synthia aurantiaca")
    monkeypatch.setenv("FINER_TRAITS_MODEL", str(model_dir))
    r = pipeline.describe(photo, "Synthia aurantiaca", target_species="Synthia rubra", top_k=2)
    assert len(r.traits) <= 2 and r.contrast_species == "Synthia aurantiaca"


def test_cli_json_and_html_report(model_dir, synthetic_species_dir, tmp_path, capsys):
    photo = _test_photos(synthetic_species_dir, "Marginia flava")[0]
    out = tmp_path / "report.html"
    with pytest.raises(SystemExit) as done:
        main(["describe", str(photo), "--contrast", "Marginia alba", "--target", "Marginia flava", "--model",
              str(model_dir), "--json", "--report", str(out), "--device", "cpu"])
    assert done.value.code in (0, None)
    d = json.loads(capsys.readouterr().out)
    assert d["target_species"] == "Marginia flava" and d["traits"]
    html = out.read_text()
    assert html.count("data:image/png;base64") >= 4 and "Finer-CAM" in html and d["traits"][0]["phrase"] in html
    with pytest.raises(SystemExit) as exc:
        main(["describe", str(photo), "--contrast", "Nonexistent species", "--model", str(model_dir)])
    assert exc.value.code == 2
    assert "Unknown species" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        main(["describe", str(photo), "--contrast", "Marginia alba", "--model", str(model_dir), "--side", "left"])
    assert exc.value.code == 2 and "Unknown side 'left'" in capsys.readouterr().err
    with pytest.raises(SystemExit) as done:
        main(["describe", str(photo), "--contrast", "Marginia alba", "--target", "Marginia flava", "--model",
              str(model_dir), "--side", "above", "--device", "cpu"])
    assert done.value.code in (0, None) and "(upperside)" in capsys.readouterr().out


def test_cli_several_photos_and_a_folder_load_the_model_once(model_dir, synthetic_species_dir, tmp_path, capsys,
                                                              monkeypatch):
    photos = _test_photos(synthetic_species_dir, "Marginia flava")[:2]
    folder = tmp_path / "photos"
    folder.mkdir()
    (folder / "b.png").write_bytes(photos[1].read_bytes())
    (folder / "a.png").write_bytes(photos[0].read_bytes())
    (folder / "notes.txt").write_text("not a photo")
    loads = []
    real_load = Pipeline.load.__func__

    def counting_load(cls, *args, **kwargs):
        loads.append(args)
        return real_load(cls, *args, **kwargs)

    monkeypatch.setattr(Pipeline, "load", classmethod(counting_load))
    reports = tmp_path / "reports"
    with pytest.raises(SystemExit) as done:
        main(["describe", str(photos[0]), str(folder), "--contrast", "Marginia alba", "--target", "Marginia flava",
              "--model", str(model_dir), "--json", "--report", str(reports), "--device", "cpu"])
    assert done.value.code in (0, None)
    out = json.loads(capsys.readouterr().out)
    assert [d["image"] for d in out] == [str(photos[0]), str(folder / "a.png"), str(folder / "b.png")]
    assert all(d["target_species"] == "Marginia flava" and d["traits"] for d in out)
    assert out[0]["traits"] == out[1]["traits"]  # the same photo gives the same traits
    assert len(loads) == 1
    assert sorted(p.name for p in reports.iterdir()) == [f"{photos[0].stem}.html", "a.html", "b.html"]
    with pytest.raises(SystemExit) as exc:
        main(["describe", str(photos[0]), str(photos[1]), "--contrast", "Marginia alba", "--model", str(model_dir),
              "--report", str(tmp_path / "one.html")])
    assert exc.value.code == 2 and "[FT013]" in capsys.readouterr().err


def test_controls_are_measured_with_the_colour_scorer(pipe, synthetic_species_dir):
    # The colour scorer cannot read random words: each control is scored as a random palette colour on a random
    # part, so the controls carry real, finite scores and effects (they came out NaN / 0 before).
    photo = _test_photos(synthetic_species_dir, "Synthia aurantiaca")[0]
    r = pipe.describe(photo, "Synthia rubra", target_species="Synthia aurantiaca")
    assert len(r.controls) == pipe.n_controls
    assert all(np.isfinite(c.score) and np.isfinite(c.effect) for c in r.controls)
    assert any(abs(c.effect) > 0 for c in r.controls)
    assert all(c.control and c.trait.attribute == "control" and pipe.scorer.supports(c.phrase) for c in r.controls)
    assert not any(t.control for t in r.traits)
    again = pipe.describe(photo, "Synthia rubra", target_species="Synthia aurantiaca")
    assert [c.phrase for c in again.controls] == [c.phrase for c in r.controls]  # seeded: same controls each time


def test_a_known_side_is_carried_and_checked_only_against_that_side(pipe, synthetic_species_dir, tmp_path):
    """side='upper' (or a field guide's 'dorsal'): every trait carries it and the result records it; an expert
    statement about the underside then neither confirms nor contradicts a trait; a bad side is a clear error."""
    from traits.expert import load_expert

    photo = _test_photos(synthetic_species_dir, "Synthia aurantiaca")[0]
    plain = pipe.describe(photo, "Synthia rubra", target_species="Synthia aurantiaca")
    upper = pipe.describe(photo, "Synthia rubra", target_species="Synthia aurantiaca", side="dorsal")
    assert upper.provenance["side"] == "upper" and plain.provenance["side"] is None
    assert {t.trait.side for t in upper.traits} == {"upper"} and {t.trait.side for t in plain.traits} == {None}
    assert [t.phrase for t in upper.traits] == [t.phrase for t in plain.traits]  # the measurement is the same
    assert json.loads(upper.to_json())["traits"][0]["trait"]["side"] == "upper"
    # The same expert list, said of the underside: an upperside photo's traits are no longer checked against it.
    rows = pd.read_csv(synthetic_species_dir / "traits.csv")
    rows["side"] = "under"
    under = tmp_path / "under.csv"
    rows.to_csv(under, index=False)
    assert all(t.side == "under" for tl in load_expert(under).values() for t in tl)
    beneath = Pipeline.load(pipe.model_dir, scorer="color", expert=under, device="cpu")
    any_side = beneath.describe(photo, "Synthia rubra", target_species="Synthia aurantiaca")
    seen_above = beneath.describe(photo, "Synthia rubra", target_species="Synthia aurantiaca", side="upper")
    assert any(t.expert_status in ("confirmed", "contradicted") for t in any_side.traits)
    assert all(t.expert_status == "new" for t in seen_above.traits)
    with pytest.raises(ConfigError, match="Unknown side 'left'"):
        pipe.describe(photo, "Synthia rubra", side="left")
