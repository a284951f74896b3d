"""Batch runs: describe every photo of a manifest against its contrast species and store it all in the trait DB.

A run is identified by its configuration (classifier weights, scorer, expert list, top_k, contrast mode, tool
version). Running the same command again resumes that run: photos already stored are skipped, earlier errors
are retried, and each photo's results are written in one transaction, so an interrupt (Ctrl-C, kill -9) loses
at most the photo in flight and never leaves half of one.
"""

from __future__ import annotations

import csv
import ctypes
import hashlib
import json
import multiprocessing as mp
import os
import signal
import sys
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from pipeline.describe import Pipeline
from pipeline.images import load_image, upright_size
from pipeline.models.io import HEAD, load_classifier, read_card
from pipeline.species import SpeciesIndex
from traits.db import DatabaseError, ImageRecord, TraitDB, file_sha256, normalise_result
from traits.errors import (
    BadImageError,
    BadValueError,
    BatchError,
    ConflictingOptionsError,
    DatasetError,
    FinerTraitsError,
    UnknownSpeciesError,
)
from traits.version import __version__
from traits.vocab import taxon_group as taxon_group_of

IMAGE_COLUMNS = ("image", "path", "file")
SPECIES_COLUMNS = ("species", "scientific_name")
LICENCE_COLUMNS = ("licence", "license")


@dataclass
class ManifestRow:
    """One data row of a manifest: its line number, the image as written and resolved, and the species."""

    line: int
    image: str
    path: Path
    species: str
    licence: str | None = None
    metadata: dict = field(default_factory=dict)


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
class BatchReport:
    """What a batch run did: the run, how many photos were new, skipped as done, failed, or duplicate rows."""

    run_id: int
    resumed: bool
    db_url: str
    manifest_rows: int
    already_done: int = 0
    described: int = 0
    failed: list[dict] = field(default_factory=list)
    duplicates: list[str] = field(default_factory=list)
    relabelled: list[str] = field(default_factory=list)
    results_written: int = 0
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        """True when no photo failed."""
        return not self.failed


def item_key(image: str, species: str) -> str:
    """Key of a manifest item in the error table."""
    return f"{image}|{species}"


# ---------------------------------------------------------------------------------------------------------
# Reading the inputs.

def _read_csv(path: Path, what: str) -> tuple[list[str], list[tuple[int, dict]]]:
    if not path.is_file():
        raise DatasetError(f"The {what} {path} does not exist.", "Check the path.")
    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            reader = csv.DictReader(fh)
            header = [h.strip() for h in (reader.fieldnames or [])]
            reader.fieldnames = header
            rows = [(reader.line_num, {k: (v or "").strip() for k, v in row.items() if k is not None})
                    for row in reader]
    except (UnicodeDecodeError, csv.Error) as exc:
        raise DatasetError(f"The {what} {path} is not a readable UTF-8 CSV file ({exc}).",
                           "Save it as CSV (comma-separated, UTF-8) with a header row.") from exc
    return header, rows


def _pick(header: Sequence[str], names: Sequence[str]) -> str | None:
    lower = {h.lower(): h for h in header}
    return next((lower[n] for n in names if n in lower), None)


def read_manifest(path: str | Path) -> list[ManifestRow]:
    """Rows of a manifest CSV: 'image' (relative to the CSV's folder) and 'species' or 'scientific_name'."""
    path = Path(path)
    header, rows = _read_csv(path, "manifest")
    img_col, sp_col = _pick(header, IMAGE_COLUMNS), _pick(header, SPECIES_COLUMNS)
    if img_col is None or sp_col is None:
        raise DatasetError(f"The manifest {path} needs an 'image' column and a 'species' (or 'scientific_name') "
                           f"column; it has {', '.join(header) or 'no header'}.",
                           "Add a header row such as `image,species` (image paths relative to the manifest).")
    lic_col = _pick(header, LICENCE_COLUMNS)
    out = []
    for line, row in rows:
        image, species = row.get(img_col, ""), row.get(sp_col, "")
        if not image and not species:
            continue  # blank line
        if not image or not species:
            raise DatasetError(f"Manifest {path}, line {line}: the {'image' if not image else 'species'} is empty.",
                               "Fill it in or delete the row.")
        extra = {k: v for k, v in row.items() if k not in (img_col, sp_col, lic_col) and v != ""}
        out.append(ManifestRow(line, image, (path.parent / image).resolve(), species,
                               row.get(lic_col) or None if lic_col else None, extra))
    if not out:
        raise DatasetError(f"The manifest {path} has no rows.", "Add one row per photo: image,species.")
    return out


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


# ---------------------------------------------------------------------------------------------------------
# Planning: manifest rows -> items, with bad rows turned into recorded errors.

@dataclass
class _RowError:
    line: int
    image: str
    species: str
    code: str
    message: str

    @classmethod
    def of(cls, row: ManifestRow, species: str, error: FinerTraitsError) -> _RowError:
        """The row's error as recorded in the database: the error's code and its full message with the fix."""
        return cls(row.line, row.image, species, error.code, str(error))


def plan_items(rows: list[ManifestRow], species: SpeciesIndex, pairs: dict[str, list[str]] | None
               ) -> tuple[list[BatchItem], list[_RowError], list[str], set[str]]:
    """Turn manifest rows into items; returns (items, per-row errors, duplicate notes, every row's item key)."""
    errors: list[_RowError] = []
    duplicates: list[str] = []
    named: list[tuple[ManifestRow, str]] = []
    for row in rows:
        try:
            named.append((row, species.class_names[species.index(row.species)]))
        except UnknownSpeciesError as exc:
            errors.append(_RowError.of(row, row.species, exc))
    keys = {item_key(e.image, e.species) for e in errors} | {item_key(r.image, name) for r, name in named}
    # Same image listed twice: identical rows are duplicates; different species is a conflict.
    by_image: OrderedDict[Path, list[tuple[ManifestRow, str]]] = OrderedDict()
    for row, name in named:
        by_image.setdefault(row.path, []).append((row, name))
    firsts: list[tuple[ManifestRow, str]] = []
    for group in by_image.values():
        if len({name for _, name in group}) > 1:
            listed = "; ".join(f"line {r.line}: {name}" for r, name in group)
            for r, name in group:
                errors.append(_RowError.of(r, name, DatasetError(
                    f"{r.image} is listed with different species ({listed}).",
                    "Keep the row with the right species and delete the others.")))
            continue
        firsts.append(group[0])
        duplicates += [f"line {r.line} repeats line {group[0][0].line} ({r.image})" for r, _ in group[1:]]
    items: list[BatchItem] = []
    by_hash: dict[str, BatchItem] = {}
    for row, name in firsts:
        contrasts = None
        if pairs is not None:
            contrasts = pairs.get(name)
            if not contrasts:
                errors.append(_RowError.of(row, name, DatasetError(
                    f"No contrast species for {name} in the pairs file.",
                    "Add a row with it to --pairs, or leave --pairs out to use the classifier's nearest species.")))
                continue
        if not _is_file(row.path):
            what = ("is not a regular file (a folder, named pipe or device)" if _exists(row.path)
                    else "does not exist or cannot be named on this system")
            errors.append(_RowError.of(row, name, BadImageError(
                f"Image file {row.path} {what}.",
                "Check the path (paths are relative to the manifest's folder).")))
            continue
        try:
            sha = file_sha256(row.path)
        except OSError as exc:
            errors.append(_RowError.of(row, name, BadImageError(f"Cannot read {row.path}: {exc}",
                                                                 "Check that the file is readable.")))
            continue
        if sha in by_hash:
            first = by_hash[sha]
            if first.species != name:
                errors.append(_RowError.of(row, name, DatasetError(
                    f"{row.image} is the same photo as {first.image} (line {first.line}) but labelled {name}, "
                    f"not {first.species}.", "Correct the label.")))
            else:
                duplicates.append(f"line {row.line} is the same photo as line {first.line} ({row.image})")
            continue
        width, height = _image_size(row.path)
        item = BatchItem(row.line, row.image, row.path, name, contrasts, sha, row.licence, row.metadata,
                         width, height)
        by_hash[sha] = item
        items.append(item)
    errors.sort(key=lambda e: e.line)
    return items, errors, duplicates, keys


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


# ---------------------------------------------------------------------------------------------------------
# Describing one item (in this process or a worker).

def nearest_species(classifier: Any, image: Any, target: str, k: int = 1) -> list[str]:
    """The k species the classifier finds most probable for image, other than target."""
    probs, _ = classifier.predict(image)
    order = probs[0].argsort(descending=True).tolist()
    t = classifier.index(target)
    return [classifier.class_names[i] for i in order if i != t][:k]


class _Describer:
    """Holds one Pipeline (and, in nearest-contrast mode, its classifier) and describes items."""

    def __init__(self, pipeline: Any, model_dir: Path, top_k: int) -> None:
        self.pipeline = pipeline
        self.model_dir = model_dir
        self.top_k = top_k
        self._classifier = None

    def classifier(self) -> Any:
        if self._classifier is None:
            self._classifier = getattr(self.pipeline, "classifier", None)
            if self._classifier is None:
                self._classifier = load_classifier(self.model_dir)
        return self._classifier

    def __call__(self, item: BatchItem, contrasts: list[str] | None) -> list:
        image = load_image(item.path)
        if contrasts is None:
            contrasts = nearest_species(self.classifier(), image, item.species)
        return [normalise_result(self.pipeline.describe(image, c, target_species=item.species, top_k=self.top_k))
                for c in contrasts]


_WORKER: _Describer | None = None


def die_with_parent(parent_pid: int, poll: float = 1.0) -> None:
    """Make this worker process end when its parent does, even after a `kill -9` of the parent.

    A worker holds its own copy of the models (about 1.2 GB); orphaned it would keep that memory until it
    finished its photo. Linux: the kernel sends SIGKILL when the parent dies (prctl PR_SET_PDEATHSIG);
    everywhere: a daemon thread checks every `poll` seconds whether the parent is still there.
    """
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(1, int(signal.SIGKILL), 0, 0, 0)  # 1 = PR_SET_PDEATHSIG
        except (OSError, AttributeError):  # no prctl here: the thread below still does the job
            pass
    if os.getppid() != parent_pid:  # the parent died before the line above took effect
        os._exit(1)

    def watch() -> None:
        while True:
            time.sleep(poll)
            if os.getppid() != parent_pid:
                os._exit(1)

    threading.Thread(target=watch, name="finer-traits-parent-watch", daemon=True).start()


def _init_worker(model_dir: str, scorer: str, expert: str | None, top_k: int, parent_pid: int | None = None,
                 group: str | None = None) -> None:
    global _WORKER
    if parent_pid is not None:
        die_with_parent(parent_pid)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole group; the parent decides what stops
    torch.set_num_threads(1)  # N workers x all cores each would oversubscribe the CPU
    _WORKER = _Describer(load_pipeline(model_dir, scorer, expert, group), Path(model_dir), top_k)


def _work(item: BatchItem, contrasts: list[str] | None) -> tuple[str, Any]:
    assert _WORKER is not None
    try:
        return "ok", _WORKER(item, contrasts)
    except Exception as exc:  # reported per photo by the parent
        return "error", (getattr(exc, "code", type(exc).__name__), _message(exc))


def _message(exc: BaseException) -> str:
    return str(exc) if isinstance(exc, FinerTraitsError) else f"{type(exc).__name__}: {exc}"


def load_pipeline(model_dir: str | Path, scorer: str, expert: str | None, group: str | None = None) -> Any:
    """pipeline.describe.Pipeline.load(model_dir, scorer=..., expert=..., taxon_group=...)."""
    return Pipeline.load(model_dir, scorer=scorer, expert=expert, taxon_group=group)


# ---------------------------------------------------------------------------------------------------------
# The batch.

def run_batch(manifest: str | Path, model_dir: str | Path, db: Any = None, *, pairs: str | Path | None = None,
              workers: int = 1, scorer: str = "color", expert: str | None = None, top_k: int = 5,
              progress: bool = True, pipeline: Any = None,
              on_item: Callable[[BatchItem, str], None] | None = None,
              taxon_group: str | None = None) -> BatchReport:
    """Describe every photo of manifest against its contrast species and store the results in db (URL or TraitDB).

    taxon_group: the group whose parts and palette are used (default: the model card's, else butterfly).

    pipeline: an already loaded describe Pipeline (tests, notebooks); otherwise loaded from model_dir, once per
    worker when workers > 1. on_item(item, outcome) is called after each photo ('ok' or 'error').
    """
    start = time.perf_counter()
    taxon_group = _check_options(workers, pipeline, taxon_group)
    model_dir = Path(model_dir)
    card, fingerprint = classifier_fingerprint(model_dir)
    species = SpeciesIndex(card["class_names"], card.get("common_names"))
    rows = read_manifest(manifest)
    pair_map = read_pairs(pairs, species) if pairs is not None else None
    tdb = db if isinstance(db, TraitDB) else TraitDB(db)
    configuration = {"classifier_sha256": fingerprint, "scorer": scorer, "expert": expert, "top_k": top_k,
                     "contrast": "pairs" if pair_map is not None else "nearest"}
    if taxon_group is not None:  # only when asked: runs started without the option resume as before
        configuration["taxon_group"] = taxon_group
    configuration["tool_version"] = __version__
    run = tdb.start_run(configuration, classifier=str(model_dir), classifier_sha256=fingerprint, scorer=scorer,
                        expert_source=expert, tool_version=__version__)
    report = BatchReport(run.id, run.resumed, tdb.url, len(rows))
    try:
        todo, relabel = _todo(tdb, run.id, rows, species, pair_map, report)
        provenance_set = False

        def store(item: BatchItem, records: list) -> None:
            nonlocal provenance_set
            image = ImageRecord(item.sha256, item.image, item.species, item.licence, item.metadata,
                                item.width, item.height)
            _, new = tdb.write_image_results_counted(run.id, image, records, expert_source=expert,
                                                     item_key=item.key, relabel=item.sha256 in relabel)
            # Another batch on the same run may have stored this photo first: then it is not ours to claim.
            if records and not new:
                report.already_done += 1
            else:
                report.described += 1
            report.results_written += new
            if not provenance_set and records and records[0].provenance:
                tdb.fill_run_provenance(run.id, records[0].provenance)
                provenance_set = True

        def fail(item: BatchItem, code: str, message: str) -> None:
            tdb.record_error(run.id, item.key, item.image, message, species=item.species, manifest_row=item.line,
                             error_code=code)

        bar = tqdm(total=len(todo), desc=f"run {run.id}", unit="photo", disable=not progress, dynamic_ncols=True)
        try:
            if todo and workers == 1:
                describer = _Describer(pipeline if pipeline is not None else load_pipeline(model_dir, scorer, expert, taxon_group),
                                       model_dir, top_k)
                _run_serial(todo, describer, store, fail, bar, on_item)
            elif todo:
                _run_parallel(todo, workers, model_dir, scorer, expert, top_k, store, fail, bar, on_item,
                              taxon_group)
        finally:
            bar.close()
        report.failed = tdb.errors(run.id)
        tdb.finish_run(run.id, "finished")
    except KeyboardInterrupt:
        _mark(tdb, run.id, "interrupted")
        raise
    except BaseException:
        _mark(tdb, run.id, "failed")
        raise
    finally:
        if not isinstance(db, TraitDB):
            tdb.close()
    report.seconds = time.perf_counter() - start
    return report


def _check_options(workers: int, pipeline: Any, taxon_group: str | None) -> str | None:
    """Refuse impossible option combinations; the group's canonical name (None when not given)."""
    if workers < 1:
        raise BadValueError(f"--workers must be at least 1, not {workers}.", "Use --workers 1 (or the number of cores).")
    if workers > 1 and pipeline is not None:
        raise ConflictingOptionsError("A pre-loaded pipeline can only be used with workers=1.", "Pass workers=1.")
    # An unknown group fails before the database is touched.
    return None if taxon_group is None else taxon_group_of(taxon_group).name


def _todo(tdb: TraitDB, run_id: int, rows: list[ManifestRow], species: SpeciesIndex,
          pair_map: dict[str, list[str]] | None, report: BatchReport
          ) -> tuple[list[tuple[BatchItem, list[str] | None]], set[str]]:
    """Plan the rows, record the bad ones as errors, and return the photos (with the contrasts) still to describe
    and the hashes of those whose label changed; counts duplicates and photos already done in report."""
    items, row_errors, report.duplicates, row_keys = plan_items(rows, species, pair_map)
    for e in row_errors:
        tdb.record_error(run_id, item_key(e.image, e.species), e.image, e.message, species=e.species,
                         manifest_row=e.line, error_code=e.code)
    # Rows of this manifest that are fine now (fixed, duplicate, done) lose their old errors; errors of rows
    # from other manifests of the same run stay.
    keep = {item_key(e.image, e.species) for e in row_errors} | {item.key for item in items}
    tdb.clear_errors(run_id, row_keys - keep)
    done = tdb.completed(run_id)
    labelled = tdb.labelled(run_id)
    todo: list[tuple[BatchItem, list[str] | None]] = []
    relabel: set[str] = set()
    for item in items:
        # A photo stored under another species in this run: the manifest's label was corrected (or is now
        # wrong). Its old traits describe the wrong species pair, so it is described again, never skipped.
        other = {sp: n for sp, n in labelled.get(item.sha256, {}).items() if sp != item.species}
        if other:
            if _refuse_curated_relabel(tdb, run_id, item, other):
                continue
            relabel.add(item.sha256)
            report.relabelled.append(f"line {item.line}: {item.image} was {', '.join(sorted(other))}, now "
                                     f"{item.species}: described again")
            todo.append((item, item.contrasts))
            continue
        have = done.get(item.sha256, set())
        missing = None if item.contrasts is None else [c for c in item.contrasts if c not in have]
        if (item.contrasts is None and have) or (missing is not None and not missing):
            report.already_done += 1
        else:
            todo.append((item, missing))
    return todo, relabel


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


def _run_serial(todo: list, describer: _Describer, store: Callable, fail: Callable, bar: Any,
                on_item: Callable | None) -> int:
    """Describe in this process, one photo after another; returns how many failed."""
    n_failed = 0
    for item, contrasts in todo:
        try:
            records = describer(item, contrasts)
        except DatabaseError:
            raise
        except Exception as exc:  # one bad photo never stops the batch
            fail(item, getattr(exc, "code", type(exc).__name__), _message(exc))
            n_failed += 1
            outcome = "error"
        else:
            store(item, records)
            outcome = "ok"
        bar.update(1)
        bar.set_postfix(errors=n_failed, refresh=False)
        if on_item:
            on_item(item, outcome)
    return n_failed


def _mark(tdb: Any, run_id: int, status: str) -> None:
    try:
        tdb.finish_run(run_id, status)
    except Exception:  # the database itself may be the problem; the original error matters more
        pass


def _run_parallel(todo: list, workers: int, model_dir: Path, scorer: str, expert: str | None, top_k: int,
                  store: Callable, fail: Callable, bar: Any, on_item: Callable | None, group: str | None = None) -> int:
    """Describe in worker processes (each with its own Pipeline) while this process writes to the database."""
    n_failed = 0
    queue = list(reversed(todo))
    running: dict[Future, BatchItem] = {}
    # spawn: forked copies of a process holding torch threads or DB connections are unsafe.
    pool = ProcessPoolExecutor(workers, mp_context=mp.get_context("spawn"), initializer=_init_worker,
                               initargs=(str(model_dir), scorer, expert, top_k, os.getpid(), group))
    try:
        while queue or running:
            while queue and len(running) < 2 * workers:
                item, contrasts = queue.pop()
                running[pool.submit(_work, item, contrasts)] = item
            finished, _ = wait(running, return_when=FIRST_COMPLETED)
            for fut in finished:
                item = running.pop(fut)
                try:
                    status, payload = fut.result()
                except BrokenProcessPool as exc:
                    raise BatchError(f"A worker process died ({exc}); the describe pipeline could not be "
                                      "loaded or ran out of memory there.",
                                      "Run with --workers 1 to see the underlying error.") from exc
                if status == "ok":
                    store(item, payload)
                else:
                    fail(item, *payload)
                    n_failed += 1
                bar.update(1)
                bar.set_postfix(errors=n_failed, refresh=False)
                if on_item:
                    on_item(item, status if status == "ok" else "error")
    except BaseException:
        # Ctrl-C or an error: stop the workers now instead of waiting for the photos in flight (they are simply
        # described again next time). There is no public API for this before Python 3.14.
        for proc in list((getattr(pool, "_processes", None) or {}).values()):
            proc.terminate()
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    pool.shutdown(wait=True)
    return n_failed
