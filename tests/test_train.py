"""Training on small generated photo folders, and every kind of bad training input."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from pipeline import train as train_mod
from pipeline.cli import main
from pipeline.datasets import read_dataset
from pipeline.errors import DatasetError
from pipeline.models import load_classifier
from pipeline.paths import leeds_root
from pipeline.train import train_classifier

COLOURS = {"Rubra_alpha": (200, 40, 30), "Viridis beta": (40, 170, 60), "Caerulea_gamma": (40, 60, 200)}
FAST = {"image_size": 64, "epochs": 60, "device": "cpu"}


def _photo(rng, colour, size=48) -> Image.Image:
    arr = rng.normal(0, 25, (size, size, 3)) + np.array(colour)
    arr[size // 4: 3 * size // 4, size // 4: 3 * size // 4] = colour  # a clean 'organism' in the middle
    return Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))


def make_folder(root, n=8, species=COLOURS, seed=0):
    rng = np.random.default_rng(seed)
    for name, colour in species.items():
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            _photo(rng, colour).save(root / name / f"{i:03d}.png")
    return root


def test_trains_and_round_trips(tmp_path):
    data = make_folder(tmp_path / "data")
    report = train_classifier(data, tmp_path / "model", **FAST)
    assert report.species == ["Caerulea gamma", "Rubra alpha", "Viridis beta"]
    assert report.n_train + report.n_test == 24 and report.n_test >= 6
    assert report.accuracy == 1.0
    clf = load_classifier(tmp_path / "model", device="cpu")
    probs, pred = clf.predict([data / "Rubra_alpha" / "000.png", data / "Viridis beta" / "001.png"])
    assert [clf.class_names[i] for i in pred] == ["Rubra alpha", "Viridis beta"]
    refs = pd.read_csv(tmp_path / "model" / "references.csv")
    assert set(refs.columns) == {"image", "species", "split"} and len(refs) == 24
    assert clf.card["training"]["n_train"] == report.n_train
    per = pd.read_csv(tmp_path / "model" / "per_species.csv")
    assert per["accuracy"].tolist() == [1.0, 1.0, 1.0]


def test_folded_head_equals_standardised_training(tmp_path):
    torch.manual_seed(0)
    feats = torch.randn(30, 5) * torch.tensor([1.0, 10, 0.1, 3, 1]) + 4
    labels = torch.arange(30) % 3
    head = train_mod.fit_linear_head(feats, labels, 3, epochs=200)
    acc = float((head(feats).argmax(-1) == labels).float().mean())
    assert acc > 0.5  # random features, but the head must fit them better than chance (1/3)


def test_feature_cache_resumes_without_recomputing(tmp_path, monkeypatch):
    data = make_folder(tmp_path / "data", n=4)
    train_classifier(data, tmp_path / "model", **FAST)
    calls = []
    real = train_mod.extract_features

    def counting(backbone, paths, device, cache=None, *a, **k):
        todo = [p for p in paths if train_mod._image_key(p) not in cache.features]
        calls.append(len(todo))
        return real(backbone, paths, device, cache, *a, **k)

    monkeypatch.setattr(train_mod, "extract_features", counting)
    train_classifier(data, tmp_path / "model", **FAST)
    assert calls == [0]
    _photo(np.random.default_rng(5), (200, 40, 30)).save(data / "Rubra_alpha" / "new.png")
    train_classifier(data, tmp_path / "model", **FAST)
    assert calls == [0, 1]


def test_bad_files_are_skipped_and_counted(tmp_path):
    data = make_folder(tmp_path / "data", n=6)
    folder = data / "Rubra_alpha"
    good = (folder / "000.png").read_bytes()
    (folder / "cut.png").write_bytes(good[: len(good) // 3])
    (folder / "readme.txt").write_text("field notes")
    Image.new("L", (40, 40), 90).save(folder / "gray.png")
    Image.new("RGBA", (40, 40), (200, 40, 30, 255)).save(folder / "rgba.png")
    Image.fromarray(np.full((40, 40), 30000, np.uint16)).save(folder / "deep.png")
    report = train_classifier(data, tmp_path / "model", **FAST)
    reasons = dict(report.skipped)
    assert report.n_skipped == 2
    assert reasons[str(folder / "readme.txt")] == "not an image file"
    assert reasons[str((folder / "cut.png").resolve())].startswith("unreadable image")
    assert report.n_train + report.n_test == 18 + 3  # grayscale, RGBA and 16-bit photos are used
    skipped = pd.read_csv(tmp_path / "model" / "skipped.csv")
    assert len(skipped) == 2


def test_empty_and_single_species_data_are_refused(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match="No species folders with images"):
        train_classifier(tmp_path / "empty", tmp_path / "m")
    single = make_folder(tmp_path / "one", species={"Solus unicus": (10, 10, 10)})
    with pytest.raises(DatasetError, match="Only one species"):
        train_classifier(single, tmp_path / "m")
    with pytest.raises(DatasetError, match="does not exist"):
        read_dataset(tmp_path / "nowhere")
    assert not (tmp_path / "m").exists()  # nothing half-written


def test_manifest_split_columns_and_errors(tmp_path):
    make_folder(tmp_path / "data", n=4)
    rows = [{"image": f"data/{sp}/{i:03d}.png", "scientific_name": sp.replace("_", " "), "common_name": f"{sp} common",
             "split": "test" if i == 0 else "train"} for sp in COLOURS for i in range(4)]
    rows.append({"image": "data/missing.png", "scientific_name": "Rubra alpha", "split": "train"})
    rows.append(dict(rows[0]))  # duplicate row
    pd.DataFrame(rows).to_csv(tmp_path / "manifest.csv", index=False)
    ds = read_dataset(tmp_path, tmp_path / "manifest.csv")
    assert len(ds.frame) == 12 and (ds.frame["split"] == "test").sum() == 3
    assert sorted(r for _, r in ds.skipped) == ["duplicate row", "file not found"]
    assert ds.common_names()[1] == "Rubra_alpha common"
    pd.DataFrame({"file": ["a.png"], "label": ["x"]}).to_csv(tmp_path / "bad.csv", index=False)
    with pytest.raises(DatasetError, match="needs 'image' and 'species'"):
        read_dataset(tmp_path, tmp_path / "bad.csv")
    pd.DataFrame(rows[:12]).assign(split="holdout").to_csv(tmp_path / "split.csv", index=False)
    with pytest.raises(DatasetError, match="Unknown split values"):
        read_dataset(tmp_path, tmp_path / "split.csv")


def test_cli_train_and_clear_errors(tmp_path, capsys):
    data = make_folder(tmp_path / "data", n=4)
    with pytest.raises(SystemExit) as done:
        main(["train", str(data), "--out", str(tmp_path / "m"), "--image-size", "64", "--epochs", "30",
              "--device", "cpu"])
    assert done.value.code in (0, None)
    out = capsys.readouterr().out
    assert "Test accuracy" in out and "Model saved to" in out
    (tmp_path / "empty").mkdir()
    with pytest.raises(SystemExit) as failed:
        main(["train", str(tmp_path / "empty"), "--out", str(tmp_path / "m2")])
    assert failed.value.code == 2
    err = capsys.readouterr().err
    assert "No species folders with images" in err and "How to fix" in err and "Traceback" not in err


def test_reads_the_leeds_manifest():
    root = leeds_root()
    if root is None:
        pytest.skip("Leeds butterflies not found: set FINER_TRAITS_DATA to the shared data folder")
    ds = read_dataset(root, root / "manifest.csv")
    assert len(ds.frame) == 832 and len(ds.species) == 10
    assert (ds.frame["split"] == "test").sum() == 250
    assert "Red Admiral" in ds.common_names()
