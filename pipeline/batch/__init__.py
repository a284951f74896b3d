"""Batch runs: describe every photo of a manifest against its contrast species and store it all in the trait DB.

A run is identified by its configuration (classifier weights, scorer, expert list, top_k, contrast mode, tool
version). Running the same command again resumes that run: photos already stored are skipped, earlier errors
are retried, and each photo's results are written in one transaction, so an interrupt (Ctrl-C, kill -9) loses
at most the photos in flight and never leaves half of one.

The package follows one photo's way: `manifest` (reading, streamed), `plan` (rows -> items and row errors),
`engines` (local processes; `ray_engine`: Ray Data actors, imported only with --engine ray), `writer` (the trait
database and the Parquet dataset), and `run` (run_batch, which ties them together).
"""

from pipeline.batch.engines import (
    Describer,
    DescribeSpec,
    Engine,
    LocalEngine,
    die_with_parent,
    load_pipeline,
    nearest_species,
)
from pipeline.batch.manifest import (
    ManifestRow,
    classifier_fingerprint,
    item_key,
    iter_manifest,
    read_manifest,
    read_pairs,
)
from pipeline.batch.plan import BatchItem, Planner, RowError, Task, inspect_file
from pipeline.batch.plan import _image_size as _image_size  # tests/test_hostile.py reads it from here
from pipeline.batch.run import ENGINES, make_engine, run_batch
from pipeline.batch.writer import BatchReport

__all__ = [
    "ENGINES", "BatchItem", "BatchReport", "DescribeSpec", "Describer", "Engine", "LocalEngine", "ManifestRow",
    "Planner", "RowError", "Task", "classifier_fingerprint", "die_with_parent", "inspect_file",
    "item_key", "iter_manifest", "load_pipeline", "make_engine", "nearest_species", "read_manifest", "read_pairs",
    "run_batch",
]
