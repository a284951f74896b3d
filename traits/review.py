"""Curation of machine trait assertions: accept, reject or reset to pending, kept as an append-only log.

The web UI planned for later calls the same functions as `finer-traits db review`. A curation never changes
an assertion's evidence; the newest curation row of an assertion is its status (none yet: pending).
"""

from __future__ import annotations

import getpass
import os
from collections.abc import Iterable

import sqlalchemy as sa

from traits.db import (
    CURATION_STATUSES,
    DatabaseError,
    TraitDB,
    as_utc,
    curation,
    images,
    results,
    taxa,
    trait_assertions,
    traits,
    utcnow,
)
from traits.errors import BadValueError, MissingValueError, UnknownChoiceError


def latest_curation() -> sa.Subquery:
    """One row per curated assertion: its newest curation (status, curator, curated_at, note)."""
    newest = (sa.select(curation.c.assertion_id, sa.func.max(curation.c.id).label("id"))
              .group_by(curation.c.assertion_id).subquery("newest"))
    return (sa.select(curation.c.assertion_id, curation.c.status, curation.c.curator, curation.c.curated_at,
                      curation.c.note)
            .join(newest, newest.c.id == curation.c.id).subquery("latest_curation"))


def default_curator() -> str:
    """The curator name when none is given: $FINER_TRAITS_CURATOR, else the login name."""
    name = os.environ.get("FINER_TRAITS_CURATOR")
    if name:
        return name
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no login name in some containers (no passwd entry for the user id)
        return "unknown"


def set_status(db: TraitDB, assertion_ids: Iterable[int], status: str, curator: str | None = None,
               note: str | None = None) -> int:
    """Record status for each assertion in one transaction; returns how many changed (unchanged ones are skipped)."""
    if status not in CURATION_STATUSES:
        raise UnknownChoiceError(f"Unknown curation status {status!r}.", f"Use one of {', '.join(CURATION_STATUSES)}.")
    ids = sorted({int(i) for i in assertion_ids})
    if not ids:
        raise MissingValueError("No assertion ids given.", "Pass one or more ids from `finer-traits db review list`.")
    curator = (curator or default_curator()).strip()
    if not curator:
        raise BadValueError("The curator name is empty.", "Pass --by NAME.")
    latest = latest_curation()
    with db.begin() as conn:
        found = set(conn.execute(sa.select(trait_assertions.c.id).where(trait_assertions.c.id.in_(ids))).scalars())
        missing = [i for i in ids if i not in found]
        if missing:
            raise DatabaseError(f"No trait assertion with id {', '.join(map(str, missing[:10]))} in {db!r}.",
                                "List assertions with `finer-traits db review list`; nothing was changed.")
        current = dict(conn.execute(sa.select(latest.c.assertion_id, latest.c.status)
                                    .where(latest.c.assertion_id.in_(ids))).all())
        changed = [i for i in ids if current.get(i, "pending") != status]
        now = utcnow()
        if changed:
            conn.execute(curation.insert(), [{"assertion_id": i, "status": status, "curator": curator,
                                              "curated_at": now, "note": note} for i in changed])
    return len(changed)


def accept(db: TraitDB, assertion_ids: Iterable[int], curator: str | None = None, note: str | None = None) -> int:
    """Mark assertions accepted by curator."""
    return set_status(db, assertion_ids, "accepted", curator, note)


def reject(db: TraitDB, assertion_ids: Iterable[int], curator: str | None = None, note: str | None = None) -> int:
    """Mark assertions rejected by curator."""
    return set_status(db, assertion_ids, "rejected", curator, note)


def reset(db: TraitDB, assertion_ids: Iterable[int], curator: str | None = None, note: str | None = None) -> int:
    """Put assertions back to pending (the earlier decisions stay in the history)."""
    return set_status(db, assertion_ids, "pending", curator, note)


def history(db: TraitDB, assertion_id: int) -> list[dict]:
    """Every curation of one assertion, oldest first."""
    with db.connect() as conn:
        rows = conn.execute(sa.select(curation).where(curation.c.assertion_id == assertion_id)
                            .order_by(curation.c.id)).all()
    return [{**r._mapping, "curated_at": as_utc(r.curated_at)} for r in rows]


def list_assertions(db: TraitDB, run_id: int | None = None, status: str | None = None, taxon: str | None = None,
                    contrast: str | None = None, limit: int | None = 50) -> list[dict]:
    """Assertions with their trait, species pair, evidence and current curation status, best rank first."""
    if status is not None and status not in CURATION_STATUSES:
        raise UnknownChoiceError(f"Unknown curation status {status!r}.", f"Use one of {', '.join(CURATION_STATUSES)}.")
    latest = latest_curation()
    t, c = taxa.alias("t"), taxa.alias("c")
    state = sa.func.coalesce(latest.c.status, "pending")
    q = (sa.select(trait_assertions.c.id, trait_assertions.c.determined_by_run_id.label("run_id"),
                   t.c.scientific_name.label("taxon"), c.c.scientific_name.label("contrast"),
                   images.c.path.label("image"), trait_assertions.c.rank, traits.c.part, traits.c.attribute,
                   traits.c.value, trait_assertions.c.phrase, trait_assertions.c.score,
                   trait_assertions.c.contrast_score, trait_assertions.c.direction, trait_assertions.c.confidence,
                   trait_assertions.c.expert_status, state.label("status"), latest.c.curator)
         .select_from(trait_assertions)
         .join(results, results.c.id == trait_assertions.c.result_id)
         .join(images, images.c.id == results.c.image_id)
         .join(traits, traits.c.id == trait_assertions.c.trait_id)
         .join(t, t.c.id == trait_assertions.c.taxon_id).join(c, c.c.id == trait_assertions.c.contrast_taxon_id)
         .outerjoin(latest, latest.c.assertion_id == trait_assertions.c.id)
         .order_by(trait_assertions.c.determined_by_run_id, t.c.scientific_name, c.c.scientific_name,
                   images.c.path, trait_assertions.c.rank))
    if run_id is not None:
        q = q.where(trait_assertions.c.determined_by_run_id == run_id)
    if status is not None:
        q = q.where(state == status)
    if taxon:
        q = q.where(sa.func.lower(t.c.scientific_name) == taxon.replace("_", " ").strip().lower())
    if contrast:
        q = q.where(sa.func.lower(c.c.scientific_name) == contrast.replace("_", " ").strip().lower())
    if limit:
        q = q.limit(limit)
    with db.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(q)]
