"""The Ray engine (`finer-traits batch --engine ray`): Ray Data describes the photos on a pool of actors.

Each actor loads the Pipeline once (model, scorer, references) and describes the tasks Ray Data hands it; the
outcomes stream back to this process (the driver), where the writer stores each photo in one transaction, as
with the local engine. So the database sees one writer and the same rows whichever engine ran, and a run
killed half way (driver or actor) resumes from what the database holds.

Ray is imported here only: `finer-traits` without `--engine ray` never loads it.
"""

from __future__ import annotations

import logging
import pickle
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from pipeline.batch.engines import DescribeSpec, Sink, describe_one
from pipeline.batch.manifest import BATCH_ROWS, TableSource
from pipeline.batch.plan import Task
from traits.errors import BatchError, MissingDependencyError

BUFFER_TASKS = 1024  # tasks held before the first block is handed to Ray (lets small runs use small blocks)

# Builds an actor's describer from the spec (tests wrap DescribeSpec.load to inject failures).
DescriberFactory = Callable[[DescribeSpec], Callable]


def import_ray() -> Any:
    """The ray module; a clear error naming the extra to install when it is missing."""
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError as exc:
        raise MissingDependencyError("The Ray engine needs Ray Data, which is not installed.",
                                     "pip install 'finer-traits[ray]' (or run without --engine ray).") from exc
    return ray


class _DescribeActor:
    """A Ray Data actor: loads one describer, then turns batches of pickled tasks into pickled outcomes."""

    def __init__(self, spec: DescribeSpec, factory: DescriberFactory | None, threads: int) -> None:
        import torch

        torch.set_num_threads(threads)  # the CPUs Ray gave this actor, not every core of the node
        self.describe = (factory or DescribeSpec.load)(spec)

    def __call__(self, batch: Any) -> Any:
        import pyarrow as pa

        # One row per block of tasks, pickled together (class names once per block, not once per photo).
        outcomes = [pickle.dumps([describe_one(self.describe, task) for task in pickle.loads(blob)], protocol=5)
                    for blob in batch.column("tasks").to_pylist()]
        return pa.table({"tasks": batch.column("tasks"), "outcomes": pa.array(outcomes, pa.binary())})


class RayEngine:
    """Ray Data with `actors` describe actors of num_cpus CPUs and num_gpus GPUs each.

    address: None starts Ray on this machine (or joins $RAY_ADDRESS); 'auto' joins the cluster this node belongs
    to; 'ray://HOST:10001' connects to a remote head node. A photo whose actor dies is retried up to
    max_task_retries times on a restarted actor.
    """

    name = "ray"

    def __init__(self, actors: int = 1, address: str | None = None, num_cpus: float = 1.0, num_gpus: float = 0.0,
                 progress: bool = True, factory: DescriberFactory | None = None, max_task_retries: int = 3,
                 block_tasks: int = 16) -> None:
        self.actors = actors
        self.address = address
        self.num_cpus = num_cpus
        self.num_gpus = num_gpus
        self.progress = progress
        self.factory = factory
        self.max_task_retries = max_task_retries
        self.block_tasks = block_tasks

    def _ray(self) -> Any:
        ray = import_ray()
        if not ray.is_initialized():
            ray.init(address=self.address, logging_level=logging.WARNING, include_dashboard=False)
        ctx = ray.data.DataContext.get_current()
        ctx.enable_progress_bars = self.progress
        ctx.execution_options.preserve_order = True  # manifest rows in file order: "first row wins" as locally
        return ray

    def manifest_tables(self) -> TableSource:
        """Ray Data's read_parquet, streamed to this process in record batches."""
        def tables(path: Path) -> Iterator[Any]:
            ray = self._ray()
            yield from ray.data.read_parquet(str(path)).iter_batches(batch_size=BATCH_ROWS, batch_format="pyarrow")

        return tables

    def describe(self, tasks: Iterable[Task], spec: DescribeSpec, sink: Sink) -> None:
        """Hand the tasks to Ray Data in small blocks, describe them on the actor pool, and sink each outcome."""
        ray = self._ray()
        refs = self._blocks(ray, tasks)
        if not refs:
            return
        ds = ray.data.from_arrow_refs(refs).map_batches(
            _DescribeActor, batch_format="pyarrow", batch_size=None,  # one call per block of tasks
            fn_constructor_kwargs={"spec": spec, "factory": self.factory, "threads": max(1, int(self.num_cpus))},
            compute=ray.data.ActorPoolStrategy(size=self.actors), num_cpus=self.num_cpus,
            num_gpus=self.num_gpus or None, max_restarts=-1, max_task_retries=self.max_task_retries)
        try:
            for batch in ds.iter_batches(batch_size=None, batch_format="pyarrow"):
                for tasks, outcomes in zip(batch.column("tasks").to_pylist(), batch.column("outcomes").to_pylist(),
                                           strict=True):
                    for task, outcome in zip(pickle.loads(tasks), pickle.loads(outcomes), strict=True):
                        sink(task, outcome)
        except ray.exceptions.RayError as exc:
            raise BatchError(f"The Ray engine stopped: {exc}".splitlines()[0][:500],
                             "Read the actor's error printed above (for example an unknown --scorer: Ray prints "
                             "the actor's own error and its fix), fix it, and run the same command again: photos "
                             "already stored are skipped.") from exc

    def _blocks(self, ray: Any, tasks: Iterable[Task]) -> list[Any]:
        """The tasks as object-store blocks (one row: a pickled list of tasks); the plan is never held whole here."""
        import pyarrow as pa

        def put(chunk: list[Task], size: int) -> None:
            for i in range(0, len(chunk), size):
                blob = pickle.dumps(chunk[i:i + size], protocol=5)
                refs.append(ray.put(pa.table({"tasks": pa.array([blob], pa.binary())})))

        refs: list[Any] = []
        buffer: list[Task] = []
        for task in tasks:
            buffer.append(task)
            if len(buffer) >= BUFFER_TASKS:
                put(buffer, self.block_tasks)
                buffer = []
        # A small run (the whole plan fits the buffer): one photo per block, so work spreads evenly over the
        # actors (Ray hands whole blocks to an actor) and each photo is stored as soon as it is described.
        put(buffer, self.block_tasks if refs else 1)
        return refs

    def write_parquet(self, tables: Iterable[Any], out: Path) -> None:
        """Ray Data's write_parquet from the tables (an empty result is written as one file with the columns)."""
        ray = self._ray()
        refs, first = [], None
        for table in tables:  # each table goes to the object store as it comes
            first = table if first is None else first
            if table.num_rows:
                refs.append(ray.put(table))
        if not refs:
            import pyarrow.parquet as pq

            out.mkdir(parents=True)
            pq.write_table(first, out / "part-00000.parquet")
            return
        ray.data.from_arrow_refs(refs).write_parquet(str(out))
