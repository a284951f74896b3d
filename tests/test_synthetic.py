"""Synthetic datasets: layout, ground truth, determinism, atomic writes, bad input, CLI."""

from __future__ import annotations

import csv
import hashlib
import json
import time

import numpy as np
import pytest
from PIL import Image

from evaluation.synthetic import PALETTE, PARTS, SHAPE_CLASSES, Nuisance, make_shapes, make_species
from evaluation.synthetic import species as species_mod
from evaluation.synthetic.species import DESIGNS, render_species, species_designs, trait_rows
from pipeline.errors import ConfigError, DatasetError


def _rows(path):
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def _digest(root):
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def test_species_layout_and_manifest(synthetic_species_dir):
    root = synthetic_species_dir
    rows = _rows(root / "manifest.csv")
    assert list(rows[0]) == ["image", "species", "common_name", "split", "mask", "parts"]
    assert len(rows) == 6 * 12
    species = sorted({r["species"] for r in rows})
    assert species == sorted(d.name for d in DESIGNS[:6])
    for sp in species:
        folder = root / "images" / sp.replace(" ", "_")
        assert len(list(folder.glob("*.png"))) == 12
        splits = [r["split"] for r in rows if r["species"] == sp]
        assert splits.count("test") == 3 and splits.count("train") == 9
    for r in rows[::7]:
        img = Image.open(root / r["image"])
        mask = np.asarray(Image.open(root / r["mask"]))
        parts = np.asarray(Image.open(root / r["parts"]))
        assert img.mode == "RGB" and img.size == (96, 96)
        assert set(np.unique(mask)) <= {0, 255}
        assert np.array_equal(mask > 0, parts > 0)
        assert parts.max() <= max(PARTS) and 0.05 < (parts > 0).mean() < 0.8
    assert json.loads((root / "parts.json").read_text()) == {str(k): v for k, v in PARTS.items()}
    meta = json.loads((root / "dataset.json").read_text())
    assert meta["name"] == "synthetic-species" and meta["seed"] == 0 and meta["n_images"] == 72
    assert meta["splits"] == {"train": 54, "test": 18}


def test_traits_and_pairs_tables(synthetic_species_dir):
    traits = _rows(synthetic_species_dir / "traits.csv")
    assert list(traits[0]) == ["taxon", "part", "attribute", "value", "text", "source"]
    assert {t["source"] for t in traits} == {"synthetic"}
    band = [t for t in traits if t["taxon"] == "Synthia aurantiaca" and t["part"] == "forewing band"]
    assert band == [dict(taxon="Synthia aurantiaca", part="forewing band", attribute="colour", value="orange",
                         text="orange band across the forewing", source="synthetic")]
    for t in traits:
        if t["attribute"] == "colour":
            assert t["value"] in PALETTE and t["value"] in t["text"]
    pairs = _rows(synthetic_species_dir / "pairs.csv")
    got = {(p["species_a"], p["species_b"], p["part"], p["attribute"], p["value_a"], p["value_b"]) for p in pairs}
    assert got == {
        ("Synthia aurantiaca", "Synthia rubra", "forewing band", "colour", "orange", "red"),
        ("Marginia alba", "Marginia flava", "hindwing margin", "colour", "white", "yellow"),
        ("Caudia caudata", "Caudia ecaudata", "hindwing tail", "presence", "present", "absent"),
    }


def test_all_twelve_species_pairs_differ_in_one_or_two_traits():
    designs = species_designs(12)
    for a, b in zip(designs[::2], designs[1::2], strict=True):
        diffs = species_mod.pair_differences(a, b)
        assert 1 <= len(diffs) <= 2, (a.name, diffs)
    # Every species is distinguishable from every other one by its trait table.
    tables = [frozenset((r["part"], r["attribute"], r["value"]) for r in trait_rows(d)) for d in designs]
    assert len(set(tables)) == 12


@pytest.mark.parametrize("pair,part", [(0, "forewing band"), (1, "hindwing margin"), (2, "hindwing tail")])
def test_siblings_differ_only_on_the_designed_part(pair, part):
    a, b = DESIGNS[2 * pair], DESIGNS[2 * pair + 1]
    clean = Nuisance.none()
    rgb_a, lab_a = render_species(a, 128, np.random.default_rng(5), clean)
    rgb_b, lab_b = render_species(b, 128, np.random.default_rng(5), clean)
    pid = species_mod.PART_IDS[part]
    region = (lab_a == pid) | (lab_b == pid)
    assert region.sum() > 20
    # Outside the designed part (plus one pixel of anti-aliased edge) the siblings are pixel-identical.
    grown = np.asarray(Image.fromarray(region.astype(np.uint8) * 255).resize((128, 128)).filter(
        __import__("PIL.ImageFilter", fromlist=["MaxFilter"]).MaxFilter(5))) > 0
    diff = np.abs(rgb_a.astype(int) - rgb_b.astype(int)).max(axis=-1) > 0
    assert diff.any() and not (diff & ~grown).any()
    assert np.array_equal(lab_a[~grown], lab_b[~grown])


def test_part_colours_match_the_trait_table():
    sp = DESIGNS[0]  # Synthia aurantiaca: orange band, white tip, brown forewing
    rgb, labels = render_species(sp, 128, np.random.default_rng(1), Nuisance.none())
    for part, colour in [("forewing band", "orange"), ("forewing tip", "white"), ("forewing", "brown"),
                         ("hindwing margin", "black")]:
        inner = labels == species_mod.PART_IDS[part]
        mean = rgb[inner].mean(axis=0)
        assert np.abs(mean - np.array(PALETTE[colour])).max() < 20, (part, mean)


def test_same_seed_is_byte_identical_and_other_seed_differs(tmp_path):
    a = make_species(tmp_path / "a", n_per_species=3, image_size=64, seed=3)
    b = make_species(tmp_path / "b", n_per_species=3, image_size=64, seed=3)
    c = make_species(tmp_path / "c", n_per_species=3, image_size=64, seed=4)
    da, db, dc = _digest(a), _digest(b), _digest(c)
    assert da == db and len(da) == 18 * 3 + 5
    assert da["traits.csv"] == dc["traits.csv"]
    assert da["images/Synthia_rubra/00000.png"] != dc["images/Synthia_rubra/00000.png"]
    s1 = make_shapes(tmp_path / "s1", n_per_class=2, image_size=64, seed=1)
    s2 = make_shapes(tmp_path / "s2", n_per_class=2, image_size=64, seed=1)
    assert _digest(s1) == _digest(s2)


def test_generation_is_fast(tmp_path):
    start = time.perf_counter()
    make_species(tmp_path / "fast", n_per_species=12, image_size=128, seed=0)
    # About 2 s on an idle 2-core machine; the bound leaves room for a loaded CI runner.
    assert time.perf_counter() - start < 20


def test_interrupted_run_leaves_nothing(tmp_path, monkeypatch):
    calls = {"n": 0}
    real = species_mod.render_species

    def flaky(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 5:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(species_mod, "render_species", flaky)
    with pytest.raises(KeyboardInterrupt):
        make_species(tmp_path / "out", n_per_species=3, image_size=64)
    assert list(tmp_path.iterdir()) == []


def test_existing_folders(tmp_path):
    out = make_species(tmp_path / "d", n_per_species=2, image_size=64)
    stamp = (out / "manifest.csv").stat().st_mtime_ns
    assert make_species(out, n_per_species=2, image_size=64) == out  # identical request: reused
    assert (out / "manifest.csv").stat().st_mtime_ns == stamp
    with pytest.raises(DatasetError, match="overwrite"):
        make_species(out, n_per_species=3, image_size=64)
    make_species(out, n_per_species=3, image_size=64, overwrite=True)
    assert len(_rows(out / "manifest.csv")) == 18
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d"]  # no temporary folders left behind
    (tmp_path / "file").write_text("x")
    with pytest.raises(DatasetError):
        make_shapes(tmp_path / "file", n_per_class=1, image_size=64)


@pytest.mark.parametrize("kwargs", [dict(n_species=5), dict(n_species=14), dict(n_per_species=0),
                                    dict(image_size=8), dict(test_fraction=1.0)])
def test_bad_arguments(tmp_path, kwargs):
    with pytest.raises(ConfigError):
        make_species(tmp_path / "x", **kwargs)
    assert not (tmp_path / "x").exists()


def test_shapes_dataset(synthetic_shapes_dir):
    root = synthetic_shapes_dir
    rows = _rows(root / "manifest.csv")
    assert list(rows[0]) == ["image", "species", "common_name", "split", "mask", "size_range"]
    assert sorted({r["species"] for r in rows}) == sorted(SHAPE_CLASSES)
    assert len(rows) == 72 and sum(r["split"] == "test" for r in rows) == 18
    area = {}
    for r in rows:
        mask = np.asarray(Image.open(root / r["mask"])) > 0
        assert mask.any()
        area.setdefault((r["species"].split()[0], r["size_range"]), []).append(mask.mean())
    # Filled shapes cover more than outlines of the same size range; large ones more than small ones.
    for size in ("large", "small"):
        if ("filled", size) in area and ("outline", size) in area:
            assert np.mean(area[("filled", size)]) > np.mean(area[("outline", size)])
    filled = {s: np.mean(v) for (k, s), v in area.items() if k == "filled"}
    assert filled["large"] > 4 * filled["medium"] > 4 * filled["small"] * 0.8


def test_shape_sizes_follow_the_three_ranges():
    from evaluation.synthetic.shapes import render_shape

    for i in range(12):
        rgb, mask, rng_name = render_shape("filled circle", 256, np.random.default_rng(i))
        ys, xs = np.nonzero(mask)
        diameter = xs.max() - xs.min() + 1
        lo, hi = {"large": (80, 100), "medium": (40, 50), "small": (20, 25)}[rng_name]
        assert lo - 2 <= diameter <= hi + 2


def _run_cli(args):
    """Exit code of the CLI (main may return or raise SystemExit, depending on typer's standalone mode)."""
    from pipeline.cli import main

    try:
        main(args)
    except SystemExit as exc:
        return exc.code or 0
    return 0


def test_cli(tmp_path):
    assert _run_cli(["synth", "species", str(tmp_path / "sp"), "--n-per-class", "2", "--size", "64", "--seed", "1"]) == 0
    assert len(_rows(tmp_path / "sp" / "manifest.csv")) == 12
    assert _run_cli(["synth", "shapes", str(tmp_path / "sh"), "--n-per-class", "2", "--size", "64"]) == 0
    assert len(list((tmp_path / "sh" / "images").rglob("*.png"))) == 12
    assert _run_cli(["synth", "species", str(tmp_path / "sp"), "--n-per-class", "3", "--size", "64"]) == 2


def test_cached_species_reuses_by_arguments(tmp_path):
    from evaluation.synthetic import cached_species

    a = cached_species(tmp_path, n_per_species=2, image_size=64)
    b = cached_species(tmp_path, n_per_species=2, image_size=64)
    c = cached_species(tmp_path, n_per_species=2, image_size=64, nuisance=Nuisance.none())
    assert a == b != c and a.parent == tmp_path
    assert _digest(a) == _digest(b) and _digest(a) != _digest(c)


def test_training_reader_accepts_the_dataset(synthetic_species_dir):
    from pipeline.datasets import read_dataset

    frame = read_dataset(synthetic_species_dir / "manifest.csv").frame
    manifest = _rows(synthetic_species_dir / "manifest.csv")
    assert len(frame) == len(manifest) and frame["species"].nunique() == 6
    assert (frame["split"] == "test").sum() == sum(r["split"] == "test" for r in manifest)


def test_hindwing_margin_is_the_outer_border_only():
    from scipy import ndimage

    labels = species_mod.species_template(DESIGNS[2])
    margin = labels == species_mod.PART_IDS["hindwing margin"]
    body = labels == species_mod.PART_IDS["body"]
    assert margin.sum() > 500
    # no margin pixel within 3 px of the body: the ring's inner strip along the body is ground colour
    assert not (ndimage.binary_dilation(body, iterations=3) & margin).any()
    # ...and every margin pixel is near the background (the outline)
    near_outline = ndimage.binary_dilation(labels == 0, iterations=int(0.09 * species_mod.TEMPLATE_SIZE / 2) + 6)
    assert not (margin & ~near_outline).any()
