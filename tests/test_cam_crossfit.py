"""The cross-fitted Leeds CAM benchmark's fold split, fold manifests and pooled table (no training)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from evaluation.benchmarks.cam_crossfit import (
    fold_differences,
    fold_manifest,
    pooled_comparison,
    render,
    stratified_folds,
    write_fold_manifests,
)
from evaluation.evaluate_cams import leeds_eval_set
from pipeline.datasets import read_dataset
from pipeline.paths import leeds_root
from traits.errors import BadValueError, DatasetError

COUNTS = {"Aus bus": 10, "Aus cus": 7, "Dus eus": 4}


def _species() -> pd.Series:
    return pd.Series([s for s, n in COUNTS.items() for _ in range(n)])


def test_folds_are_disjoint_cover_every_photo_keep_proportions_and_are_seeded():
    species = _species()
    folds = stratified_folds(species, k=3, seed=0)
    # One fold per photo: the folds are disjoint and together hold every photo.
    assert len(folds) == len(species) and set(folds) == {0, 1, 2}
    counts = pd.crosstab(species, folds)
    assert (counts.sum(axis=1) == pd.Series(COUNTS)).all()
    # Each species is spread over the folds as evenly as it can be, and so are the fold sizes.
    assert (counts.max(axis=1) - counts.min(axis=1) <= 1).all()
    assert folds.value_counts().max() - folds.value_counts().min() <= 1
    assert folds.equals(stratified_folds(species, k=3, seed=0))
    assert not folds.equals(stratified_folds(species, k=3, seed=1))


@pytest.mark.parametrize("k", [1, 5, True])
def test_folds_refuse_a_count_a_species_cannot_fill(k):
    with pytest.raises(BadValueError, match="number of folds"):
        stratified_folds(_species(), k=k)


@pytest.fixture
def photo_dir(tmp_path):
    """A manifest dataset with real (tiny) image and mask files."""
    root = tmp_path / "data"
    rows = []
    for i, s in enumerate(_species()):
        image, mask = f"images/{s.replace(' ', '_')}/{i:03d}.png", f"masks/{i:03d}.png"
        for rel, mode in ((image, "RGB"), (mask, "L")):
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            Image.new(mode, (4, 4)).save(root / rel)
        rows.append({"image": image, "mask": mask, "scientific_name": s, "split": "train" if i % 3 else "test"})
    pd.DataFrame(rows).to_csv(root / "manifest.csv", index=False)
    return root


def test_fold_manifests_round_trip_through_the_training_reader(photo_dir, tmp_path):
    out = tmp_path / "out"  # not the data folder: the manifests hold absolute paths
    paths = write_fold_manifests(photo_dir, out, k=3, seed=0)
    original = read_dataset(photo_dir, photo_dir / "manifest.csv").frame.set_index("path")
    held_out = []
    for p in paths:
        assert p.parent == out / "folds"
        frame = read_dataset(photo_dir, p).frame
        assert sorted(frame["path"]) == sorted(original.index)  # every photo, none skipped
        assert (frame["species"] == original.loc[frame["path"], "species"].to_numpy()).all()
        assert (frame["mask"] == original.loc[frame["path"], "mask"].to_numpy()).all()
        held_out += list(frame.loc[frame["split"] == "test", "path"])
    assert sorted(held_out) == sorted(original.index)  # each photo is held out exactly once
    assert not (photo_dir / "folds").exists()
    with pytest.raises(DatasetError, match="other settings"):
        write_fold_manifests(photo_dir, out, k=2, seed=0)


def test_fold_manifest_marks_only_its_fold_as_test():
    frame = pd.DataFrame({"path": ["/a.png", "/b.png", "/c.png"], "species": ["X y", "X y", "X z"]})
    manifest = fold_manifest(frame, pd.Series([0, 1, 0]), fold=0)
    assert list(manifest["split"]) == ["test", "train", "test"] and list(manifest["image"]) == list(frame["path"])


class _Names:
    """Just enough of a classifier for leeds_eval_set: its class names."""

    def __init__(self, names):
        self.class_names, self.num_classes = names, len(names)

    def index(self, species):
        return self.class_names.index(species)


def test_leeds_eval_set_reads_a_fold_manifest(tmp_path):
    root = leeds_root()
    if root is None:
        pytest.skip("Leeds butterflies not found (set FINER_TRAITS_DATA)")
    paths = write_fold_manifests(root, tmp_path, k=3, seed=0)
    names = sorted(read_dataset(root, root / "manifest.csv").frame["species"].unique())
    sets = [leeds_eval_set(root, _Names(names), manifest=p).frame for p in paths]
    pooled = pd.concat(sets)
    # Across the folds every photo of the four species is explained once per direction it belongs to.
    assert not pooled.duplicated(["path", "contrast_species"]).any()
    assert (pooled["species"] == "Heliconius erato").sum() == (
        read_dataset(root, root / "manifest.csv").frame["species"] == "Heliconius erato").sum()


def test_pooled_comparison_pairs_each_direction_and_renders_the_verdict():
    rng = np.random.default_rng(0)
    rows = []
    for target, contrast, gain in (("Vanessa atalanta", "Vanessa cardui", 0.3), ("Vanessa cardui", "Vanessa atalanta", 0.0),
                                   ("Heliconius charitonius", "Heliconius erato", 0.3),
                                   ("Heliconius erato", "Heliconius charitonius", 0.3)):
        for i in range(12):
            base = rng.uniform(0, 0.2)
            noise = rng.normal(0, 0.01) if gain else (0.05 if i % 2 else -0.05)
            for method, rd in (("finer-refine-layercam", base + gain + noise), ("gradcam", base)):
                rows.append({"image": f"{target}-{i}", "species": target, "contrast_species": contrast,
                             "method": method, "rd@5": rd, "rd@10": rd, "mass_iou": 0.5, "fold": i % 2})
    per_image = pd.DataFrame(rows)
    paired = pooled_comparison(per_image, "finer-refine-layercam")
    rd5 = paired[paired["metric"] == "rd@5"].set_index("direction")
    assert rd5.loc["Vanessa atalanta vs Vanessa cardui", "n"] == 12 and rd5.loc["all directions", "n"] == 48
    assert rd5.loc["Vanessa atalanta vs Vanessa cardui", "diff"] == pytest.approx(0.3, abs=0.01)
    assert rd5.loc["Vanessa cardui vs Vanessa atalanta", "lo"] < 0 < rd5.loc["Vanessa cardui vs Vanessa atalanta", "hi"]
    table = render(paired, {0: {"accuracy": 0.99, "n_test": 10}}, k=3, seed=0)
    lines = {line.split(" | ")[0]: line for line in table.splitlines() if line.startswith("| ")}
    assert lines["| V. atalanta vs V. cardui"].endswith("| yes |")
    assert lines["| V. cardui vs V. atalanta"].endswith("| **no** |")
    assert lines["| all directions"].startswith("| all directions | 48 |")
    # Per fold: V. cardui's alternating +-0.05 noise splits into one fold at +0.05 and one at -0.05.
    by_fold = fold_differences(per_image, "finer-refine-layercam")
    assert list(by_fold.columns) == [0, 1] and by_fold.index[0] == "Vanessa atalanta vs Vanessa cardui"
    assert by_fold.loc["Vanessa cardui vs Vanessa atalanta"].tolist() == pytest.approx([-0.05, 0.05])


def test_cli_reports_a_bad_fold_count_without_a_traceback(photo_dir, tmp_path, capsys):
    from evaluation.benchmarks.cam_crossfit import main

    with pytest.raises(SystemExit) as exc:
        main(["--leeds", str(photo_dir), "--out", str(tmp_path / "out"), "--folds", "9", "--threads", "1"])
    assert exc.value.code == 2
    assert "number of folds" in capsys.readouterr().err and not (tmp_path / "out" / "folds").exists()
