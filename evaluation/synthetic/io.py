"""Writing a synthetic dataset folder: atomic creation, PNG and CSV writers, the stratified split, reuse checks."""

from __future__ import annotations

import csv
import json
import os
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm.auto import tqdm

from traits.errors import BadValueError, DatasetError
from traits.io import make_folder

MANIFEST = "manifest.csv"
DATASET_JSON = "dataset.json"


def folder_name(species: str) -> str:
    """ImageFolder folder name of a species: spaces become underscores (readers turn them back)."""
    return species.replace(" ", "_")


def save_png(path: Path, array: np.ndarray) -> None:
    """Write an RGB or single-channel uint8 array as a PNG (PIL's PNG output is deterministic)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.ascontiguousarray(array, dtype=np.uint8)).save(path, format="PNG", optimize=False)


def write_csv(path: Path, columns: Sequence[str], rows: Sequence[dict]) -> None:
    """Write rows (dicts) with a fixed column order and '\\n' line ends, so files are byte-identical across runs."""
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(columns), lineterminator="\n", extrasaction="raise")
        writer.writeheader()
        for row in rows:
            writer.writerow(row)


def write_json(path: Path, data: dict) -> None:
    """Write JSON with sorted keys and a trailing newline."""
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def check_dataset_args(count_name: str, count: int, image_size: int, test_fraction: float, size_hint: str) -> None:
    """Refuse (BadValueError) a per-class count below 1, an image size outside 32-2048 px or a test fraction
    outside [0, 1); size_hint says which sizes suit the dataset."""
    if count < 1:
        raise BadValueError(f"{count_name} must be at least 1 (got {count}).", "Pass a positive number.")
    if not 32 <= image_size <= 2048:
        raise BadValueError(f"image_size must be between 32 and 2048 pixels (got {image_size}).", size_hint)
    if not 0.0 <= test_fraction < 1.0:
        raise BadValueError(f"test_fraction must be in [0, 1) (got {test_fraction}).", "Use e.g. 0.25.")


def stratified_split(n: int, test_fraction: float, rng: np.random.Generator) -> list[str]:
    """'train'/'test' labels for n images of one class: round(n * test_fraction) test images, at least one each when n >= 2."""
    n_test = int(round(n * test_fraction))
    if n >= 2:
        n_test = min(max(n_test, 1), n - 1)
    else:
        n_test = 0
    labels = np.array(["train"] * n, dtype=object)
    labels[rng.permutation(n)[:n_test]] = "test"
    return list(labels)


def dataset_images(names: Sequence[str], n_per_class: int, seed: int, test_fraction: float, desc: str,
                   progress: bool = False) -> Iterator[tuple[int, str, str, np.random.Generator]]:
    """(class index, image stem 'Folder_name/00000.png', split, the image's generator) for every image, class by
    class, with a progress bar. One generator per image: an image depends only on (seed, class, index)."""
    with tqdm(total=len(names) * n_per_class, desc=desc, unit="img", disable=not progress) as bar:
        for k, name in enumerate(names):
            splits = stratified_split(n_per_class, test_fraction, np.random.default_rng([seed, 1, k]))
            for i in range(n_per_class):
                yield k, f"{folder_name(name)}/{i:05d}.png", splits[i], np.random.default_rng([seed, 0, k, i])
                bar.update()


def split_counts(rows: Sequence[dict]) -> dict[str, int]:
    """How many manifest rows fall in each split (dataset.json)."""
    return {s: sum(r["split"] == s for r in rows) for s in ("train", "test")}


def _existing_matches(out: Path, config: dict, marker: str) -> bool:
    try:
        found = json.loads((out / marker).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return found.get("config") == config


@contextmanager
def atomic_dataset_dir(out_dir: str | Path, config: dict, overwrite: bool = False,
                       marker: str = DATASET_JSON) -> Iterator[Path | None]:
    """Yield a temporary folder to fill; on success it replaces out_dir in one rename, on error it is deleted.

    Yields None when out_dir already holds a complete folder made with the same config (the "config" entry of the
    JSON file `marker`, written last): callers then skip
    generation (this makes repeated calls, e.g. from test fixtures, cheap). An existing non-empty folder with
    other content is only replaced when overwrite is true.
    """
    out = Path(out_dir).expanduser()
    if out.exists():
        if not out.is_dir():
            raise DatasetError(f"{out} exists and is a file, not a dataset folder.", "Choose another output path.")
        if not overwrite and _existing_matches(out, config, marker):
            yield None
            return
        if not overwrite and any(out.iterdir()):
            raise DatasetError(f"{out} already exists and was not made by this generator with these settings.",
                               "Choose an empty or new folder, or pass overwrite=True (CLI: --overwrite).")
    make_folder(out.parent)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    umask = os.umask(0)
    os.umask(umask)
    tmp.chmod(0o777 & ~umask)  # mkdtemp makes it private; the final folder should have normal permissions
    try:
        yield tmp
        if out.exists():
            # Move the old folder aside first so that out_dir is never a mix of old and new files.
            trash = Path(tempfile.mkdtemp(prefix=f".{out.name}.old-", dir=out.parent))
            os.replace(out, trash / "old")
            os.replace(tmp, out)
            shutil.rmtree(trash, ignore_errors=True)
        else:
            os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
