"""Planning a batch: manifest rows -> photos to describe, with bad rows turned into recorded errors.

The manifest is streamed twice (three times when an image is listed with two species): the first pass checks
the columns and finds images listed with different species, the second turns rows into items as they come.
What a pass keeps is one small entry per distinct image (its first line) and per distinct photo hash, never
the rows themselves, so memory grows with the number of photos, not with the manifest's text.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipeline.batch.manifest import ManifestRow, TableSource, item_key, iter_manifest, no_rows
from pipeline.images import upright_size
from pipeline.species import SpeciesIndex
from traits.db import TraitDB, file_sha256
from traits.errors import BadImageError, DatasetError, FinerTraitsError, UnknownSpeciesError


@dataclass
class BatchItem:
    """One photo to describe: its canonical species, contrast species (None: the classifier's nearest) and hash."""

    line: int
    image: str
    path: Path
    species: str
    contrasts: list[str] | None
    sha256: str
    licence: str | None = None
    metadata: dict = field(default_factory=dict)
    width: int | None = None
    height: int | None = None

    @property
    def key(self) -> str:
        """The error key of this item (stable across runs)."""
        return item_key(self.image, self.species)


@dataclass
class Task:
    """What an engine describes: a photo, its contrasts still missing (None: nearest), and whether it was relabelled."""

    item: BatchItem
    contrasts: list[str] | None
    relabel: bool = False


@dataclass
class Duplicate:
    """A row that repeats an earlier one (same file, or same photo content) with the same species: skipped."""

    note: str
    key: str


@dataclass
class RowError:
    """A manifest row that cannot be described, as recorded in the database."""

    line: int
    image: str
    species: str
    code: str
    message: str

    @classmethod
    def of(cls, row: ManifestRow, species: str, error: FinerTraitsError) -> RowError:
        """The row's error as recorded in the database: the error's code and its full message with the fix."""
        return cls(row.line, row.image, species, error.code, str(error))

    @property
    def key(self) -> str:
        """The error key of this row."""
        return item_key(self.image, self.species)


# (sha256, width, height) of a photo file; raises BadImageError when the file is missing or unreadable.
Inspector = Callable[[Path], tuple[str, "int | None", "int | None"]]


def inspect_file(path: Path) -> tuple[str, int | None, int | None]:
    """The photo's content hash and upright size; BadImageError when it is not a readable regular file."""
    if not _is_file(path):
        what = ("is not a regular file (a folder, named pipe or device)" if _exists(path)
                else "does not exist or cannot be named on this system")
        raise BadImageError(f"Image file {path} {what}.", "Check the path (paths are relative to the manifest's folder).")
    try:
        sha = file_sha256(path)
    except OSError as exc:
        raise BadImageError(f"Cannot read {path}: {exc}", "Check that the file is readable.") from exc
    return (sha, *_image_size(path))


def _is_file(path: Path) -> bool:
    try:  # a name the OS refuses (too long, ...) raises instead of answering False
        return path.is_file()
    except (OSError, ValueError):
        return False


def _exists(path: Path) -> bool:
    try:
        return path.exists()
    except (OSError, ValueError):
        return False


def _image_size(path: Path) -> tuple[int | None, int | None]:
    try:
        return upright_size(path)  # as displayed: the size describe() works on
    except Exception:  # unreadable photos are reported when described
        return None, None


def _path_key(path: Path) -> bytes:
    return hashlib.blake2b(str(path).encode(), digest_size=16).digest()


class Planner:
    """Streams a manifest into items, row errors and duplicate notes (see the module docstring)."""

    def __init__(self, manifest: str | Path, species: SpeciesIndex, pairs: dict[str, list[str]] | None,
                 tables: TableSource | None = None, inspect: Inspector = inspect_file) -> None:
        self.manifest = Path(manifest)
        self.species = species
        self.pairs = pairs
        self.tables = tables
        self.inspect = inspect
        self.rows = 0
        self._names: dict[str, str | UnknownSpeciesError] = {}
        # Keyed by a 16-byte digest of the resolved image path: a third of the memory of the path itself.
        self._first: dict[bytes, tuple[int, str]] = {}  # image -> (first line, species)
        self._groups: dict[bytes, list[tuple[int, str]]] = {}  # images listed with different species -> all rows

    def _rows(self) -> Iterator[ManifestRow]:
        for batch in iter_manifest(self.manifest, self.tables):
            yield from batch

    def _name(self, raw: str) -> str | UnknownSpeciesError:
        if raw not in self._names:
            try:
                self._names[raw] = self.species.class_names[self.species.index(raw)]
            except UnknownSpeciesError as exc:
                self._names[raw] = exc
        return self._names[raw]

    def scan(self) -> int:
        """First pass: check every row and find images listed with different species; returns the row count."""
        conflicts: set[bytes] = set()
        for row in self._rows():
            self.rows += 1
            name = self._name(row.species)
            if isinstance(name, UnknownSpeciesError):
                continue
            key = _path_key(row.path)
            first = self._first.setdefault(key, (row.line, name))
            if first[1] != name:
                conflicts.add(key)
        if not self.rows:
            raise no_rows(self.manifest)
        if conflicts:
            for row in self._rows():
                name = self._name(row.species)
                if not isinstance(name, UnknownSpeciesError) and _path_key(row.path) in conflicts:
                    self._groups.setdefault(_path_key(row.path), []).append((row.line, name))
        return self.rows

    def plan(self) -> Iterator[BatchItem | RowError | Duplicate]:
        """Second pass, in manifest order: items to describe, row errors, and notes on duplicate rows."""
        by_hash: dict[bytes, tuple[int, str, str]] = {}  # sha256 digest -> (line, image, species) of its first row
        for row in self._rows():
            name = self._name(row.species)
            if isinstance(name, UnknownSpeciesError):
                yield RowError.of(row, row.species, name)
                continue
            key = _path_key(row.path)
            if key in self._groups:
                listed = "; ".join(f"line {line}: {sp}" for line, sp in self._groups[key])
                yield RowError.of(row, name, DatasetError(
                    f"{row.image} is listed with different species ({listed}).",
                    "Keep the row with the right species and delete the others."))
                continue
            first_line = self._first[key][0]
            if row.line != first_line:
                yield Duplicate(f"line {row.line} repeats line {first_line} ({row.image})", item_key(row.image, name))
                continue
            yield from self._item(row, name, by_hash)

    def _item(self, row: ManifestRow, name: str, by_hash: dict[bytes, tuple[int, str, str]]
              ) -> Iterator[BatchItem | RowError | Duplicate]:
        contrasts = None
        if self.pairs is not None:
            contrasts = self.pairs.get(name)
            if not contrasts:
                yield RowError.of(row, name, DatasetError(
                    f"No contrast species for {name} in the pairs file.",
                    "Add a row with it to --pairs, or leave --pairs out to use the classifier's nearest species."))
                return
        try:
            sha, width, height = self.inspect(row.path)
        except BadImageError as exc:
            yield RowError.of(row, name, exc)
            return
        digest = bytes.fromhex(sha)
        if digest in by_hash:
            line, image, species = by_hash[digest]
            if species != name:
                yield RowError.of(row, name, DatasetError(
                    f"{row.image} is the same photo as {image} (line {line}) but labelled {name}, not {species}.",
                    "Correct the label."))
            else:
                yield Duplicate(f"line {row.line} is the same photo as line {line} ({row.image})",
                                item_key(row.image, name))
            return
        by_hash[digest] = (row.line, row.image, name)
        yield BatchItem(row.line, row.image, row.path, name, contrasts, sha, row.licence, row.metadata, width, height)


def schedule(planner: Planner, tdb: TraitDB, run_id: int, report: Any,
             on_skip: Callable[[], None] | None = None) -> Iterator[Task]:
    """The photos still to describe in this run, as the plan streams: row errors are recorded, rows that are fine
    now lose their old errors, and photos already stored are counted in report (already_done, duplicates,
    relabelled) and skipped. on_skip() is called for each row that yields no task (progress bars)."""
    old_errors = {e["item_key"] for e in tdb.errors(run_id)}
    fine_now: set[str] = set()  # old error keys of rows that are duplicates now (or fixed and done)
    keep: set[str] = set()  # old error keys of rows that still fail, or are items (cleared once written)
    done = tdb.completed(run_id)
    labelled = tdb.labelled(run_id)
    for entry in planner.plan():  # one entry per manifest row
        task = None
        if isinstance(entry, Duplicate):
            report.duplicates.append(entry.note)
            if entry.key in old_errors:
                fine_now.add(entry.key)
        elif isinstance(entry, RowError):
            if entry.key in old_errors:
                keep.add(entry.key)
            tdb.record_error(run_id, entry.key, entry.image, entry.message, species=entry.species,
                             manifest_row=entry.line, error_code=entry.code)
        else:
            if entry.key in old_errors:
                keep.add(entry.key)
            task = _task(tdb, run_id, entry, done, labelled, report)
        if task is not None:
            yield task
        elif on_skip is not None:
            on_skip()
    # Rows of this manifest that are fine now lose their old errors; errors of rows from other manifests of the
    # same run stay.
    tdb.clear_errors(run_id, fine_now - keep)


def _task(tdb: TraitDB, run_id: int, item: BatchItem, done: dict[str, set[str]], labelled: dict[str, dict[str, int]],
          report: Any) -> Task | None:
    """The task for item, or None when it is done already or must not be described again."""
    # A photo stored under another species in this run: the manifest's label was corrected (or is now wrong).
    # Its old traits describe the wrong species pair, so it is described again, never skipped.
    other = {sp: n for sp, n in labelled.get(item.sha256, {}).items() if sp != item.species}
    if other:
        if _refuse_curated_relabel(tdb, run_id, item, other):
            return None
        report.relabelled.append(f"line {item.line}: {item.image} was {', '.join(sorted(other))}, now "
                                 f"{item.species}: described again")
        return Task(item, item.contrasts, relabel=True)
    have = done.get(item.sha256, set())
    missing = None if item.contrasts is None else [c for c in item.contrasts if c not in have]
    if (item.contrasts is None and have) or (missing is not None and not missing):
        report.already_done += 1
        return None
    return Task(item, missing)


def _refuse_curated_relabel(tdb: TraitDB, run_id: int, item: BatchItem, other: dict[str, int]) -> bool:
    """Record an error and return True when re-describing item would throw away a curator's decisions."""
    curated = sum(other.values())
    if not curated:
        return False
    tdb.record_error(run_id, item.key, item.image,
                     f"{item.image} was described as {', '.join(sorted(other))} in this run and {curated} of its "
                     f"trait assertions were curated; the manifest now says {item.species}.\n  How to fix: to keep "
                     f"that curation put the old label back; to describe the photo as {item.species}, run the batch "
                     "again with a new --db (or remove the curation first).",
                     species=item.species, manifest_row=item.line, error_code=DatasetError.code)
    return True
