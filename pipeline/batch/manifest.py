"""Reading a batch's inputs: the manifest (CSV or Parquet, streamed in batches of rows), the pairs file and the
classifier's fingerprint.

A manifest is never held whole: CSV rows come from the csv module's reader and Parquet rows from record batches
(pyarrow locally, Ray Data with the Ray engine), so a million-row manifest costs one batch of rows at a time.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipeline.models.io import HEAD, read_card
from pipeline.species import SpeciesIndex
from traits.errors import DatasetError, MissingDependencyError, UnknownSpeciesError

IMAGE_COLUMNS = ("image", "path", "file")
SPECIES_COLUMNS = ("species", "scientific_name")
LICENCE_COLUMNS = ("licence", "license")
PARQUET_SUFFIXES = (".parquet", ".pq")
BATCH_ROWS = 10_000  # rows per streamed batch: large enough to be quick, small enough to never matter in memory

# A source of manifest record batches (pyarrow tables or record batches) for a Parquet manifest, in file order.
TableSource = Callable[[Path], Iterable[Any]]


@dataclass
class ManifestRow:
    """One data row of a manifest: its line number, the image as written and resolved, and the species."""

    line: int
    image: str
    path: Path
    species: str
    licence: str | None = None
    metadata: dict = field(default_factory=dict)


def item_key(image: str, species: str) -> str:
    """Key of a manifest item in the error table."""
    return f"{image}|{species}"


def is_parquet(path: str | Path) -> bool:
    """True for a Parquet manifest (a .parquet / .pq file or a folder of them)."""
    path = Path(path)
    return path.suffix.lower() in PARQUET_SUFFIXES or (path.is_dir() and any(path.glob("*.parquet")))


def _read_csv(path: Path, what: str) -> tuple[list[str], list[tuple[int, dict]]]:
    header, rows = _stream_csv(path, what)
    return header, list(rows)


def _stream_csv(path: Path, what: str) -> tuple[list[str], Iterator[tuple[int, dict]]]:
    """The header and a lazy iterator of (line number, row) of a UTF-8 CSV file."""
    if not path.is_file():
        raise DatasetError(f"The {what} {path} does not exist.", "Check the path.")
    fh = open(path, newline="", encoding="utf-8-sig")
    try:
        reader = csv.DictReader(fh)
        header = [h.strip() for h in (reader.fieldnames or [])]
        reader.fieldnames = header
    except (UnicodeDecodeError, csv.Error) as exc:
        fh.close()
        raise _unreadable(path, what, exc) from exc

    def rows() -> Iterator[tuple[int, dict]]:
        with fh:
            try:
                for row in reader:
                    yield reader.line_num, {k: (v or "").strip() for k, v in row.items() if k is not None}
            except (UnicodeDecodeError, csv.Error) as exc:
                raise _unreadable(path, what, exc) from exc

    return header, rows()


def _unreadable(path: Path, what: str, exc: BaseException) -> DatasetError:
    return DatasetError(f"The {what} {path} is not a readable UTF-8 CSV file ({exc}).",
                        "Save it as CSV (comma-separated, UTF-8) with a header row.")


def _pick(header: Sequence[str], names: Sequence[str]) -> str | None:
    lower = {h.lower(): h for h in header}
    return next((lower[n] for n in names if n in lower), None)


def _columns(path: Path, header: Sequence[str]) -> tuple[str, str, str | None]:
    img_col, sp_col = _pick(header, IMAGE_COLUMNS), _pick(header, SPECIES_COLUMNS)
    if img_col is None or sp_col is None:
        raise DatasetError(f"The manifest {path} needs an 'image' column and a 'species' (or 'scientific_name') "
                           f"column; it has {', '.join(header) or 'no header'}.",
                           "Add a header row such as `image,species` (image paths relative to the manifest).")
    return img_col, sp_col, _pick(header, LICENCE_COLUMNS)


class _Resolver:
    """Image paths resolved against the manifest's folder as Path.resolve() does, each folder resolved once: on a
    million rows, resolving every component of every path again is most of the reading time."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.folders: dict[str, str] = {}

    def __call__(self, image: str) -> Path:
        head, tail = os.path.split(image)
        folder = self.folders.get(head)
        if folder is None:
            if len(self.folders) > 100_000:  # a manifest with a folder per photo: stay bounded
                self.folders.clear()
            folder = self.folders[head] = str((self.base / head).resolve())
        joined = os.path.join(folder, tail)
        if tail in ("", ".", "..") or os.path.islink(joined):  # the rare cases resolve() treats specially
            return (self.base / image).resolve()
        return Path(joined)


def _row(path: Path, line: int, row: dict, cols: tuple[str, str, str | None],
         resolve: Callable[[str], Path] | None = None) -> ManifestRow | None:
    """One manifest row, None for a blank one; a row with only an image or only a species is refused."""
    img_col, sp_col, lic_col = cols
    image, species = row.get(img_col, ""), row.get(sp_col, "")
    if not image and not species:
        return None
    if not image or not species:
        raise DatasetError(f"Manifest {path}, line {line}: the {'image' if not image else 'species'} is empty.",
                           "Fill it in or delete the row.")
    extra = {k: v for k, v in row.items() if k not in (img_col, sp_col, lic_col) and v != ""}
    return ManifestRow(line, image, resolve(image) if resolve else (path.parent / image).resolve(), species,
                       row.get(lic_col) or None if lic_col else None, extra)


def local_parquet_tables(path: Path) -> Iterator[Any]:
    """Record batches of a Parquet manifest read with pyarrow.dataset, in file order."""
    try:
        import pyarrow.dataset as pads
    except ImportError as exc:
        raise MissingDependencyError("Parquet manifests need pyarrow.", "pip install 'finer-traits[parquet]'") from exc
    yield from pads.dataset(str(path), format="parquet").to_batches(batch_size=BATCH_ROWS)


def iter_manifest(path: str | Path, tables: TableSource | None = None) -> Iterator[list[ManifestRow]]:
    """The rows of a manifest in batches: 'image' (relative to the manifest's folder) and 'species' or
    'scientific_name'. CSV rows carry their line number; Parquet rows their row number (1 = first)."""
    path = Path(path)
    if is_parquet(path):
        if not path.exists():
            raise DatasetError(f"The manifest {path} does not exist.", "Check the path.")
        yield from _parquet_rows(path, (tables or local_parquet_tables)(path))
        return
    header, rows = _stream_csv(path, "manifest")
    cols = _columns(path, header)
    resolve = _Resolver(path.parent)
    batch: list[ManifestRow] = []
    for line, raw in rows:
        if (row := _row(path, line, raw, cols, resolve)) is not None:
            batch.append(row)
            if len(batch) >= BATCH_ROWS:
                yield batch
                batch = []
    if batch:
        yield batch


def _parquet_rows(path: Path, tables: Iterable[Any]) -> Iterator[list[ManifestRow]]:
    cols = None
    line = 0
    resolve = _Resolver(path.parent)
    for table in tables:
        if cols is None:
            cols = _columns(path, [str(n).strip() for n in table.schema.names])
        names = list(table.schema.names)
        batch = []
        for values in zip(*(table.column(i).to_pylist() for i in range(len(names))), strict=True):
            line += 1
            raw = {str(n).strip(): "" if v is None else str(v).strip() for n, v in zip(names, values, strict=True)}
            if (row := _row(path, line, raw, cols, resolve)) is not None:
                batch.append(row)
        if batch:
            yield batch


def read_manifest(path: str | Path) -> list[ManifestRow]:
    """Rows of a manifest (CSV or Parquet): 'image' (relative to its folder) and 'species' or 'scientific_name'."""
    out = [row for batch in iter_manifest(path) for row in batch]
    if not out:
        raise no_rows(Path(path))
    return out


def no_rows(path: Path) -> DatasetError:
    """The error of a manifest without data rows."""
    return DatasetError(f"The manifest {path} has no rows.", "Add one row per photo: image,species.")


def read_pairs(path: str | Path, species: SpeciesIndex) -> dict[str, list[str]]:
    """Contrast species per species from a pairs CSV (species_a, species_b; each pair works both ways)."""
    path = Path(path)
    header, rows = _read_csv(path, "pairs file")
    a_col, b_col = _pick(header, ("species_a", "a")), _pick(header, ("species_b", "b"))
    if a_col is None or b_col is None:
        raise DatasetError(f"The pairs file {path} needs columns species_a and species_b; it has "
                           f"{', '.join(header) or 'no header'}.", "Add a header row `species_a,species_b`.")
    contrasts: dict[str, list[str]] = {}
    for line, row in rows:
        names = []
        for col in (a_col, b_col):
            try:
                names.append(species.class_names[species.index(row.get(col, ""))])
            except UnknownSpeciesError as exc:
                raise DatasetError(f"Pairs file {path}, line {line}: {exc.problem}",
                                   exc.fix or "Use the model's species names.") from exc
        a, b = names
        if a == b:
            raise DatasetError(f"Pairs file {path}, line {line} pairs {a} with itself.", "Pair two different species.")
        for x, y in ((a, b), (b, a)):
            if y not in contrasts.setdefault(x, []):
                contrasts[x].append(y)
    return contrasts


def classifier_fingerprint(model_dir: str | Path) -> tuple[dict, str]:
    """The model card and a hash of the weights plus the card fields that change predictions."""
    card = read_card(model_dir)
    h = hashlib.sha256()
    with open(Path(model_dir) / HEAD, "rb") as fh:
        while block := fh.read(1 << 20):
            h.update(block)
    stable = {k: card.get(k) for k in ("kind", "class_names", "common_names", "preprocess", "backbone", "model_id")}
    h.update(json.dumps(stable, sort_keys=True, default=str).encode())
    return card, h.hexdigest()
