"""Shared helpers for the database and batch tests: database URLs on SQLite and PostgreSQL, hand-built results."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

PG_ENV = "FINER_TRAITS_TEST_PG"


def postgres_server_url() -> str | None:
    """The test PostgreSQL URL; on CI a missing server fails the test, elsewhere it skips with the reason."""
    url = os.environ.get(PG_ENV)
    if url:
        return url
    reason = (f"{PG_ENV} is not set: no PostgreSQL server for the database tests. Start one with "
              "`. .ci/postgres` (installs and starts a throwaway server on 127.0.0.1) and run the tests again.")
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"On CI the PostgreSQL database tests must run: {reason}")
    pytest.skip(reason)
    return None


def fresh_postgres_database(server_url: str) -> Iterator[str]:
    """Create an empty database on the test server, yield its URL, drop it afterwards."""
    import sqlalchemy as sa

    name = f"ft_test_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(server_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    except sa.exc.OperationalError as exc:
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(f"Cannot reach the test PostgreSQL server {server_url}: {exc}")
        pytest.skip(f"Cannot reach the test PostgreSQL server in {PG_ENV} ({exc}).")
    url = sa.make_url(server_url).set(database=name).render_as_string(hide_password=False)
    try:
        yield url
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


def db_url(backend: str, tmp_path: Path) -> Iterator[str]:
    """A fresh empty database URL for backend 'sqlite' or 'postgresql'."""
    if backend == "sqlite":
        yield f"sqlite:///{tmp_path / 'traits.sqlite'}"
    else:
        yield from fresh_postgres_database(postgres_server_url())


def make_result(target: str, contrast: str, traits: list[tuple[str, str, str]], seed: int = 0,
                expert: list[str | None] | None = None) -> dict:
    """A hand-built describe() result dict: one region per trait, scores that depend on seed and rank."""
    regions = [{"index": i, "box": [i, 2 * i, 10 + i, 20 + i], "mass": round(0.5 / (i + 1), 4),
                "area": 0.1, "peak": 0.9, "location": f"spot {i}"} for i in range(len(traits))]
    items = []
    for rank, (part, attribute, value) in enumerate(traits, start=1):
        items.append({
            "trait": {"part": part, "attribute": attribute, "value": value, "side": None,
                      "text": f"{value} {part}"},
            "phrase": f"a {value} {part}", "region": rank - 1, "score": round(0.5 - 0.1 * rank + 0.01 * seed, 4),
            "contrast_score": round(0.1 + 0.01 * rank, 4), "direction": "+" if rank % 2 else "-",
            "confidence": "strong" if rank == 1 else "moderate",
            "expert_status": (expert[rank - 1] if expert else None), "rank": rank})
    return {"text": f"{target} differs from {contrast}.", "target_species": target, "contrast_species": contrast,
            "target_probability": 0.8, "uncertain": False, "traits": items, "regions": regions,
            "provenance": {"method": "finer", "gamma": 1.0, "scorer": "color"}, "warnings": []}


def natural_rows(db, digits: int = 6) -> dict[str, list[tuple]]:
    """Every stored row keyed by content (hashes, names, ranks) instead of ids and times, floats rounded.

    Two databases that hold the same results give equal dicts, whatever order the rows were written in.
    """
    import sqlalchemy as sa

    from traits import db as t

    def norm(v):
        return round(v, digits) if isinstance(v, float) else (str(v) if isinstance(v, (dict, list)) else v)

    tx, cx = t.taxa.alias("tx"), t.taxa.alias("cx")
    res = (sa.select(t.results.c.id, t.images.c.sha256, tx.c.scientific_name.label("taxon"),
                     cx.c.scientific_name.label("contrast"))
           .join(t.images, t.images.c.id == t.results.c.image_id)
           .join(tx, tx.c.id == t.results.c.taxon_id).join(cx, cx.c.id == t.results.c.contrast_taxon_id)
           .subquery())
    queries = {
        "images": sa.select(t.images.c.sha256, t.images.c.path, t.taxa.c.scientific_name, t.images.c.licence,
                            t.images.c.metadata, t.images.c.width, t.images.c.height)
        .outerjoin(t.taxa, t.taxa.c.id == t.images.c.taxon_id),
        "results": sa.select(res.c.sha256, res.c.taxon, res.c.contrast, t.results.c.target_probability,
                             t.results.c.uncertain, t.results.c.text, t.results.c.warnings)
        .join(res, res.c.id == t.results.c.id),
        "regions": sa.select(res.c.sha256, res.c.contrast, t.regions.c.region_index, t.regions.c.x0, t.regions.c.y0,
                             t.regions.c.x1, t.regions.c.y1, t.regions.c.mass, t.regions.c.area_fraction,
                             t.regions.c.peak, t.regions.c.location)
        .join(res, res.c.id == t.regions.c.result_id),
        "assertions": sa.select(res.c.sha256, res.c.taxon, res.c.contrast, t.trait_assertions.c.rank,
                                t.traits.c.part, t.traits.c.attribute, t.traits.c.value, t.traits.c.side,
                                t.trait_assertions.c.phrase, t.trait_assertions.c.score,
                                t.trait_assertions.c.contrast_score, t.trait_assertions.c.direction,
                                t.trait_assertions.c.confidence, t.trait_assertions.c.expert_status,
                                t.trait_assertions.c.method, t.regions.c.region_index)
        .join(res, res.c.id == t.trait_assertions.c.result_id)
        .join(t.traits, t.traits.c.id == t.trait_assertions.c.trait_id)
        .outerjoin(t.regions, t.regions.c.id == t.trait_assertions.c.region_id),
        "errors": sa.select(t.image_errors.c.item_key, t.image_errors.c.image_path, t.image_errors.c.species,
                            t.image_errors.c.manifest_row, t.image_errors.c.error_code, t.image_errors.c.message),
        "runs": sa.select(t.runs.c.config_sha256, t.runs.c.classifier, t.runs.c.scorer, t.runs.c.cam_method,
                          t.runs.c.gamma, t.runs.c.status),
    }
    with db.connect() as conn:
        return {name: sorted((tuple(norm(v) for v in row) for row in conn.execute(q)), key=repr)
                for name, q in queries.items()}


def stored_results(path: Path) -> int:
    """How many results a batch run has committed to the SQLite file at path (0 before it exists or while busy)."""
    import sqlite3

    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=1) as conn:
            return conn.execute("SELECT count(*) FROM results").fetchone()[0]
    except sqlite3.Error:  # not created yet, or busy
        return 0


def kill_batch_midway(cmd: list[str], db_path: Path, env: dict | None = None, after: int = 2,
                      guard_s: float = 900) -> int:
    """Run a `finer-traits batch` command, kill -9 it once `after` results are stored, and return how many are.

    guard_s stops a hung run; it is not a timing check (a loaded 2-core machine may need minutes to start)."""
    import signal
    import subprocess
    import time

    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    deadline = time.monotonic() + guard_s
    try:
        while stored_results(db_path) < after:
            assert proc.poll() is None, f"the batch ended before it could be killed: {proc.stderr.read().decode()}"
            assert time.monotonic() < deadline, f"the batch wrote nothing within {guard_s:.0f} s"
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == -signal.SIGKILL
    return stored_results(db_path)
