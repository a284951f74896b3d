"""Writing a batch's outcomes: each photo's results in one transaction of the trait database (so a kill loses at
most the photos in flight), errors in the error table, and at the end the run as a Parquet dataset."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipeline.batch.engines import Engine, Outcome
from pipeline.batch.plan import BatchItem, Task
from traits.db import ImageRecord, TraitDB
from traits.export import assertion_tables


@dataclass
class BatchReport:
    """What a batch run did: the run, how many photos were new, skipped as done, failed, or duplicate rows."""

    run_id: int
    resumed: bool
    db_url: str
    manifest_rows: int = 0
    already_done: int = 0
    described: int = 0
    failed: list[dict] = field(default_factory=list)
    duplicates: list[str] = field(default_factory=list)
    relabelled: list[str] = field(default_factory=list)
    results_written: int = 0
    seconds: float = 0.0
    engine: str = "local"
    parquet: Path | None = None

    @property
    def ok(self) -> bool:
        """True when no photo failed."""
        return not self.failed


class ResultWriter:
    """The engines' sink: stores each outcome as it arrives and keeps the report's counts."""

    def __init__(self, tdb: TraitDB, run_id: int, report: BatchReport, expert: str | None, bar: Any,
                 on_item: Callable[[BatchItem, str], None] | None = None) -> None:
        self.tdb = tdb
        self.run_id = run_id
        self.report = report
        self.expert = expert
        self.bar = bar
        self.on_item = on_item
        self.n_failed = 0
        self._provenance_set = False

    def __call__(self, task: Task, outcome: Outcome) -> None:
        status, payload = outcome
        if status == "ok":
            self._store(task, payload)
        else:
            code, message = payload
            item = task.item
            self.tdb.record_error(self.run_id, item.key, item.image, message, species=item.species,
                                  manifest_row=item.line, error_code=code)
            self.n_failed += 1
        self.bar.update(1)
        self.bar.set_postfix(errors=self.n_failed, refresh=False)
        if self.on_item:
            self.on_item(task.item, "ok" if status == "ok" else "error")

    def _store(self, task: Task, records: list) -> None:
        item, report = task.item, self.report
        image = ImageRecord(item.sha256, item.image, item.species, item.licence, item.metadata, item.width,
                            item.height)
        _, new = self.tdb.write_image_results_counted(self.run_id, image, records, expert_source=self.expert,
                                                      item_key=item.key, relabel=task.relabel)
        # Another batch on the same run may have stored this photo first: then it is not ours to claim.
        if records and not new:
            report.already_done += 1
        else:
            report.described += 1
        report.results_written += new
        if not self._provenance_set and records and records[0].provenance:
            self.tdb.fill_run_provenance(self.run_id, records[0].provenance)
            self._provenance_set = True


def write_results_parquet(engine: Engine, tdb: TraitDB, run_id: int, out: str | Path) -> Path:
    """The run's trait assertions as a Parquet dataset in the folder out (the columns of `db export`), written by
    the engine and swapped in whole: a crash leaves the previous dataset, never half of one."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        engine.write_parquet(assertion_tables(tdb, run_id), staging / "new")
        if out.exists():
            out.rename(staging / "old")
        (staging / "new").rename(out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return out
