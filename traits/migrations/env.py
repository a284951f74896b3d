"""Alembic environment: runs on the connection handed over by traits.migrations.upgrade (no ini file)."""

from __future__ import annotations

from alembic import context

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("Run migrations through traits.migrations.upgrade(engine), which supplies the connection.")
context.configure(connection=connection, target_metadata=None, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
