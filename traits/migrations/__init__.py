"""Schema versions of the trait database, applied with Alembic from code (no alembic.ini for users).

Why Alembic rather than a hand-kept list of SQL scripts: it is already a dependency, it records the version in
the database itself, and its batch mode rewrites SQLite tables for the ALTERs SQLite lacks, so one migration
file serves SQLite and PostgreSQL alike. Add a schema change as a new file in versions/ (`down_revision` = the
previous head) and change the tables in traits/db.py to match; tests/test_db.py checks that they agree.
"""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection, Engine

from traits.errors import DatabaseError

HERE = Path(__file__).resolve().parent


def alembic_config(connection: Connection | None = None) -> Config:
    """An Alembic Config pointing at this folder, optionally bound to an open connection."""
    cfg = Config()
    cfg.set_main_option("script_location", str(HERE))
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


def head_revision() -> str:
    """The newest schema revision this code knows."""
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def current_revision(conn: Connection) -> str | None:
    """The schema revision recorded in the database (None for a new, empty one)."""
    return MigrationContext.configure(conn).get_current_revision()


def upgrade(engine: Engine) -> str:
    """Bring the database to the newest schema (a no-op when it is there already); returns the revision."""
    script = ScriptDirectory.from_config(alembic_config())
    head = script.get_current_head()
    with engine.connect() as conn:
        current = current_revision(conn)
        tables = set(sa.inspect(conn).get_table_names())
    if current == head:
        return head
    known = {rev.revision for rev in script.walk_revisions()}
    if current is not None and current not in known:
        raise DatabaseError(f"The database is at schema revision {current!r}, which this finer-traits "
                            f"({head!r}) does not know: it was written by a newer version.",
                            "Upgrade finer-traits (`pip install -U finer-traits`), or use another --db.")
    if current is None and tables - {"alembic_version"}:
        shown = ", ".join(sorted(tables)[:6])
        raise DatabaseError(f"The database already holds tables that finer-traits did not create ({shown}).",
                            "Point --db at a new file or an empty database.")
    with engine.begin() as conn:
        command.upgrade(alembic_config(conn), "head")
    return head
