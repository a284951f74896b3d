"""The Ray engine (`batch --engine ray`) on a local Ray instance: the same rows as the local engine, resuming
after kill -9 of the driver, a dying actor retried, bad rows recorded."""

from __future__ import annotations

import csv
import os
import sys
from pathlib import Path

import pandas as pd
import pytest
from db_helpers import kill_batch_midway, natural_rows

import pipeline
from pipeline.batch import DescribeSpec, run_batch
from traits.db import TraitDB
from traits.export import COLUMNS

ray = pytest.importorskip("ray", reason="the Ray engine tests need the ray extra: pip install 'finer-traits[ray]'")

ROOT = Path(pipeline.__file__).resolve().parents[1]
N_GOOD = 6


@pytest.fixture(scope="module")
def ray_address():
    """One local Ray instance of 2 CPUs for the module (starting Ray takes seconds); its workers import this tree."""
    ray.init(num_cpus=2, include_dashboard=False, logging_level="WARNING",
             runtime_env={"env_vars": {"PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}})
    try:
        yield ray.get_runtime_context().gcs_address
    finally:
        ray.shutdown()


@pytest.fixture(scope="module")
def batch(describe_model_dir: Path, synthetic_species_dir: Path, tmp_path_factory, one_torch_thread) -> dict:
    """A manifest of 6 good photos (2 of each of 3 species, nearest-species contrasts) and 3 bad rows, and the
    rows the local engine stores for it (also warms the model's reference cache for the actors)."""
    work = tmp_path_factory.mktemp("batch-ray")
    with open(synthetic_species_dir / "manifest.csv", newline="") as fh:
        rows = [r for r in csv.DictReader(fh) if r["split"] == "test"]
    species = sorted({r["species"] for r in rows})[:3]
    good = [r for sp in species for r in [r for r in rows if r["species"] == sp][:2]]
    (work / "broken.png").write_bytes(b"not a png at all")
    lines = [(os.path.relpath(synthetic_species_dir / r["image"], work), r["species"]) for r in good]
    lines += [("missing.png", species[0]),                # line 8: no such file
              (lines[0][0], "Nonexistent species"),       # line 9: unknown species
              ("broken.png", species[1])]                 # line 10: planned fine, fails when described
    manifest = work / "manifest.csv"
    with open(manifest, "w", newline="") as fh:
        csv.writer(fh).writerows([("image", "species"), *lines])
    reference = work / "reference.sqlite"
    report = run_batch(manifest, describe_model_dir, reference, progress=False)
    assert report.described == N_GOOD and {e["manifest_row"] for e in report.failed} == {8, 9, 10}
    with TraitDB(reference) as db:
        want = natural_rows(db)
    return {"work": work, "manifest": manifest, "model": describe_model_dir, "want": want}


def test_the_ray_engine_stores_what_the_local_engine_stores(batch: dict, ray_address: str, tmp_path: Path) -> None:
    db = tmp_path / "ray.sqlite"
    report = run_batch(batch["manifest"], batch["model"], db, engine="ray", workers=2, progress=False,
                       parquet=tmp_path / "assertions")
    assert report.engine == "ray" and report.described == N_GOOD
    by_line = {e["manifest_row"]: e for e in report.failed}
    assert set(by_line) == {8, 9, 10}  # bad rows are recorded, and the run still finishes
    assert "does not exist" in by_line[8]["message"] and by_line[9]["error_code"] == "FT002"
    assert "broken.png" in by_line[10]["message"]  # the actor's describe failure, recorded by the driver
    with TraitDB(db) as tdb:
        assert natural_rows(tdb) == batch["want"]
        n = tdb.counts()["trait_assertions"]
        assert tdb.runs()[0]["status"] == "finished"
    frame = pd.read_parquet(tmp_path / "assertions")
    assert list(frame.columns) == COLUMNS and len(frame) == n > N_GOOD
    assert set(frame["image_path"]) == {line for line, _ in _good_lines(batch["manifest"])}
    # A re-run with the other engine is the same run: nothing left to describe.
    again = run_batch(batch["manifest"], batch["model"], db, progress=False)
    assert again.resumed and (again.already_done, again.described) == (N_GOOD, 0)


def _good_lines(manifest: Path) -> list[tuple[str, str]]:
    with open(manifest, newline="") as fh:
        return [tuple(r) for r in list(csv.reader(fh))[1:N_GOOD + 1]]


def test_a_dying_actor_is_retried_and_nothing_is_lost(batch: dict, ray_address: str, tmp_path: Path) -> None:
    from pipeline.batch.ray_engine import RayEngine

    marker = tmp_path / "crashed-once"

    def crash_once(spec: DescribeSpec):
        describe = spec.load()

        def run(item, contrasts):
            if not marker.exists():  # the first photo kills its actor (process exit, as an out-of-memory kill)
                marker.touch()
                os._exit(1)
            return describe(item, contrasts)

        return run

    # The same rows as a Parquet manifest, which Ray Data reads (Parquet rows count from 1: CSV line - 1).
    parquet = batch["work"] / "manifest.parquet"
    pd.read_csv(batch["manifest"]).to_parquet(parquet, index=False)
    db = tmp_path / "retried.sqlite"
    engine = RayEngine(actors=1, progress=False, factory=crash_once)
    report = run_batch(parquet, batch["model"], db, engine=engine)
    assert marker.exists() and report.described == N_GOOD
    assert {e["manifest_row"] for e in report.failed} == {7, 8, 9}
    with TraitDB(db) as tdb:
        got = natural_rows(tdb)
    want = dict(batch["want"])
    # The same rows; errors differ only in the row number (index 3).
    assert [e[:3] + e[4:] for e in got.pop("errors")] == [e[:3] + e[4:] for e in want.pop("errors")]
    assert got == want


def test_kill_9_of_the_driver_then_rerun_gives_the_rows_of_an_uninterrupted_run(batch: dict, ray_address: str,
                                                                                tmp_path: Path) -> None:
    killed = tmp_path / "killed.sqlite"
    cmd = [sys.executable, "-c", "import sys; from pipeline.cli import main; main(sys.argv[1:])", "batch",
           str(batch["manifest"]), "--model", str(batch["model"]), "--db", str(killed), "--engine", "ray",
           "--address", ray_address, "--no-progress"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    stored = kill_batch_midway(cmd, killed, env=env)
    assert 2 <= stored < N_GOOD, f"kill landed after {stored} of {N_GOOD} photos"
    with TraitDB(killed) as tdb:
        assert tdb.runs()[0]["status"] == "running"  # killed: nobody marked it

    again = run_batch(batch["manifest"], batch["model"], killed, engine="ray", workers=2, progress=False)
    assert again.resumed and again.already_done == stored and again.described == N_GOOD - stored
    with TraitDB(killed) as tdb:
        assert natural_rows(tdb) == batch["want"]
