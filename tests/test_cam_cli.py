"""`finer-traits cam` writes a readable three-tile panel; the Leeds check runs when the data and model exist."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from cam_helpers import tiny_cnn
from PIL import Image

from pipeline.cli import main
from pipeline.models import save_classifier


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("model")
    clf = tiny_cnn()
    save_classifier(clf, out, card={"backbone": {"name": "resnet10t", "weights": "random"}})
    return out


def _cli(args: list[str]) -> int:
    try:
        main(args)
    except SystemExit as exc:
        return int(exc.code or 0)
    return 0


def _photo(tmp_path: Path) -> Path:
    rng = np.random.default_rng(1)
    path = tmp_path / "photo.jpg"
    Image.fromarray(rng.integers(0, 255, (90, 120, 3), dtype=np.uint8)).save(path)
    return path


def test_cam_command_writes_panel(model_dir, tmp_path, capsys):
    import torch

    torch.manual_seed(0)  # resnet10t 'random' weights are re-drawn on load; the panel only needs to be valid
    out = tmp_path / "panel.png"
    code = _cli(["cam", str(_photo(tmp_path)), "--model", str(model_dir), "--target", "Red Admiral",
                 "--contrast", "Vanessa cardui", "--gamma", "0.8", "--device", "cpu", "--out", str(out)])
    assert code == 0
    img = Image.open(out)
    assert img.width > 3 * 200 and img.height > 200  # three tiles side by side
    assert "gamma 0.8" in capsys.readouterr().out
    assert not [p for p in os.listdir(tmp_path) if p.startswith(".panel")]  # no temp files left


def test_cam_command_bad_species_is_a_clean_error(model_dir, tmp_path, capsys):
    code = _cli(["cam", str(_photo(tmp_path)), "--model", str(model_dir), "--contrast", "Vanessa cardi",
                 "--out", str(tmp_path / "x.png")])
    assert code == 2
    err = capsys.readouterr().err
    assert "Vanessa cardui" in err and "Traceback" not in err
    assert not (tmp_path / "x.png").exists()
