"""Curation edits: a curator may correct an assertion's trait (part / attribute / value / direction).

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-03

The corrected fields sit on the curation row itself (NULL: as the machine said), so an edit is one more
append-only decision like accept or reject and the machine's evidence is still never changed. Nullable columns
are added in place on SQLite and PostgreSQL alike; older databases are upgraded on first use.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

COLUMNS = (("part", 255), ("attribute", 64), ("value", 255), ("direction", 16))


def upgrade() -> None:
    """Add the corrected trait fields to curation."""
    for name, length in COLUMNS:
        op.add_column("curation", sa.Column(name, sa.String(length)))


def downgrade() -> None:
    """Drop them again (batch mode: SQLite cannot drop columns in place on every version)."""
    with op.batch_alter_table("curation") as batch:
        for name, _ in COLUMNS:
            batch.drop_column(name)
