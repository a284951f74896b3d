"""Run the workshop notebook top to bottom without Jupyter (what `make tutorial` and tests/test_tutorial.py do).

    python tutorials/run_notebook.py [--out tutorials/build] [--figures DIR] [--timeout 900]
    python tutorials/run_notebook.py --strip      # clear the committed notebook's outputs before a commit

Writes OUT/finer-cam-workshop.ipynb (executed, with outputs) and OUT/finer-cam-workshop.html (for reading without
Jupyter); the committed notebook is never changed except by --strip. The kernel is the running interpreter's own
ipykernel ("python3" resolves to sys.executable), started in tutorials/ with this checkout first on PYTHONPATH.
Exit status: 0 done, 1 a cell failed (its error is printed), 2 the workshop data is missing.
"""

from __future__ import annotations

import argparse
import base64
import os
import sys
import time
from pathlib import Path

import nbformat

HERE = Path(__file__).resolve().parent
NOTEBOOK = HERE / "finer-cam-workshop.ipynb"
BATCH_ENV = "FINER_TRAITS_TUTORIAL_BATCH"  # tells the notebook there is no widget frontend (workshop.BATCH_ENV)


def kernel_command() -> list[str]:
    """The command nbclient will start the "python3" kernel with (its first item must be this interpreter)."""
    from jupyter_client.manager import KernelManager

    km = KernelManager(kernel_name="python3")
    return km.format_kernel_cmd()


def strip_outputs(path: Path = NOTEBOOK) -> bool:
    """Clear outputs and execution counts of the notebook in place; True when something was cleared."""
    nb = nbformat.read(path, as_version=4)
    changed = False
    for cell in nb.cells:
        if cell.cell_type == "code" and (cell.outputs or cell.execution_count is not None):
            cell.outputs, cell.execution_count, changed = [], None, True
        if cell.metadata.pop("execution", None) is not None:
            changed = True
    if changed:
        nbformat.write(nb, path)
    return changed


def execute(out: Path, timeout: int = 900) -> nbformat.NotebookNode:
    """Execute the notebook with the running interpreter's kernel; write the executed copy and its HTML to out."""
    from nbclient import NotebookClient

    nb = nbformat.read(NOTEBOOK, as_version=4)
    repo = str(HERE.parent)
    os.environ["PYTHONPATH"] = os.pathsep.join([repo, *filter(None, [os.environ.get("PYTHONPATH")])])
    os.environ[BATCH_ENV] = "1"
    os.environ["TQDM_DISABLE"] = "1"  # progress bars would be frozen at 0 % in the written copy
    client = NotebookClient(nb, timeout=timeout, kernel_name="python3", resources={"metadata": {"path": str(HERE)}})
    out.mkdir(parents=True, exist_ok=True)
    try:
        client.execute()
    finally:  # a failed run is written too: its last output shows the error
        nbformat.write(nb, out / NOTEBOOK.name)
        write_html(nb, out / NOTEBOOK.with_suffix(".html").name)
    return nb


def write_html(nb: nbformat.NotebookNode, path: Path) -> Path:
    """The executed notebook as one HTML file (figures embedded)."""
    from nbconvert import HTMLExporter

    body, _ = HTMLExporter().from_notebook_node(nb)
    path.write_text(body, encoding="utf-8")
    return path


def export_figures(nb: nbformat.NotebookNode, folder: Path) -> list[Path]:
    """Every figure of the executed notebook as PNG files (cell-NN-K.png), for checking them by eye."""
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for i, cell in enumerate(nb.cells):
        pngs = [o["data"]["image/png"] for o in cell.get("outputs", []) if "image/png" in o.get("data", {})]
        for k, data in enumerate(pngs):
            path = folder / f"cell-{i:02d}-{k}.png"
            path.write_bytes(base64.b64decode(data))
            written.append(path)
    return written


def main(argv: list[str] | None = None) -> int:
    """Command line: execute (default) or --strip."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, default=HERE / "build", help="folder for the executed notebook and HTML")
    ap.add_argument("--figures", type=Path, help="also write every figure as a PNG into this folder")
    ap.add_argument("--timeout", type=int, default=900, help="seconds one cell may run (default 900)")
    ap.add_argument("--strip", action="store_true", help="clear the committed notebook's outputs and exit")
    args = ap.parse_args(argv)
    if args.strip:
        print("outputs cleared" if strip_outputs() else "no outputs to clear")
        return 0
    sys.path.insert(0, str(HERE.parent))
    from pipeline.paths import cub_root, leeds_root

    if leeds_root() is None or cub_root() is None:
        print("The workshop data was not found: set FINER_TRAITS_DATA to the folder holding leeds-butterflies/, "
              "cub-photos/ and cub-attributes/ (default ../shared/data beside the repository).", file=sys.stderr)
        return 2
    from nbclient.exceptions import CellExecutionError

    start = time.perf_counter()
    try:
        nb = execute(args.out, args.timeout)
    except CellExecutionError as exc:
        print(f"A cell failed; the executed copy is in {args.out}.\n{exc}", file=sys.stderr)
        return 1
    if args.figures:
        print(f"{len(export_figures(nb, args.figures))} figures written to {args.figures}")
    print(f"Notebook executed in {time.perf_counter() - start:.0f} s: {args.out / NOTEBOOK.name} and "
          f"{args.out / NOTEBOOK.with_suffix('.html').name}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
