"""The workshop notebook (tutorials/): committed without outputs, run by the venv's own kernel, and executed top
to bottom on the real data (marked `tutorial` and `slow`: `pytest -m "not tutorial"` skips it)."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from pipeline.paths import cub_root, data_root, leeds_root

TUTORIALS = Path(__file__).resolve().parent.parent / "tutorials"
NOTEBOOK = TUTORIALS / "finer-cam-workshop.ipynb"


def _load(name: str):
    """Import a module from tutorials/ (not a package: it sits beside the notebook that imports it)."""
    spec = importlib.util.spec_from_file_location(f"tutorial_{name}", TUTORIALS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_committed_notebook_has_no_outputs():
    nb = nbformat.read(NOTEBOOK, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code, "the notebook has no code cells"
    assert [i for i, c in enumerate(code) if c.outputs or c.execution_count is not None] == [], \
        "outputs are committed: run `python tutorials/run_notebook.py --strip` before committing"
    assert nb.metadata["kernelspec"]["name"] == "python3"


def test_strip_clears_outputs_and_counts(tmp_path):
    runner = _load("run_notebook")
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("1 + 1")])
    nb.cells[0].outputs = [nbformat.v4.new_output("execute_result", {"text/plain": "2"}, execution_count=1)]
    nb.cells[0].execution_count = 1
    path = tmp_path / "nb.ipynb"
    nbformat.write(nb, path)
    assert runner.strip_outputs(path) is True
    cell = nbformat.read(path, as_version=4).cells[0]
    assert cell.outputs == [] and cell.execution_count is None
    assert runner.strip_outputs(path) is False  # nothing left to clear


def test_kernel_is_the_running_interpreter():
    # "python3" must start this venv's python (ipykernel's spec says "python", which jupyter_client replaces).
    cmd = _load("run_notebook").kernel_command()
    assert os.path.realpath(cmd[0]) == os.path.realpath(sys.executable)
    assert cmd[1:3] == ["-m", "ipykernel_launcher"]


def test_widgets_only_with_a_live_kernel(monkeypatch):
    workshop = _load("workshop")
    monkeypatch.delenv(workshop.BATCH_ENV, raising=False)
    assert workshop.live_kernel() is False  # plain pytest: no IPython kernel at all
    monkeypatch.setenv(workshop.BATCH_ENV, "1")
    assert workshop.live_kernel() is False


def test_missing_data_says_what_to_set(monkeypatch, tmp_path):
    from traits.errors import DatasetError

    monkeypatch.setenv("FINER_TRAITS_DATA", str(tmp_path / "nowhere"))
    with pytest.raises(DatasetError, match="FINER_TRAITS_DATA"):
        _load("workshop").find_data()


def test_sentences_keep_measurements():
    text = '3-3 3/8" (76-78 mm). Wings long and narrow. Jet-black above, banded with lemon-yellow.'
    assert _load("workshop").sentences(text) == ['3-3 3/8" (76-78 mm)', "Wings long and narrow",
                                                  "Jet-black above, banded with lemon-yellow."]


@pytest.mark.tutorial
@pytest.mark.slow
@pytest.mark.data
def test_notebook_runs_top_to_bottom(tmp_path):
    root = data_root()
    if leeds_root() is None or cub_root() is None or root is None or not (root / "cub-photos").is_dir():
        pytest.skip("the workshop data is absent: set FINER_TRAITS_DATA to the folder holding leeds-butterflies/, "
                    "cub-photos/ and cub-attributes/")
    out = tmp_path / "build"
    run = subprocess.run([sys.executable, str(TUTORIALS / "run_notebook.py"), "--out", str(out)],
                         capture_output=True, text=True, timeout=1800)
    assert run.returncode == 0, run.stderr[-4000:]
    nb = json.loads((out / NOTEBOOK.name).read_text())
    outputs = [o for c in nb["cells"] if c["cell_type"] == "code" for o in c["outputs"]]
    assert not [o for o in outputs if o["output_type"] == "error"]
    figures = [o for o in outputs if "image/png" in o.get("data", {})]
    assert len(figures) >= 8, f"only {len(figures)} figures were drawn"
    text = "".join("".join(o.get("text", "")) for o in outputs)
    assert "Notebook finished" in text and "Test accuracy" in text
    assert "No live kernel with a widget frontend" in text  # the batch run fell back to plain figures
    html = (out / NOTEBOOK.with_suffix(".html").name).read_text()
    assert html.count("data:image/png;base64") >= len(figures)


def test_cam_explorer_offers_gamma_and_contrast(describe_model_dir, synthetic_species_dir, one_torch_thread):
    # The batch run never shows the widgets, so build them here: a gamma slider and a contrast menu that redraw.
    import matplotlib

    matplotlib.use("Agg")
    import ipywidgets
    import pandas as pd

    from pipeline.models import load_classifier

    clf = load_classifier(describe_model_dir, device="cpu")
    test = pd.read_csv(synthetic_species_dir / "manifest.csv").query("split == 'test'").iloc[0]
    target, contrasts = test["species"], [s for s in clf.class_names if s != test["species"]][:2]
    shown = _load("workshop").cam_explorer(clf, synthetic_species_dir / test["image"], target, contrasts, gamma=0.3)
    controls = {type(w).__name__: w for w in shown.widget.children}
    assert controls["FloatSlider"].value == pytest.approx(0.3)
    assert list(controls["Dropdown"].options) == contrasts
    assert isinstance(controls["Output"], ipywidgets.Output)
