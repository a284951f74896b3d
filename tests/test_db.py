"""The trait database on SQLite and PostgreSQL: schema, idempotent transactional writes, curation, exports."""

from __future__ import annotations

import sqlite3
import zipfile
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa
from db_helpers import db_url, make_result, postgres_server_url

from pipeline.describe import TraitEvidence
from pipeline.errors import ConfigError
from traits import db as tdb
from traits.db import DatabaseError, ImageRecord, TraitDB
from traits.export import assertions_frame, export
from traits.model import Trait
from traits.review import accept, history, list_assertions, reject, reset
from traits.summary import summarise

A, B, C = "Vanessa atalanta", "Vanessa cardui", "Aglais io"
RED = ("forewing", "colour", "red")
BAND = ("hindwing", "pattern", "banded")
SPOT = ("forewing tip", "pattern", "spotted")


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request: pytest.FixtureRequest, tmp_path: Path):
    yield from db_url(request.param, tmp_path)


@pytest.fixture
def db(url: str):
    with TraitDB(url) as d:
        yield d


def image(i: int, species: str = A) -> ImageRecord:
    return ImageRecord(sha256=f"{i:064x}", path=f"photos/{i}.jpg", species=species, licence="CC-BY 4.0",
                       metadata={"source": "test", "n": i}, width=64, height=48)


def fill(db: TraitDB) -> int:
    """3 photos of A vs B (RED in all, BAND in 2) and 1 of C vs A; returns the run id."""
    run = db.start_run({"test": 1}, classifier="models/m", scorer="color", cam_method="finer", gamma=1.0)
    db.write_image_results(run.id, image(1), [make_result(A, B, [RED, BAND], expert=["confirmed", "contradicted"])])
    db.write_image_results(run.id, image(2), [make_result(A, B, [RED, BAND], seed=1, expert=["confirmed", None])])
    db.write_image_results(run.id, image(3), [make_result(A, B, [RED, SPOT], seed=2, expert=["confirmed", "new"])])
    db.write_image_results(run.id, image(4, C), [make_result(C, A, [SPOT])])
    return run.id


def all_rows(db: TraitDB) -> dict[str, list[tuple]]:
    with db.connect() as conn:
        return {t.name: sorted(tuple(map(str, r)) for r in conn.execute(sa.select(t)))
                for t in tdb.metadata.sorted_tables}


def test_migrated_schema_matches_the_tables_in_code(db: TraitDB) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    from traits.migrations import head_revision

    assert db.schema_version() == head_revision() == "0002"
    with db.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), tdb.metadata)
    assert diff == []
    # Opening again is a no-op upgrade that keeps the data.
    run_id = fill(db)
    with TraitDB(db.url) as again:
        assert again.counts(run_id)["trait_assertions"] == 7


def test_writes_are_idempotent_and_runs_resume_by_configuration(db: TraitDB) -> None:
    run_id = fill(db)
    counts = db.counts()
    assert counts == {"runs": 1, "images": 4, "results": 4, "regions": 7, "trait_assertions": 7, "image_errors": 0}
    before = all_rows(db)
    # Writing the same image + run again stores nothing new.
    ids = db.write_image_results(run_id, image(1), [make_result(A, B, [RED, BAND], expert=["confirmed", "contradicted"])])
    assert len(ids) == 1
    assert all_rows(db) == before
    # Same configuration -> the same run, resumed; another configuration -> a new run.
    again = db.start_run({"test": 1}, classifier="models/m")
    assert (again.id, again.resumed) == (run_id, True)
    other = db.start_run({"test": 2}, classifier="models/m")
    assert other.id != run_id and not other.resumed
    db.write_image_results(other.id, image(1), [make_result(A, B, [RED])])
    assert db.counts()["images"] == 4  # the image is shared, its results are per run
    assert db.counts(other.id)["results"] == 1
    assert db.completed(run_id) == {f"{i:064x}": ({A} if i == 4 else {B}) for i in (1, 2, 3, 4)}


def test_stored_values_round_trip(db: TraitDB) -> None:
    run_id = fill(db)
    frame = assertions_frame(db, run_id)
    assert len(frame) == 7
    first = frame[(frame.image_sha256 == f"{1:064x}") & (frame["rank"] == 1)].iloc[0]
    assert (first.scientific_name, first.contrast_scientific_name) == (A, B)
    assert (first.part, first.attribute, first.value, first.phrase) == ("forewing", "colour", "red", "a red forewing")
    assert first.score == pytest.approx(0.4) and first.contrast_score == pytest.approx(0.11)
    assert (first.direction, first.confidence, first.expert_status) == ("+", "strong", "confirmed")
    assert (first.x0, first.y0, first.x1, first.y1, first.region_mass) == (0, 0, 10, 20, 0.5)
    assert first.method.startswith("finer-traits: finer class-activation map (gamma=1.0)")
    assert first.curation_status == "pending" and first.licence == "CC-BY 4.0"
    assert first.determined_date.endswith("+00:00")
    with db.connect() as conn:
        meta = conn.execute(sa.select(tdb.images.c.metadata).where(tdb.images.c.sha256 == f"{1:064x}")).scalar()
        run = conn.execute(sa.select(tdb.runs).where(tdb.runs.c.id == run_id)).one()
    assert meta == {"source": "test", "n": 1}
    assert tdb.as_utc(run.started_at).tzinfo is not None and run.status == "running"
    db.finish_run(run_id)
    assert db.runs()[0]["status"] == "finished" and db.runs()[0]["ended_at"] is not None


def test_one_image_lands_whole_or_not_at_all(db: TraitDB) -> None:
    run = db.start_run({"t": 1}, classifier="m")
    good = make_result(A, B, [RED])
    bad = make_result(A, C, [RED, BAND])
    bad["traits"][1]["rank"] = 1  # two assertions with rank 1: the second insert violates a unique key
    with pytest.raises(DatabaseError):
        db.write_image_results(run.id, image(1), [good, bad])
    assert db.counts() == {"runs": 1, "images": 0, "results": 0, "regions": 0, "trait_assertions": 0,
                           "image_errors": 0}
    with db.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(tdb.traits)).scalar() == 0


def test_curation_is_a_log_beside_untouched_evidence(db: TraitDB) -> None:
    fill(db)
    with db.connect() as conn:
        evidence_before = sorted(map(tuple, conn.execute(sa.select(tdb.trait_assertions)).all()))
    pending = list_assertions(db, status="pending", limit=None)
    assert len(pending) == 7
    ids = [r["id"] for r in pending if r["part"] == "forewing" and r["taxon"] == A]
    assert len(ids) == 3
    assert accept(db, ids, curator="ana", note="clear in photos") == 3
    assert accept(db, ids, curator="ana") == 0  # already accepted: nothing appended
    assert reject(db, ids[:1], curator="ben", note="bar, not patch") == 1
    assert {r["id"] for r in list_assertions(db, status="accepted")} == set(ids[1:])
    assert [r["id"] for r in list_assertions(db, status="rejected")] == ids[:1]
    assert len(list_assertions(db, status="pending", limit=None)) == 4
    assert [(h["status"], h["curator"]) for h in history(db, ids[0])] == [("accepted", "ana"), ("rejected", "ben")]
    assert reset(db, ids[:1], curator="ana") == 1
    assert len(list_assertions(db, status="pending", limit=None)) == 5
    with db.connect() as conn:
        assert sorted(map(tuple, conn.execute(sa.select(tdb.trait_assertions)).all())) == evidence_before
    frame = assertions_frame(db)
    assert frame.set_index("assertion_id").loc[ids[1], "curator"] == "ana"
    with pytest.raises(DatabaseError, match="No trait assertion with id 9999"):
        accept(db, [ids[1], 9999], curator="ana")
    assert len(history(db, ids[1])) == 1  # the failed call wrote nothing
    with pytest.raises(ConfigError):
        reject(db, ids, curator="  ")
    assert len(list_assertions(db, taxon="aglais_io", status=None)) == 1


def test_errors_are_recorded_and_cleared_by_success(db: TraitDB) -> None:
    run = db.start_run({"t": 1}, classifier="m")
    db.record_error(run.id, "a.jpg|A", "a.jpg", "Image file a.jpg does not exist.", species=A, manifest_row=2,
                    error_code="FT003")
    db.record_error(run.id, "a.jpg|A", "a.jpg", "Image file a.jpg does not exist.", species=A, manifest_row=2,
                    error_code="FT003")
    errs = db.errors(run.id)
    assert len(errs) == 1 and errs[0]["attempts"] == 2 and errs[0]["error_code"] == "FT003"
    db.write_image_results(run.id, image(1), [make_result(A, B, [RED])], item_key="a.jpg|A")
    assert db.errors(run.id) == []


def test_csv_and_parquet_exports(db: TraitDB, tmp_path: Path) -> None:
    run_id = fill(db)
    accept(db, [1], curator="ana")
    out_csv = export(db, "csv", tmp_path / "traits.csv", run_id)
    out_pq = export(db, "parquet", tmp_path / "traits.parquet")
    frame = assertions_frame(db, run_id)
    back_csv, back_pq = pd.read_csv(out_csv), pd.read_parquet(out_pq)
    assert len(back_csv) == len(back_pq) == 7
    assert list(back_csv.columns) == list(frame.columns)
    assert list(back_csv["value"]) == list(frame["value"]) == list(back_pq["value"])
    assert back_csv["score"].tolist() == pytest.approx(frame["score"].tolist())
    assert (back_pq["curation_status"] == "accepted").sum() == 1
    assert not list(tmp_path.glob(".*.tmp"))  # written atomically, nothing left behind
    with pytest.raises(ConfigError, match="is a folder"):
        export(db, "csv", tmp_path, run_id)
    with pytest.raises(ConfigError, match="Unknown export format"):
        export(db, "xlsx", tmp_path / "x.xlsx")
    with pytest.raises(DatabaseError, match="no run 42"):
        export(db, "csv", tmp_path / "y.csv", run_id=42)


def test_darwin_core_archive_reads_back_with_dwca_reader(db: TraitDB, tmp_path: Path) -> None:
    from dwca.read import DwCAReader

    run_id = fill(db)
    reject(db, [2], curator="ben")
    out = export(db, "dwca", tmp_path / "traits-dwca.zip", run_id)
    assert set(zipfile.ZipFile(out).namelist()) == {"meta.xml", "eml.xml", "occurrence.txt", "measurementorfact.txt"}
    frame = assertions_frame(db, run_id)
    dwc, mof_type = "http://rs.tdwg.org/dwc/terms/", "http://rs.tdwg.org/dwc/terms/MeasurementOrFact"
    mof_rows, core_rows = [], []
    with DwCAReader(str(out)) as archive:
        for core in archive:
            core_rows.append(core.data)
            for ext in core.extensions:
                assert ext.rowtype == mof_type
                mof_rows.append((core.data[dwc + "scientificName"], ext.data))
    assert len(core_rows) == 4 and len(mof_rows) == len(frame) == 7
    by_id = {row[dwc + "measurementID"]: (sp, row) for sp, row in mof_rows}
    for r in frame.itertuples():
        sp, row = by_id[f"finer-traits:run{run_id}:assertion{r.assertion_id}"]
        assert sp == r.scientific_name
        assert row[dwc + "measurementType"] == f"{r.part} {r.attribute}"
        assert row[dwc + "measurementValue"] == r.value
        assert row[dwc + "measurementDeterminedBy"] == f"finer-traits {r.tool_version} run {run_id}"
        assert row[dwc + "measurementDeterminedDate"] == r.determined_date
        assert row[dwc + "measurementMethod"] == r.method
        assert f"versus {r.contrast_scientific_name}: direction {r.direction}" in row[dwc + "measurementRemarks"]
        assert f"curation {r.curation_status}" in row[dwc + "measurementRemarks"]
    assert {c[dwc + "occurrenceID"] for c in core_rows} == {f"urn:sha256:{i:064x}" for i in (1, 2, 3, 4)}


def test_summary_counts_per_pair(db: TraitDB) -> None:
    run_id = fill(db)
    accept(db, [r["id"] for r in list_assertions(db, taxon=A, limit=None) if r["value"] == "red"], curator="ana")
    s = summarise(db, run_id).set_index(["scientific_name", "contrast_scientific_name", "value"])
    red, band, spot = s.loc[(A, B, "red")], s.loc[(A, B, "banded")], s.loc[(A, B, "spotted")]
    assert (red.images, red.pair_images, red.frequency) == (3, 3, 1.0)
    assert band.frequency == pytest.approx(2 / 3) and spot.frequency == pytest.approx(1 / 3)
    assert red.mean_score == pytest.approx((0.4 + 0.41 + 0.42) / 3)
    assert (red.confirmed, red.expert_agreement, red.accepted, red.pending) == (3, 1.0, 3, 0)
    assert (band.confirmed, band.contradicted, band.unchecked) == (0, 1, 1) and band.expert_agreement == 0.0
    assert pd.isna(spot.expert_agreement) and spot.new == 1
    assert s.loc[(C, A, "spotted")].pair_images == 1
    assert summarise(TraitDB(db.url), run_id=None).shape[0] == 4


def test_bad_urls_give_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="finer-traits supports SQLite and PostgreSQL"):
        TraitDB("mysql://user@localhost/db")
    with pytest.raises(ConfigError, match="not a database URL"):
        TraitDB("sqlite+://:://")
    with pytest.raises(DatabaseError, match="does not exist"):
        TraitDB(tmp_path / "missing-folder" / "t.sqlite")
    with pytest.raises(DatabaseError, match="does not exist"):
        TraitDB(tmp_path / "not-yet.sqlite", create=False)
    with pytest.raises(DatabaseError, match="Cannot connect"):
        TraitDB("postgresql+psycopg://nobody@127.0.0.1:1/none", timeout=2)
    assert tdb.resolve_url("postgres://u@h/db") == "postgresql+psycopg://u@h/db"
    plain = TraitDB(tmp_path / "plain path.sqlite")  # a bare path means a SQLite file
    assert plain.dialect == "sqlite" and (tmp_path / "plain path.sqlite").exists()


def test_missing_postgres_database_is_named() -> None:
    url = sa.make_url(postgres_server_url()).set(database="ft_no_such_database")
    with pytest.raises(DatabaseError, match="(?s)does not exist.*createdb"):
        TraitDB(url.render_as_string(hide_password=False))


def test_locked_and_read_only_databases_keep_their_data(tmp_path: Path) -> None:
    path = tmp_path / "t.sqlite"
    with TraitDB(path) as d:
        run_id = fill(d)
        before = all_rows(d)
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # another writer mid-transaction
    try:
        with TraitDB(path, timeout=0.2) as d, pytest.raises(DatabaseError, match="locked by another program"):
            d.write_image_results(run_id, image(9), [make_result(A, B, [RED])])
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    ro = f"sqlite:///file:{path}?mode=ro&uri=true"
    with TraitDB(ro) as d:
        assert len(assertions_frame(d)) == 7  # reading works
        with pytest.raises(DatabaseError, match="read-only"):
            d.write_image_results(run_id, image(9), [make_result(A, B, [RED])])
    with TraitDB(path) as d:
        assert all_rows(d) == before
        d.write_image_results(run_id, image(9), [make_result(A, B, [RED])])  # unlocked: writes again
        assert d.counts()["results"] == 5


def test_foreign_or_newer_databases_are_refused(tmp_path: Path) -> None:
    other = tmp_path / "other.sqlite"
    with sqlite3.connect(other) as conn:
        conn.execute("CREATE TABLE birds (id INTEGER)")
    with pytest.raises(DatabaseError, match="did not create"):
        TraitDB(other)
    newer = tmp_path / "newer.sqlite"
    TraitDB(newer).close()
    with sqlite3.connect(newer) as conn:
        conn.execute("UPDATE alembic_version SET version_num = '9999'")
    with pytest.raises(DatabaseError, match="newer version"):
        TraitDB(newer)


def test_hand_built_results_and_objects_normalise_alike() -> None:
    d = make_result(A, B, [RED])
    item = d["traits"][0]
    obj = {**d, "traits": [TraitEvidence(Trait(**{k: item["trait"][k] for k in ("part", "attribute", "value", "text")}),
                                         item["phrase"], 0, item["score"], item["contrast_score"],
                                         item["direction"], item["confidence"], None, 1)]}
    a, b = tdb.normalise_result(d), tdb.normalise_result(obj)
    assert a.assertions[0].part == b.assertions[0].part == "forewing"
    assert a.assertions[0].score == b.assertions[0].score == pytest.approx(0.4)
    assert a.regions[0].box == (0.0, 0.0, 10.0, 20.0) and a.regions[0].area_fraction == 0.1
