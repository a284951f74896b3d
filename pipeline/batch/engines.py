"""Execution engines: what describes the planned photos. One interface, two engines.

An engine takes tasks (photo + contrasts) and hands every outcome to a sink, in this process; it never touches
the database (the writer does). `LocalEngine` runs in this process or a local process pool (`--workers`);
`pipeline.batch.ray_engine.RayEngine` runs Ray Data actors on a laptop or a cluster (imported only when asked).
"""

from __future__ import annotations

import ctypes
import multiprocessing as mp
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from pipeline.batch.manifest import TableSource, local_parquet_tables
from pipeline.batch.plan import BatchItem, Task
from traits.db import DatabaseError, normalise_result
from traits.errors import BatchError, FinerTraitsError

# ("ok", [ResultRecord, ...]) or ("error", (error code, message)).
Outcome = tuple[str, Any]
Sink = Callable[[Task, Outcome], None]


def nearest_species(classifier: Any, image: Any, target: str, k: int = 1) -> list[str]:
    """The k species the classifier finds most probable for image, other than target."""
    probs, _ = classifier.predict(image)
    order = probs[0].argsort(descending=True).tolist()
    t = classifier.index(target)
    return [classifier.class_names[i] for i in order if i != t][:k]


class Describer:
    """Holds one Pipeline (and, in nearest-contrast mode, its classifier) and describes items."""

    def __init__(self, pipeline: Any, model_dir: Path, top_k: int) -> None:
        self.pipeline = pipeline
        self.model_dir = model_dir
        self.top_k = top_k
        self._classifier = None

    def classifier(self) -> Any:
        """The pipeline's classifier (loaded from model_dir when the pipeline has none)."""
        if self._classifier is None:
            self._classifier = getattr(self.pipeline, "classifier", None)
            if self._classifier is None:
                from pipeline.models.io import load_classifier

                self._classifier = load_classifier(self.model_dir)
        return self._classifier

    def __call__(self, item: BatchItem, contrasts: list[str] | None) -> list:
        from pipeline.images import load_image

        image = load_image(item.path)
        if contrasts is None:
            contrasts = nearest_species(self.classifier(), image, item.species)
        # A manifest's optional 'side' column (upper / under, or a field guide's word) is the photo's side;
        # a bad value fails this photo alone, with the message naming the values.
        side = {"side": item.metadata["side"]} if item.metadata.get("side") else {}
        return [normalise_result(self.pipeline.describe(image, c, target_species=item.species, top_k=self.top_k,
                                                        **side))
                for c in contrasts]


def load_pipeline(model_dir: str | Path, scorer: str, expert: str | None, group: str | None = None) -> Any:
    """pipeline.describe.Pipeline.load(model_dir, scorer=..., expert=..., taxon_group=...)."""
    from pipeline.describe import Pipeline  # torch and the models: in the processes that describe

    return Pipeline.load(model_dir, scorer=scorer, expert=expert, taxon_group=group)


@dataclass(frozen=True)
class DescribeSpec:
    """Everything a worker needs to build its own Describer (picklable: it travels to processes and actors)."""

    model_dir: Path
    scorer: str
    expert: str | None
    top_k: int
    group: str | None = None

    def load(self) -> Describer:
        """A Describer with a freshly loaded Pipeline."""
        return Describer(load_pipeline(self.model_dir, self.scorer, self.expert, self.group), self.model_dir,
                         self.top_k)


def describe_one(describer: Callable[[BatchItem, list[str] | None], list], task: Task) -> Outcome:
    """Describe one task; a failing photo becomes an ("error", (code, message)) outcome, never an exception."""
    try:
        return "ok", describer(task.item, task.contrasts)
    except DatabaseError:
        raise
    except Exception as exc:  # one bad photo never stops the batch
        return "error", (getattr(exc, "code", type(exc).__name__), error_message(exc))


def error_message(exc: BaseException) -> str:
    """The message recorded for a failed photo: a FinerTraitsError's own text, else the exception's type and text."""
    return str(exc) if isinstance(exc, FinerTraitsError) else f"{type(exc).__name__}: {exc}"


class Engine(Protocol):
    """What run_batch needs from an engine."""

    name: str

    def manifest_tables(self) -> TableSource | None:
        """How this engine reads a Parquet manifest's record batches (None: pyarrow in this process)."""

    def describe(self, tasks: Iterable[Task], spec: DescribeSpec, sink: Sink) -> None:
        """Describe every task and call sink(task, outcome) for each, in this process."""

    def write_parquet(self, tables: Iterable[Any], out: Path) -> None:
        """Write pyarrow tables as the Parquet files of the folder out (which does not exist yet)."""


class LocalEngine:
    """This process (workers=1) or a pool of local worker processes, each with its own Pipeline."""

    name = "local"

    def __init__(self, workers: int = 1, pipeline: Any = None) -> None:
        self.workers = workers
        self.pipeline = pipeline

    def manifest_tables(self) -> TableSource | None:
        """pyarrow.dataset in this process."""
        return local_parquet_tables

    def describe(self, tasks: Iterable[Task], spec: DescribeSpec, sink: Sink) -> None:
        """Describe serially or in the pool; the pipeline is loaded only when there is something to describe."""
        tasks = iter(tasks)
        first = next(tasks, None)
        if first is None:
            return
        tasks = _chain(first, tasks)
        if self.workers == 1:
            describer = (Describer(self.pipeline, spec.model_dir, spec.top_k) if self.pipeline is not None
                         else spec.load())
            for task in tasks:
                sink(task, describe_one(describer, task))
        else:
            _run_pool(tasks, self.workers, spec, sink)

    def write_parquet(self, tables: Iterable[Any], out: Path) -> None:
        """One Parquet file per table, written with pyarrow."""
        import pyarrow.parquet as pq

        out.mkdir(parents=True)
        for i, table in enumerate(tables):
            pq.write_table(table, out / f"part-{i:05d}.parquet")


def _chain(first: Task, rest: Iterator[Task]) -> Iterator[Task]:
    yield first
    yield from rest


# ---------------------------------------------------------------------------------------------------------
# The local process pool.

_WORKER: Describer | None = None


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


def _init_worker(spec: DescribeSpec, parent_pid: int | None = None) -> None:
    import torch

    global _WORKER
    if parent_pid is not None:
        die_with_parent(parent_pid)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole group; the parent decides what stops
    torch.set_num_threads(1)  # N workers x all cores each would oversubscribe the CPU
    _WORKER = spec.load()


def _work(task: Task) -> Outcome:
    assert _WORKER is not None
    return describe_one(_WORKER, task)


def _run_pool(tasks: Iterator[Task], workers: int, spec: DescribeSpec, sink: Sink) -> None:
    """Describe in worker processes (each with its own Pipeline) while this process hands outcomes to sink."""
    running: dict[Future, Task] = {}
    before = set(mp.active_children())
    # spawn: forked copies of a process holding torch threads or DB connections are unsafe.
    pool = ProcessPoolExecutor(workers, mp_context=mp.get_context("spawn"), initializer=_init_worker,
                               initargs=(spec, os.getpid()))
    try:
        pending = True
        while pending or running:
            while pending and len(running) < 2 * workers:
                task = next(tasks, None)
                if task is None:
                    pending = False
                    break
                running[pool.submit(_work, task)] = task
            if not running:
                break
            finished, _ = wait(running, return_when=FIRST_COMPLETED)
            for fut in finished:
                task = running.pop(fut)
                try:
                    outcome = fut.result()
                except BrokenProcessPool as exc:
                    raise BatchError(f"A worker process died ({exc}); the describe pipeline could not be "
                                     "loaded or ran out of memory there.",
                                     "Run with --workers 1 to see the underlying error.") from exc
                sink(task, outcome)
    except BaseException:
        # Ctrl-C or an error: stop the workers now instead of waiting for the photos in flight (they are simply
        # described again next time). The pool's own processes are the children that appeared with it.
        for proc in set(mp.active_children()) - before:
            proc.terminate()
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    pool.shutdown(wait=True)
