"""`finer-traits serve`: a local web app to browse the trait database, look at each trait's evidence, curate,
describe new photos, compare species and export (FastAPI + Jinja2 templates + a little plain JavaScript).

It reads and writes the same database as `batch` and `db` through traits.db and traits.review (one schema, the
same append-only curation log). The optional `web` extra installs FastAPI, uvicorn and python-multipart.
"""

from __future__ import annotations

from pipeline.web.app import WebConfig, create_app

__all__ = ["WebConfig", "create_app"]
