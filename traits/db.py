"""The trait database: SQLAlchemy Core tables along Darwin Core MeasurementOrFact / ETS lines.

One URL picks the engine: a SQLite file by default, PostgreSQL (`postgresql+psycopg://...`) for teams. Machine
evidence (runs, results, regions, trait assertions) is written once and never updated; curation is an append-only
log beside it. One image's results are written in one transaction, and unique keys make every write idempotent,
so an interrupted batch can simply be run again.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine

from traits.errors import (
    BadValueError,
    DatabaseError,
    FinerTraitsError,
    MissingDependencyError,
    UnknownChoiceError,
)
from traits.migrations import current_revision, upgrade
from traits.names import display_name
from traits.version import __version__

DEFAULT_URL = "sqlite:///finer-traits.sqlite"
CURATION_STATUSES = ("accepted", "rejected", "pending")
RUN_STATUSES = ("running", "finished", "interrupted", "failed")


# Names for constraints so that migrations can refer to them on every backend.
metadata = sa.MetaData(naming_convention={
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
})

UTCDateTime = sa.DateTime(timezone=True)
NullableJSON = sa.JSON(none_as_null=True)  # Python None -> SQL NULL, not the JSON text 'null'

taxa = sa.Table(
    "taxa", metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("scientific_name", sa.String(255), nullable=False, unique=True),
    sa.Column("common_name", sa.String(255)),
    sa.Column("taxon_rank", sa.String(32), nullable=False, server_default="species"),
)

expert_sources = sa.Table(
    "expert_sources", metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("name", sa.String(255), nullable=False, unique=True),
    sa.Column("kind", sa.String(64)),  # field_guide, cub, csv, ...
    sa.Column("citation", sa.Text),
    sa.Column("url", sa.Text),
)

images = sa.Table(
    "images", metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("sha256", sa.String(64), nullable=False, unique=True),
    sa.Column("path", sa.Text, nullable=False),
    sa.Column("taxon_id", sa.Integer, sa.ForeignKey("taxa.id")),
    sa.Column("licence", sa.Text),
    sa.Column("metadata", NullableJSON),
    sa.Column("width", sa.Integer),
    sa.Column("height", sa.Integer),
)

runs = sa.Table(
    "runs", metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("config_sha256", sa.String(64), nullable=False, unique=True),
    sa.Column("tool_version", sa.String(64), nullable=False),
    sa.Column("classifier", sa.Text, nullable=False),
    sa.Column("classifier_sha256", sa.String(64)),
    sa.Column("scorer", sa.String(255)),
    sa.Column("cam_method", sa.String(64)),
    sa.Column("gamma", sa.Float),
    sa.Column("expert_source_id", sa.Integer, sa.ForeignKey("expert_sources.id")),
    sa.Column("configuration", sa.JSON, nullable=False),
    sa.Column("provenance", NullableJSON),
    sa.Column("started_at", UTCDateTime, nullable=False),
    sa.Column("ended_at", UTCDateTime),
    sa.Column("status", sa.String(16), nullable=False),
    sa.CheckConstraint("status IN ('running', 'finished', 'interrupted', 'failed')", name="status"),
)

# One describe() call: an image seen as its target species against one contrast species, within one run.
results = sa.Table(
    "results", metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("run_id", sa.Integer, sa.ForeignKey("runs.id"), nullable=False),
    sa.Column("image_id", sa.Integer, sa.ForeignKey("images.id"), nullable=False),
    sa.Column("taxon_id", sa.Integer, sa.ForeignKey("taxa.id"), nullable=False),
    sa.Column("contrast_taxon_id", sa.Integer, sa.ForeignKey("taxa.id"), nullable=False),
    sa.Column("target_probability", sa.Float),
    sa.Column("uncertain", sa.Boolean),
    sa.Column("text", sa.Text),
    sa.Column("warnings", NullableJSON),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.UniqueConstraint("run_id", "image_id", "contrast_taxon_id"),
)

regions = sa.Table(
    "regions", metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("result_id", sa.Integer, sa.ForeignKey("results.id"), nullable=False),
    sa.Column("region_index", sa.Integer, nullable=False),
    sa.Column("x0", sa.Float, nullable=False),
    sa.Column("y0", sa.Float, nullable=False),
    sa.Column("x1", sa.Float, nullable=False),
    sa.Column("y1", sa.Float, nullable=False),
    sa.Column("mass", sa.Float),
    sa.Column("area_fraction", sa.Float),
    sa.Column("peak", sa.Float),
    sa.Column("location", sa.Text),
    sa.UniqueConstraint("result_id", "region_index"),
)

# Entity-Quality traits; '' (not NULL) for an unknown field so the unique key also holds on PostgreSQL.
traits = sa.Table(
    "traits", metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("part", sa.String(255), nullable=False),
    sa.Column("attribute", sa.String(64), nullable=False),
    sa.Column("value", sa.String(255), nullable=False),
    sa.Column("side", sa.String(16), nullable=False),
    sa.Column("text", sa.Text),
    sa.UniqueConstraint("part", "attribute", "value", "side"),
)

trait_assertions = sa.Table(
    "trait_assertions", metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("result_id", sa.Integer, sa.ForeignKey("results.id"), nullable=False),
    sa.Column("rank", sa.Integer, nullable=False),
    sa.Column("taxon_id", sa.Integer, sa.ForeignKey("taxa.id"), nullable=False),
    sa.Column("contrast_taxon_id", sa.Integer, sa.ForeignKey("taxa.id"), nullable=False),
    sa.Column("trait_id", sa.Integer, sa.ForeignKey("traits.id"), nullable=False),
    sa.Column("region_id", sa.Integer, sa.ForeignKey("regions.id")),
    sa.Column("phrase", sa.Text),
    sa.Column("score", sa.Float),
    sa.Column("contrast_score", sa.Float),
    sa.Column("direction", sa.String(16)),
    sa.Column("confidence", sa.String(16)),
    sa.Column("method", sa.Text),
    sa.Column("determined_by_run_id", sa.Integer, sa.ForeignKey("runs.id"), nullable=False),
    sa.Column("determined_date", UTCDateTime, nullable=False),
    sa.Column("expert_status", sa.String(32)),
    sa.Column("expert_source_id", sa.Integer, sa.ForeignKey("expert_sources.id")),
    sa.Column("remarks", sa.Text),
    sa.UniqueConstraint("result_id", "rank"),
)

# Append-only: the latest row per assertion is its curated status; the machine's evidence is never touched.
curation = sa.Table(
    "curation", metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("assertion_id", sa.Integer, sa.ForeignKey("trait_assertions.id"), nullable=False, index=True),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("curator", sa.String(255), nullable=False),
    sa.Column("curated_at", UTCDateTime, nullable=False),
    sa.Column("note", sa.Text),
    # An edit: the curator's corrected trait (NULL: as the machine said). Migration 0002.
    sa.Column("part", sa.String(255)),
    sa.Column("attribute", sa.String(64)),
    sa.Column("value", sa.String(255)),
    sa.Column("direction", sa.String(16)),
    sa.CheckConstraint("status IN ('accepted', 'rejected', 'pending')", name="status"),
)

image_errors = sa.Table(
    "image_errors", metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("run_id", sa.Integer, sa.ForeignKey("runs.id"), nullable=False),
    sa.Column("item_key", sa.String(1024), nullable=False),
    sa.Column("image_path", sa.Text, nullable=False),
    sa.Column("species", sa.Text),
    sa.Column("manifest_row", sa.Integer),
    sa.Column("error_code", sa.String(16)),
    sa.Column("message", sa.Text, nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("first_seen", UTCDateTime, nullable=False),
    sa.Column("last_seen", UTCDateTime, nullable=False),
    sa.UniqueConstraint("run_id", "item_key"),
)


def utcnow() -> datetime:
    """The current time, timezone-aware UTC."""
    return datetime.now(timezone.utc)


def as_utc(value: datetime | None) -> datetime | None:
    """SQLite hands back naive datetimes: they were written as UTC, so say so."""
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=timezone.utc)


def file_sha256(path: str | Path, chunk: int = 1 << 20) -> str:
    """Hex SHA-256 of a file's bytes (the identity of an image in the database)."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def config_sha256(configuration: Mapping[str, Any]) -> str:
    """Stable hash of a run configuration (sorted-key JSON)."""
    return hashlib.sha256(json.dumps(configuration, sort_keys=True, default=str).encode()).hexdigest()


# ---------------------------------------------------------------------------------------------------------
# Results as plain records: describe() objects, their to_dict() and hand-built dicts all normalise to these.

@dataclass
class RegionRecord:
    """One region of a result: box in image pixels, share of map mass, share of image area."""

    index: int
    box: tuple[float, float, float, float]
    mass: float | None = None
    area_fraction: float | None = None
    peak: float | None = None
    location: str | None = None


@dataclass
class AssertionRecord:
    """One ranked trait difference of a result, with its evidence."""

    rank: int
    part: str
    attribute: str
    value: str
    side: str = ""
    trait_text: str = ""
    phrase: str = ""
    region: int | None = None
    score: float | None = None
    contrast_score: float | None = None
    direction: str | None = None
    confidence: str | None = None
    expert_status: str | None = None
    remarks: str | None = None


@dataclass
class ResultRecord:
    """What the database keeps of one describe() call (maps and crops are left out)."""

    target_species: str
    contrast_species: str
    text: str = ""
    target_probability: float | None = None
    uncertain: bool | None = None
    assertions: list[AssertionRecord] = field(default_factory=list)
    regions: list[RegionRecord] = field(default_factory=list)
    provenance: dict = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)


def _get(obj: Any, *names: str, default: Any = None) -> Any:
    for name in names:
        if isinstance(obj, Mapping):
            if name in obj:
                return obj[name]
        elif hasattr(obj, name):
            return getattr(obj, name)
    return default


def _float(v: Any) -> float | None:
    return None if v is None else float(v)


def _index(v: Any) -> int | None:
    """A region index; None (or NaN) means the whole organism."""
    if v is None:
        return None
    f = float(v)
    return None if f != f else int(f)


def _text(v: Any) -> str:
    return "" if v is None else str(v)


def normalise_result(result: Any) -> ResultRecord:
    """A ResultRecord from a DescribeResult, its to_dict(), or a hand-built dict with the same fields."""
    if isinstance(result, ResultRecord):
        return result
    assertions = []
    for pos, item in enumerate(_get(result, "traits", default=[]) or []):
        trait = _get(item, "trait")
        if isinstance(trait, str) or trait is None:
            trait = {"text": trait or ""}
        rank = _get(item, "rank")
        assertions.append(AssertionRecord(
            rank=int(rank) if rank is not None else pos + 1,
            part=_text(_get(trait, "part")), attribute=_text(_get(trait, "attribute")),
            value=_text(_get(trait, "value")), side=_text(_get(trait, "side")),
            trait_text=_text(_get(trait, "text")), phrase=_text(_get(item, "phrase")),
            region=_index(_get(item, "region", "region_index")), score=_float(_get(item, "score")),
            contrast_score=_float(_get(item, "contrast_score")), direction=_get(item, "direction"),
            confidence=None if _get(item, "confidence") is None else str(_get(item, "confidence")),
            expert_status=_get(item, "expert_status"), remarks=_get(item, "remarks")))
    regs = []
    for pos, reg in enumerate(_get(result, "regions", default=[]) or []):
        box = tuple(float(v) for v in _get(reg, "box"))
        if len(box) != 4:
            raise ValueError(f"region box must have 4 numbers, got {box}")
        index = _get(reg, "index", "region_index")
        regs.append(RegionRecord(index=int(index) if index is not None else pos, box=box,  # type: ignore[arg-type]
                                 mass=_float(_get(reg, "mass")), area_fraction=_float(_get(reg, "area", "area_fraction")),
                                 peak=_float(_get(reg, "peak")), location=_get(reg, "location")))
    prob = _get(result, "target_probability")
    uncertain = _get(result, "uncertain")
    return ResultRecord(
        target_species=str(_get(result, "target_species")), contrast_species=str(_get(result, "contrast_species")),
        text=_text(_get(result, "text")), target_probability=_float(prob),
        uncertain=None if uncertain is None else bool(uncertain), assertions=assertions, regions=regs,
        provenance=dict(_get(result, "provenance", default={}) or {}),
        warnings=[str(w) for w in (_get(result, "warnings", default=[]) or [])])


@dataclass
class ImageRecord:
    """An image as the database knows it: content hash, path, labelled taxon, licence and free metadata."""

    sha256: str
    path: str
    species: str | None = None
    licence: str | None = None
    metadata: dict = field(default_factory=dict)
    width: int | None = None
    height: int | None = None


@dataclass
class RunInfo:
    """A run row: resumed is True when an earlier run with the same configuration was picked up again."""

    id: int
    config_sha256: str
    resumed: bool
    status: str


# ---------------------------------------------------------------------------------------------------------
# Connecting.

def resolve_url(url: str | os.PathLike | None) -> str:
    """A database URL from --db: None -> $FINER_TRAITS_DB or the default SQLite file; a bare path -> SQLite."""
    if url is None:
        url = os.environ.get("FINER_TRAITS_DB") or DEFAULT_URL
    url = os.fspath(url)
    if "://" not in url:
        url = f"sqlite:///{url}"
    for plain in ("postgresql://", "postgres://"):
        if url.startswith(plain):  # SQLAlchemy's default driver is psycopg2; finer-traits ships psycopg 3
            url = "postgresql+psycopg://" + url[len(plain):]
    return url


def redact_url(url: str) -> str:
    """The URL with its password hidden, for messages and logs."""
    try:
        return sa.make_url(url).render_as_string(hide_password=True)
    except sa.exc.ArgumentError:  # not a URL SQLAlchemy can parse: it has no password field to hide
        return url


def translate_error(exc: BaseException, url: str) -> FinerTraitsError:
    """A DatabaseError saying what went wrong with the database behind url, and what to do."""
    shown = redact_url(url)
    text = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    low = text.lower()
    if "locked" in low or "could not obtain lock" in low or "lock timeout" in low:
        return DatabaseError(f"The database {shown} is locked by another program ({text}).",
                             "Wait for the other finer-traits command (or database tool) to finish, then run "
                             "this again; nothing already written is lost.")
    if "readonly" in low or "read-only" in low or "read only" in low:
        return DatabaseError(f"The database {shown} is read-only ({text}).",
                             "Point --db at a file or server you may write to, or fix its permissions.")
    if "unable to open" in low or "no such file" in low:
        return DatabaseError(f"The database {shown} cannot be opened ({text}).",
                             "Check that its folder exists and that you may write there.")
    if "does not exist" in low and "database" in low:
        return DatabaseError(f"The database in {shown} does not exist ({text}).",
                             "Create it first (for PostgreSQL: `createdb NAME`).")
    if "connection" in low or "connect" in low or "resolve host" in low or "authentication" in low:
        return DatabaseError(f"Cannot connect to the database {shown} ({text}).",
                             "Check the host, port, user, password and database name in --db, and that the "
                             "server is running.")
    return DatabaseError(f"Database error on {shown}: {text}",
                         "Check --db; if the file was edited by hand or by another tool, restore it from a copy.")


SQL_INT_MAX = 2**63 - 1  # the largest id SQLite and PostgreSQL can store


def _too_large(exc: BaseException) -> FinerTraitsError:
    return BadValueError(f"A number given is too large for the database ({exc}); ids go up to {SQL_INT_MAX}.",
                       "Use an id listed by `finer-traits db info` or `finer-traits db review list`.")


class TraitDB:
    """The trait database behind one URL (SQLite file by default, or PostgreSQL).

    create=False refuses to create a missing SQLite file (for read-only commands such as export).
    timeout: seconds to wait for another writer's lock before giving up with a clear error.
    """

    def __init__(self, url: str | os.PathLike | None = None, *, create: bool = True, timeout: float = 30.0,
                 migrate: bool = True) -> None:
        self.url = resolve_url(url)
        try:
            parsed = sa.make_url(self.url)
        except (sa.exc.ArgumentError, ValueError) as exc:
            raise BadValueError(f"{self.url!r} is not a database URL.",
                              "Use a SQLite file (`results.sqlite` or `sqlite:///results.sqlite`) or "
                              "`postgresql+psycopg://user:password@host/dbname`.") from exc
        self.dialect = parsed.get_backend_name()
        if self.dialect not in ("sqlite", "postgresql"):
            raise UnknownChoiceError(f"Database URL {redact_url(self.url)} uses {self.dialect!r}; finer-traits supports SQLite "
                              "and PostgreSQL.", "Use `sqlite:///FILE` or `postgresql+psycopg://user@host/dbname`.")
        kwargs: dict[str, Any] = {}
        if self.dialect == "sqlite":
            db = parsed.database or ""
            in_memory = db in ("", ":memory:") or db.startswith("file::memory:")
            if not in_memory and not parsed.query.get("uri"):
                path = Path(db)
                if path.exists() and not path.is_file():  # a folder, or a named pipe SQLite would block on
                    raise DatabaseError(f"The database {path} is not a regular file.",
                                        "Pass a SQLite file (or a new file name) as --db.")
                if not path.exists() and not create:
                    raise DatabaseError(f"The database file {path} does not exist.",
                                        "Run `finer-traits batch ... --db` first, or pass the right --db.")
                if not path.parent.exists():
                    raise DatabaseError(f"The folder {path.parent} for the database {path} does not exist.",
                                        "Create the folder first, or pass another --db.")
            kwargs["connect_args"] = {"timeout": timeout}
            if in_memory:
                kwargs["poolclass"] = sa.pool.StaticPool  # one shared connection, or each one sees an empty DB
        else:
            kwargs["connect_args"] = {"connect_timeout": max(1, int(timeout))}
            kwargs["pool_pre_ping"] = True
        try:
            self.engine: Engine = sa.create_engine(self.url, **kwargs)
        except (sa.exc.NoSuchModuleError, ModuleNotFoundError, ImportError) as exc:
            raise MissingDependencyError(f"No database driver for {redact_url(self.url)} ({exc}).",
                              "For PostgreSQL install psycopg: `pip install 'finer-traits[postgres]'` and use "
                              "`postgresql+psycopg://...`.") from exc
        if self.dialect == "sqlite":
            sa.event.listen(self.engine, "connect", _sqlite_connect)
            sa.event.listen(self.engine, "begin", _sqlite_begin)
        self.timeout = timeout
        if migrate:
            try:
                upgrade(self.engine)
            except FinerTraitsError:
                raise
            except sa.exc.SQLAlchemyError as exc:
                raise translate_error(exc, self.url) from exc

    def __repr__(self) -> str:
        return f"TraitDB({redact_url(self.url)!r})"

    def __enter__(self) -> TraitDB:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Release all connections."""
        self.engine.dispose()

    @contextmanager
    def begin(self) -> Iterator[Connection]:
        """A connection in one transaction: committed on success, rolled back on any error."""
        try:
            with self.engine.connect() as conn:
                conn.info["write"] = True  # SQLite: take the write lock up front (BEGIN IMMEDIATE)
                with conn.begin():
                    yield conn
        except sa.exc.SQLAlchemyError as exc:
            raise translate_error(exc, self.url) from exc
        except OverflowError as exc:  # the driver refuses ints beyond 64 bits (a run or assertion id typed wrong)
            raise _too_large(exc) from exc

    @contextmanager
    def connect(self) -> Iterator[Connection]:
        """A connection for reading."""
        try:
            with self.engine.connect() as conn:
                yield conn
        except sa.exc.SQLAlchemyError as exc:
            raise translate_error(exc, self.url) from exc
        except OverflowError as exc:
            raise _too_large(exc) from exc

    def schema_version(self) -> str | None:
        """The migration revision the database is at."""
        with self.connect() as conn:
            return current_revision(conn)

    # -- upserts -------------------------------------------------------------------------------------

    def _insert(self, table: sa.Table) -> Any:
        """The dialect's INSERT (with on_conflict_do_nothing) for table."""
        dialect = postgresql if self.dialect == "postgresql" else sqlite
        return dialect.insert(table)

    def _insert_ignore(self, conn: Connection, table: sa.Table, values: dict, keys: Sequence[str]) -> int:
        """Insert values unless a row with the same unique keys exists; return that row's id either way."""
        conn.execute(self._insert(table).values(**values).on_conflict_do_nothing(index_elements=list(keys)))
        cond = sa.and_(*[table.c[k] == values[k] for k in keys])
        return conn.execute(sa.select(table.c.id).where(cond)).scalar_one()

    def ensure_taxon(self, conn: Connection, name: str, common_name: str | None = None) -> int:
        """Id of the taxon with this scientific name, created when new."""
        return self._insert_ignore(conn, taxa, {"scientific_name": display_name(name), "common_name": common_name},
                                   ["scientific_name"])

    def ensure_expert_source(self, conn: Connection, name: str, kind: str | None = None,
                             citation: str | None = None, url: str | None = None) -> int:
        """Id of the expert trait source with this name, created when new."""
        return self._insert_ignore(conn, expert_sources, {"name": name, "kind": kind, "citation": citation,
                                                          "url": url}, ["name"])

    def ensure_trait(self, conn: Connection, part: str, attribute: str, value: str, side: str = "",
                     text: str | None = None) -> int:
        """Id of the Entity-Quality trait (part, attribute, value, side), created when new."""
        return self._insert_ignore(conn, traits, {"part": part or "", "attribute": attribute or "",
                                                  "value": value or "", "side": side or "", "text": text},
                                   ["part", "attribute", "value", "side"])

    def ensure_image(self, conn: Connection, image: ImageRecord) -> int:
        """Id of the image with this content hash, created when new (a known image keeps its first path)."""
        taxon_id = self.ensure_taxon(conn, image.species) if image.species else None
        return self._insert_ignore(conn, images, {
            "sha256": image.sha256, "path": image.path, "taxon_id": taxon_id, "licence": image.licence,
            "metadata": image.metadata or None, "width": image.width, "height": image.height}, ["sha256"])

    # -- runs ----------------------------------------------------------------------------------------

    def start_run(self, configuration: Mapping[str, Any], *, classifier: str, classifier_sha256: str | None = None,
                  scorer: str | None = None, cam_method: str | None = None, gamma: float | None = None,
                  expert_source: str | None = None, tool_version: str | None = None,
                  provenance: Mapping[str, Any] | None = None) -> RunInfo:
        """The run for this configuration: a new one, or the earlier one with the same configuration (resumed)."""
        if tool_version is None:
            tool_version = __version__
        digest = config_sha256(configuration)
        with self.begin() as conn:
            existing = conn.execute(sa.select(runs.c.id, runs.c.status)
                                    .where(runs.c.config_sha256 == digest)).first()
            if existing is not None:
                conn.execute(runs.update().where(runs.c.id == existing.id)
                             .values(status="running", ended_at=None))
                return RunInfo(existing.id, digest, True, existing.status)
            source_id = self.ensure_expert_source(conn, expert_source) if expert_source else None
            run_id = self._insert_ignore(conn, runs, {
                "config_sha256": digest, "tool_version": str(tool_version), "classifier": classifier,
                "classifier_sha256": classifier_sha256, "scorer": scorer, "cam_method": cam_method,
                "gamma": gamma, "expert_source_id": source_id, "configuration": dict(configuration),
                "provenance": dict(provenance) if provenance else None, "started_at": utcnow(),
                "status": "running"}, ["config_sha256"])
        return RunInfo(run_id, digest, False, "running")

    def fill_run_provenance(self, run_id: int, provenance: Mapping[str, Any]) -> None:
        """Record the CAM method, gamma and full provenance of a run's first result (later ones never overwrite)."""
        gamma = provenance.get("gamma")
        values = {"cam_method": provenance.get("cam_method") or provenance.get("method"),
                  "gamma": float(gamma) if isinstance(gamma, (int, float)) else None,
                  "provenance": json.loads(json.dumps(dict(provenance), default=str))}
        with self.begin() as conn:
            # Read rather than `IS NULL`: a JSON null written by another client must count as empty too.
            if conn.execute(sa.select(runs.c.provenance).where(runs.c.id == run_id)).scalar():
                return
            conn.execute(runs.update().where(runs.c.id == run_id)
                         .values(**{k: v for k, v in values.items() if v is not None}))

    def finish_run(self, run_id: int, status: str = "finished") -> None:
        """Mark a run finished / interrupted / failed, with its end time."""
        if status not in RUN_STATUSES:
            raise ValueError(f"status must be one of {RUN_STATUSES}")
        with self.begin() as conn:
            conn.execute(runs.update().where(runs.c.id == run_id).values(status=status, ended_at=utcnow()))

    def runs(self) -> list[dict]:
        """All runs, oldest first, as dicts."""
        with self.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(sa.select(runs).order_by(runs.c.id))]

    def latest_run_id(self) -> int | None:
        """Id of the newest run, or None in an empty database."""
        with self.connect() as conn:
            return conn.execute(sa.select(sa.func.max(runs.c.id))).scalar()

    def check_run(self, run_id: int) -> None:
        """Raise a clear error when there is no run with this id."""
        with self.connect() as conn:
            if conn.execute(sa.select(runs.c.id).where(runs.c.id == run_id)).first() is None:
                known = [r for (r,) in conn.execute(sa.select(runs.c.id).order_by(runs.c.id))]
                raise DatabaseError(f"There is no run {run_id} in {redact_url(self.url)}.",
                                    f"Use one of the runs there: {known or 'none yet'} (`finer-traits db summary`).")

    # -- results -------------------------------------------------------------------------------------

    def completed(self, run_id: int) -> dict[str, set[str]]:
        """For a run: image sha256 -> the contrast species already stored for it."""
        c = taxa.alias("contrast")
        q = (sa.select(images.c.sha256, c.c.scientific_name).select_from(results)
             .join(images, images.c.id == results.c.image_id).join(c, c.c.id == results.c.contrast_taxon_id)
             .where(results.c.run_id == run_id))
        done: dict[str, set[str]] = {}
        with self.connect() as conn:
            for sha, contrast in conn.execute(q):
                done.setdefault(sha, set()).add(contrast)
        return done

    def labelled(self, run_id: int) -> dict[str, dict[str, int]]:
        """For a run: image sha256 -> {species it was described as: how many of those assertions are curated}."""
        q = (sa.select(images.c.sha256, taxa.c.scientific_name, sa.func.count(sa.distinct(curation.c.assertion_id)))
             .select_from(results).join(images, images.c.id == results.c.image_id)
             .join(taxa, taxa.c.id == results.c.taxon_id)
             .outerjoin(trait_assertions, trait_assertions.c.result_id == results.c.id)
             .outerjoin(curation, curation.c.assertion_id == trait_assertions.c.id)
             .where(results.c.run_id == run_id).group_by(images.c.sha256, taxa.c.scientific_name))
        out: dict[str, dict[str, int]] = {}
        with self.connect() as conn:
            for sha, species, curated in conn.execute(q):
                out.setdefault(sha, {})[species] = int(curated)
        return out

    def write_image_results(self, run_id: int, image: ImageRecord, results_: Iterable[Any],
                            method: str | None = None, expert_source: str | None = None,
                            item_key: str | None = None) -> list[int]:
        """Store all describe() results of one image in one transaction; returns the result ids.

        A result already stored for (run, image, contrast) is left as it is, so calling this again is harmless.
        When item_key is given, an earlier error recorded for it is cleared in the same transaction.
        """
        return self.write_image_results_counted(run_id, image, results_, method, expert_source, item_key)[0]

    def write_image_results_counted(self, run_id: int, image: ImageRecord, results_: Iterable[Any],
                                    method: str | None = None, expert_source: str | None = None,
                                    item_key: str | None = None, relabel: bool = False) -> tuple[list[int], int]:
        """As write_image_results, and also how many results this call wrote (another writer may have won).

        relabel=True: the photo's label changed, so this run's results for it under another species are
        replaced (uncurated ones only: batch refuses curated ones before describing) and the image takes
        the new label, all in the same transaction.
        """
        records = [normalise_result(r) for r in results_]
        ids, new = [], 0
        with self.begin() as conn:
            image_id = self.ensure_image(conn, image)
            if relabel and image.species:
                self._drop_other_labels(conn, run_id, image_id, self.ensure_taxon(conn, image.species))
            source_id = self.ensure_expert_source(conn, expert_source) if expert_source else None
            for rec in records:
                result_id, inserted = self._write_result(conn, run_id, image_id, rec, method, source_id)
                ids.append(result_id)
                new += inserted
            if item_key is not None:
                conn.execute(image_errors.delete().where(sa.and_(image_errors.c.run_id == run_id,
                                                                 image_errors.c.item_key == item_key)))
        return ids, new

    def _drop_other_labels(self, conn: Connection, run_id: int, image_id: int, taxon_id: int) -> None:
        stale = sa.select(results.c.id).where(sa.and_(results.c.run_id == run_id, results.c.image_id == image_id,
                                                      results.c.taxon_id != taxon_id))
        conn.execute(trait_assertions.delete().where(trait_assertions.c.result_id.in_(stale)))
        conn.execute(regions.delete().where(regions.c.result_id.in_(stale)))
        conn.execute(results.delete().where(results.c.id.in_(stale.scalar_subquery())))
        conn.execute(images.update().where(images.c.id == image_id).values(taxon_id=taxon_id))

    def _write_result(self, conn: Connection, run_id: int, image_id: int, rec: ResultRecord,
                      method: str | None, source_id: int | None) -> tuple[int, bool]:
        taxon_id = self.ensure_taxon(conn, rec.target_species)
        contrast_id = self.ensure_taxon(conn, rec.contrast_species)
        now = utcnow()
        # ON CONFLICT DO NOTHING: another process that stored this result first wins, and we keep its rows.
        result_id = conn.execute(self._insert(results).values(
            run_id=run_id, image_id=image_id, taxon_id=taxon_id, contrast_taxon_id=contrast_id,
            target_probability=rec.target_probability, uncertain=rec.uncertain, text=rec.text,
            warnings=rec.warnings or None, created_at=now)
            .on_conflict_do_nothing(index_elements=["run_id", "image_id", "contrast_taxon_id"])
            .returning(results.c.id)).scalar()
        if result_id is None:
            return conn.execute(sa.select(results.c.id).where(sa.and_(
                results.c.run_id == run_id, results.c.image_id == image_id,
                results.c.contrast_taxon_id == contrast_id))).scalar_one(), False
        region_ids: dict[int, int] = {}
        for reg in rec.regions:
            x0, y0, x1, y1 = reg.box
            region_ids[reg.index] = conn.execute(regions.insert().values(
                result_id=result_id, region_index=reg.index, x0=x0, y0=y0, x1=x1, y1=y1, mass=reg.mass,
                area_fraction=reg.area_fraction, peak=reg.peak, location=reg.location)
                .returning(regions.c.id)).scalar_one()
        if method is None:
            method = method_text(rec.provenance)
        for a in rec.assertions:
            trait_id = self.ensure_trait(conn, a.part, a.attribute, a.value, a.side, a.trait_text or a.phrase)
            conn.execute(trait_assertions.insert().values(
                result_id=result_id, rank=a.rank, taxon_id=taxon_id, contrast_taxon_id=contrast_id,
                trait_id=trait_id, region_id=region_ids.get(a.region) if a.region is not None else None,
                phrase=a.phrase, score=a.score, contrast_score=a.contrast_score,
                direction=None if a.direction is None else str(a.direction), confidence=a.confidence,
                method=method, determined_by_run_id=run_id, determined_date=now, expert_status=a.expert_status,
                expert_source_id=source_id if a.expert_status else None, remarks=a.remarks))
        return result_id, True

    # -- reading for the web app ---------------------------------------------------------------------

    def result_detail(self, result_id: int) -> dict | None:
        """One result with its photo, species pair, run and regions (None when there is no such result)."""
        t, c = taxa.alias("t"), taxa.alias("c")
        q = (sa.select(results, images.c.sha256, images.c.path.label("image_path"), images.c.width,
                       images.c.height, images.c.licence, t.c.scientific_name.label("taxon"),
                       c.c.scientific_name.label("contrast"), runs.c.classifier, runs.c.classifier_sha256,
                       runs.c.scorer, runs.c.gamma, runs.c.configuration)
             .join(images, images.c.id == results.c.image_id).join(t, t.c.id == results.c.taxon_id)
             .join(c, c.c.id == results.c.contrast_taxon_id).join(runs, runs.c.id == results.c.run_id)
             .where(results.c.id == result_id))
        with self.connect() as conn:
            row = conn.execute(q).first()
            if row is None:
                return None
            regs = conn.execute(sa.select(regions).where(regions.c.result_id == result_id)
                                .order_by(regions.c.region_index)).all()
        return {**row._mapping, "regions": [dict(r._mapping) for r in regs]}

    def results_page(self, taxon: str | None = None, contrast: str | None = None, run_id: int | None = None,
                     offset: int = 0, limit: int = 50) -> tuple[list[dict], int]:
        """Photos (results: photo x contrast in a run), newest first, one page of them and how many match."""
        t, c = taxa.alias("t"), taxa.alias("c")
        n_traits = (sa.select(sa.func.count()).where(trait_assertions.c.result_id == results.c.id)
                    .scalar_subquery())
        q = (sa.select(results.c.id, results.c.run_id, results.c.image_id, results.c.target_probability,
                       results.c.uncertain, images.c.path.label("image_path"), t.c.scientific_name.label("taxon"),
                       c.c.scientific_name.label("contrast"), n_traits.label("n_traits"))
             .join(images, images.c.id == results.c.image_id).join(t, t.c.id == results.c.taxon_id)
             .join(c, c.c.id == results.c.contrast_taxon_id))
        if taxon:
            q = q.where(sa.func.lower(t.c.scientific_name) == display_name(taxon).lower())
        if contrast:
            q = q.where(sa.func.lower(c.c.scientific_name) == display_name(contrast).lower())
        if run_id is not None:
            q = q.where(results.c.run_id == run_id)
        count = sa.select(sa.func.count()).select_from(q.with_only_columns(results.c.id).subquery())
        with self.connect() as conn:
            total = int(conn.execute(count).scalar_one())
            rows = conn.execute(q.order_by(results.c.id.desc()).offset(max(0, offset)).limit(limit)).all()
        return [dict(r._mapping) for r in rows], total

    def species_pairs(self) -> list[dict]:
        """Each (target, contrast) species pair with how many photos and trait assertions it has."""
        t, c = taxa.alias("t"), taxa.alias("c")
        q = (sa.select(t.c.scientific_name.label("taxon"), c.c.scientific_name.label("contrast"),
                       sa.func.count(sa.distinct(results.c.image_id)).label("photos"),
                       sa.func.count(sa.distinct(results.c.id)).label("results"))
             .select_from(results).join(t, t.c.id == results.c.taxon_id)
             .join(c, c.c.id == results.c.contrast_taxon_id)
             .group_by(t.c.scientific_name, c.c.scientific_name).order_by(t.c.scientific_name, c.c.scientific_name))
        with self.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(q)]

    def taxon_names(self) -> list[str]:
        """Every species name in the database, sorted."""
        with self.connect() as conn:
            return list(conn.execute(sa.select(taxa.c.scientific_name).order_by(taxa.c.scientific_name)).scalars())

    # -- errors --------------------------------------------------------------------------------------

    def record_error(self, run_id: int, item_key: str, image_path: str, message: str, *,
                     species: str | None = None, manifest_row: int | None = None,
                     error_code: str | None = None) -> None:
        """Record (or update) the error of one batch item; a later success clears it."""
        now = utcnow()
        with self.begin() as conn:
            row = conn.execute(sa.select(image_errors.c.id, image_errors.c.attempts).where(sa.and_(
                image_errors.c.run_id == run_id, image_errors.c.item_key == item_key))).first()
            if row is None:
                conn.execute(image_errors.insert().values(
                    run_id=run_id, item_key=item_key, image_path=image_path, species=species,
                    manifest_row=manifest_row, error_code=error_code, message=message, attempts=1,
                    first_seen=now, last_seen=now))
            else:
                conn.execute(image_errors.update().where(image_errors.c.id == row.id).values(
                    message=message, error_code=error_code, attempts=row.attempts + 1, last_seen=now,
                    manifest_row=manifest_row, species=species))

    def clear_errors(self, run_id: int, item_keys: Iterable[str]) -> None:
        """Forget the errors of these items (rows that are fine now)."""
        keys = sorted(set(item_keys))
        with self.begin() as conn:
            for start in range(0, len(keys), 500):  # stay under SQLite's bound-parameter limit
                conn.execute(image_errors.delete().where(sa.and_(image_errors.c.run_id == run_id,
                                                                 image_errors.c.item_key.in_(keys[start:start + 500]))))

    def errors(self, run_id: int | None = None) -> list[dict]:
        """Recorded per-image errors (of one run, or all), in manifest order."""
        q = sa.select(image_errors).order_by(image_errors.c.run_id, image_errors.c.manifest_row, image_errors.c.id)
        if run_id is not None:
            q = q.where(image_errors.c.run_id == run_id)
        with self.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(q)]

    def counts(self, run_id: int | None = None) -> dict[str, int]:
        """Row counts of the main tables (of one run where the table belongs to runs)."""
        def n(table: sa.Table, where: Any = None) -> int:
            q = sa.select(sa.func.count()).select_from(table)
            return conn.execute(q.where(where) if where is not None else q).scalar_one()

        with self.connect() as conn:
            rid = run_id
            return {
                "runs": n(runs) if rid is None else 1,
                "images": n(images),
                "results": n(results, None if rid is None else results.c.run_id == rid),
                "regions": n(regions, None if rid is None else regions.c.result_id.in_(
                    sa.select(results.c.id).where(results.c.run_id == rid))),
                "trait_assertions": n(trait_assertions, None if rid is None
                                      else trait_assertions.c.determined_by_run_id == rid),
                "image_errors": n(image_errors, None if rid is None else image_errors.c.run_id == rid),
            }


def method_text(provenance: Mapping[str, Any]) -> str:
    """measurementMethod text from a result's provenance: CAM method, gamma, scorer, classifier."""
    parts = []
    cam = _get(provenance, "cam_method", "method")
    if cam:
        gamma = _get(provenance, "gamma")
        parts.append(f"{cam} class-activation map" + (f" (gamma={gamma})" if gamma is not None else ""))
    scorer = _get(provenance, "scorer", "scorer_id")
    if scorer:
        parts.append(f"phrases scored by {scorer}")
    clf = _get(provenance, "classifier", "classifier_id", "model")
    if isinstance(clf, Mapping):
        clf = " ".join(str(v) for v in (clf.get("kind"), clf.get("backbone")) if v)
    if clf:
        parts.append(f"classifier {clf}")
    return "finer-traits: " + ("; ".join(parts) if parts else "generated trait difference")


def _sqlite_connect(dbapi_connection: Any, _record: Any) -> None:
    # The sqlite3 module's own transaction handling commits before DDL and never takes the write lock early;
    # SQLAlchemy's documented recipe hands transactions to us, so migrations are atomic too.
    dbapi_connection.isolation_level = None
    cur = dbapi_connection.cursor()
    cur.execute("PRAGMA foreign_keys=ON")
    cur.close()


def _sqlite_begin(conn: Connection) -> None:
    # Writers take the lock at BEGIN, so a busy database waits (timeout) instead of failing half way.
    conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.info.pop("write", False) else "BEGIN")
