"""run_batch: read and plan the manifest, describe with an engine, write to the trait database."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from pipeline.batch.engines import DescribeSpec, Engine, LocalEngine
from pipeline.batch.manifest import classifier_fingerprint, read_pairs
from pipeline.batch.plan import BatchItem, Planner, schedule
from pipeline.batch.writer import BatchReport, ResultWriter, write_results_parquet
from pipeline.species import SpeciesIndex
from traits.db import TraitDB
from traits.errors import BadValueError, ConflictingOptionsError, UnknownChoiceError
from traits.version import __version__
from traits.vocab import taxon_group as taxon_group_of

ENGINES = ("local", "ray")


def make_engine(engine: str | Engine, workers: int = 1, pipeline: Any = None, address: str | None = None,
                num_cpus: float = 1.0, num_gpus: float = 0.0, progress: bool = True) -> Engine:
    """The engine named by --engine: 'local' (this machine's processes) or 'ray' (Ray Data actors)."""
    if not isinstance(engine, str):
        return engine
    if workers < 1:
        raise BadValueError(f"--workers must be at least 1, not {workers}.", "Use --workers 1 (or the number of cores).")
    if engine == "local":
        if address is not None or num_gpus:
            raise ConflictingOptionsError("--address and --num-gpus are options of the Ray engine.",
                                          "Add --engine ray, or leave them out.")
        if workers > 1 and pipeline is not None:
            raise ConflictingOptionsError("A pre-loaded pipeline can only be used with workers=1.", "Pass workers=1.")
        return LocalEngine(workers, pipeline)
    if engine == "ray":
        if pipeline is not None:
            raise ConflictingOptionsError("The Ray engine loads the pipeline in each actor; a pre-loaded pipeline "
                                          "cannot be used with it.", "Leave pipeline out, or use engine='local'.")
        if num_cpus <= 0 or num_gpus < 0:
            raise BadValueError(f"--num-cpus must be above 0 and --num-gpus at least 0 (got {num_cpus}, {num_gpus}).",
                                "Use e.g. --num-cpus 1 --num-gpus 0 (a fraction such as 0.5 shares a GPU).")
        from pipeline.batch.ray_engine import RayEngine  # Ray is imported only when asked for

        return RayEngine(workers, address=address, num_cpus=num_cpus, num_gpus=num_gpus, progress=progress)
    raise UnknownChoiceError(f"Unknown batch engine {engine!r}.", f"Use one of {', '.join(ENGINES)}.")


def run_batch(manifest: str | Path, model_dir: str | Path, db: Any = None, *, pairs: str | Path | None = None,
              workers: int = 1, scorer: str = "color", expert: str | None = None, top_k: int = 5,
              progress: bool = True, pipeline: Any = None,
              on_item: Callable[[BatchItem, str], None] | None = None,
              taxon_group: str | None = None, engine: str | Engine = "local", address: str | None = None,
              num_cpus: float = 1.0, num_gpus: float = 0.0, parquet: str | Path | None = None) -> BatchReport:
    """Describe every photo of manifest against its contrast species and store the results in db (URL or TraitDB).

    taxon_group: the group whose parts and palette are used (default: the model card's, else butterfly).
    engine: 'local' (workers = processes), 'ray' (workers = Ray actors of num_cpus / num_gpus each, on the Ray
    instance at address), or an Engine. parquet: also write the run's assertions as a Parquet dataset there.

    pipeline: an already loaded describe Pipeline (tests, notebooks); otherwise loaded from model_dir, once per
    worker. on_item(item, outcome) is called after each photo ('ok' or 'error').
    """
    start = time.perf_counter()
    # An unknown group or engine fails before the database is touched.
    group = None if taxon_group is None else taxon_group_of(taxon_group).name
    runner = make_engine(engine, workers, pipeline, address, num_cpus, num_gpus, progress)
    model_dir = Path(model_dir)
    card, fingerprint = classifier_fingerprint(model_dir)
    species = SpeciesIndex(card["class_names"], card.get("common_names"))
    pair_map = read_pairs(pairs, species) if pairs is not None else None
    planner = Planner(manifest, species, pair_map, tables=runner.manifest_tables())
    planner.scan()
    tdb = db if isinstance(db, TraitDB) else TraitDB(db)
    configuration = {"classifier_sha256": fingerprint, "scorer": scorer, "expert": expert, "top_k": top_k,
                     "contrast": "pairs" if pair_map is not None else "nearest"}
    if group is not None:  # only when asked: runs started without the option resume as before
        configuration["taxon_group"] = group
    configuration["tool_version"] = __version__  # not the engine: a run resumed with another engine is the same run
    run = tdb.start_run(configuration, classifier=str(model_dir), classifier_sha256=fingerprint, scorer=scorer,
                        expert_source=expert, tool_version=__version__)
    report = BatchReport(run.id, run.resumed, tdb.url, planner.rows, engine=runner.name)
    try:
        # Ray shows its own progress; a second bar would fight it.
        # One step per manifest row: rows skipped (done, duplicate, bad) advance it as the plan streams past them.
        bar = tqdm(total=planner.rows, desc=f"run {run.id}", unit="row", dynamic_ncols=True,
                   disable=not progress or runner.name != "local")
        try:
            writer = ResultWriter(tdb, run.id, report, expert, bar, on_item)
            runner.describe(schedule(planner, tdb, run.id, report, on_skip=lambda: bar.update(1)),
                            DescribeSpec(model_dir, scorer, expert, top_k, group), writer)
        finally:
            bar.close()
        report.failed = tdb.errors(run.id)
        tdb.finish_run(run.id, "finished")
        if parquet is not None:
            report.parquet = write_results_parquet(runner, tdb, run.id, parquet)
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


def _mark(tdb: Any, run_id: int, status: str) -> None:
    try:
        tdb.finish_run(run_id, status)
    except Exception:  # the database itself may be the problem; the original error matters more
        pass
