"""Curation of machine trait assertions: accept, reject or reset to pending, kept as an append-only log.

The web app (`finer-traits serve`) calls the same functions as `finer-traits db review`. A curation never changes
an assertion's evidence; the newest curation row of an assertion is its status (none yet: pending).
"""

from __future__ import annotations

import getpass
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

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
from traits.errors import BadValueError, MissingValueError, StaleEditError, UnknownChoiceError


def latest_curation() -> sa.Subquery:
    """One row per curated assertion: its newest curation (id = the assertion's version, status, curator, when,
    note and any corrected trait fields)."""
    newest = (sa.select(curation.c.assertion_id, sa.func.max(curation.c.id).label("id"))
              .group_by(curation.c.assertion_id).subquery("newest"))
    return (sa.select(curation.c.assertion_id, curation.c.id, curation.c.status, curation.c.curator,
                      curation.c.curated_at, curation.c.note, curation.c.part, curation.c.attribute,
                      curation.c.value, curation.c.direction)
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


EDIT_FIELDS = ("part", "attribute", "value", "direction")
DIRECTIONS = ("+", "-")


def _clean_edit(edit: Mapping[str, str | None] | None) -> dict[str, str]:
    """The corrected trait fields that were given (blank ones dropped), checked."""
    out = {k: str(v).strip() for k, v in (edit or {}).items() if v is not None and str(v).strip()}
    unknown = set(out) - set(EDIT_FIELDS)
    if unknown:
        raise BadValueError(f"Cannot edit {', '.join(sorted(unknown))} of a trait.",
                            f"Edit only {', '.join(EDIT_FIELDS)}.")
    if "direction" in out and out["direction"] not in DIRECTIONS:
        raise BadValueError(f"Direction {out['direction']!r} is not + or -.",
                            "Use + (the target shows it more) or - (less).")
    for key, limit in (("part", 255), ("attribute", 64), ("value", 255)):
        if len(out.get(key, "")) > limit:
            raise BadValueError(f"The {key} is longer than {limit} characters.", f"Shorten the {key}.")
    return out


def set_status(db: TraitDB, assertion_ids: Iterable[int], status: str, curator: str | None = None,
               note: str | None = None, *, expected: Mapping[int, int] | None = None,
               edit: Mapping[str, str | None] | None = None) -> int:
    """Record status for each assertion in one transaction; returns how many changed (unchanged ones are skipped).

    expected: assertion id -> the version (latest curation id, 0 for none) the curator saw; when another decision
    came in since, StaleEditError is raised and nothing is written (two curators never overwrite each other).
    edit: corrected trait fields (part / attribute / value / direction); an edit is always recorded.
    """
    if status not in CURATION_STATUSES:
        raise UnknownChoiceError(f"Unknown curation status {status!r}.", f"Use one of {', '.join(CURATION_STATUSES)}.")
    ids = sorted({int(i) for i in assertion_ids})
    if not ids:
        raise MissingValueError("No assertion ids given.", "Pass one or more ids from `finer-traits db review list`.")
    curator = (curator or default_curator()).strip()
    if not curator:
        raise BadValueError("The curator name is empty.", "Pass --by NAME.")
    fields = _clean_edit(edit)
    latest = latest_curation()
    with db.begin() as conn:
        # FOR UPDATE (PostgreSQL; SQLite's BEGIN IMMEDIATE already serialises writers): two curators deciding
        # on one assertion at once take turns, so the version check below cannot be raced.
        found = set(conn.execute(sa.select(trait_assertions.c.id).where(trait_assertions.c.id.in_(ids))
                                 .with_for_update()).scalars())
        missing = [i for i in ids if i not in found]
        if missing:
            raise DatabaseError(f"No trait assertion with id {', '.join(map(str, missing[:10]))} in {db!r}.",
                                "List assertions with `finer-traits db review list`; nothing was changed.")
        rows = {r.assertion_id: r for r in conn.execute(sa.select(latest).where(latest.c.assertion_id.in_(ids)))}
        if expected is not None:
            _check_versions(ids, rows, expected)
        changed = [i for i in ids if fields or (rows[i].status if i in rows else "pending") != status]
        now = utcnow()
        if changed:
            conn.execute(curation.insert(), [{"assertion_id": i, "status": status, "curator": curator,
                                              "curated_at": now, "note": note,
                                              **{k: fields.get(k) for k in EDIT_FIELDS}} for i in changed])
    return len(changed)


def _check_versions(ids: list[int], rows: Mapping[int, Any], expected: Mapping[int, int]) -> None:
    for i in ids:
        seen = int(expected.get(i, 0) or 0)
        row = rows.get(i)
        if (row.id if row is not None else 0) != seen:
            who = f"{row.status} by {row.curator} at {as_utc(row.curated_at):%Y-%m-%d %H:%M:%S} UTC" if row else "reset"
            raise StaleEditError(f"Trait assertion {i} was curated by someone else after you opened it (now {who}); "
                                 "your decision was not saved.",
                                 "Reload the page to see their decision, then decide again.")


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


CONFIDENCE_ORDER = ("strong", "moderate", "weak")
EXPERT_STATUSES = ("confirmed", "contradicted", "new")


@dataclass(frozen=True)
class AssertionFilter:
    """Which assertions to list: by run, species, pair, photo, curation status, expert status, least confidence.

    expert_status 'none' means not checked against an expert list; min_confidence 'moderate' keeps strong and
    moderate ones.
    """

    run_id: int | None = None
    taxon: str | None = None
    contrast: str | None = None
    status: str | None = None
    expert_status: str | None = None
    min_confidence: str | None = None
    image_id: int | None = None
    result_id: int | None = None
    assertion_id: int | None = None

    def __post_init__(self) -> None:
        for name, value, allowed in (("curation status", self.status, CURATION_STATUSES),
                                     ("expert status", self.expert_status, (*EXPERT_STATUSES, "none")),
                                     ("confidence", self.min_confidence, CONFIDENCE_ORDER)):
            if value is not None and value not in allowed:
                raise UnknownChoiceError(f"Unknown {name} {value!r}.", f"Use one of {', '.join(allowed)}.")


def _assertion_query(f: AssertionFilter, columns: Sequence[Any] | None = None) -> sa.Select:
    """The joined assertion query with f applied (columns: what to select; default the listing's columns)."""
    latest = latest_curation()
    t, c = taxa.alias("t"), taxa.alias("c")
    ta = trait_assertions
    state = sa.func.coalesce(latest.c.status, "pending")
    if columns is None:
        columns = [ta.c.id, ta.c.determined_by_run_id.label("run_id"), ta.c.result_id, results.c.image_id,
                   t.c.scientific_name.label("taxon"), c.c.scientific_name.label("contrast"),
                   images.c.path.label("image"), ta.c.rank, traits.c.part, traits.c.attribute, traits.c.value,
                   traits.c.side, ta.c.phrase, ta.c.score, ta.c.contrast_score, ta.c.direction, ta.c.confidence,
                   ta.c.expert_status, ta.c.region_id, state.label("status"), latest.c.curator,
                   latest.c.curated_at, latest.c.note, sa.func.coalesce(latest.c.id, 0).label("version"),
                   latest.c.part.label("curated_part"), latest.c.attribute.label("curated_attribute"),
                   latest.c.value.label("curated_value"), latest.c.direction.label("curated_direction")]
    q = (sa.select(*columns).select_from(ta)
         .join(results, results.c.id == ta.c.result_id)
         .join(images, images.c.id == results.c.image_id)
         .join(traits, traits.c.id == ta.c.trait_id)
         .join(t, t.c.id == ta.c.taxon_id).join(c, c.c.id == ta.c.contrast_taxon_id)
         .outerjoin(latest, latest.c.assertion_id == ta.c.id))
    if f.run_id is not None:
        q = q.where(ta.c.determined_by_run_id == f.run_id)
    if f.status is not None:
        q = q.where(state == f.status)
    if f.taxon:
        q = q.where(sa.func.lower(t.c.scientific_name) == f.taxon.replace("_", " ").strip().lower())
    if f.contrast:
        q = q.where(sa.func.lower(c.c.scientific_name) == f.contrast.replace("_", " ").strip().lower())
    if f.expert_status == "none":
        q = q.where(ta.c.expert_status.is_(None))
    elif f.expert_status is not None:
        q = q.where(ta.c.expert_status == f.expert_status)
    if f.min_confidence is not None:
        q = q.where(ta.c.confidence.in_(CONFIDENCE_ORDER[:CONFIDENCE_ORDER.index(f.min_confidence) + 1]))
    if f.image_id is not None:
        q = q.where(results.c.image_id == f.image_id)
    if f.result_id is not None:
        q = q.where(ta.c.result_id == f.result_id)
    if f.assertion_id is not None:
        q = q.where(ta.c.id == f.assertion_id)
    return q


def browse(db: TraitDB, f: AssertionFilter = AssertionFilter(), offset: int = 0, limit: int = 50) -> list[dict]:
    """One page of assertions matching f, newest first (by id: an index scan, fast on large databases)."""
    q = _assertion_query(f).order_by(trait_assertions.c.id.desc()).offset(max(0, offset)).limit(limit)
    with db.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(q)]


def count_assertions(db: TraitDB, f: AssertionFilter = AssertionFilter()) -> int:
    """How many assertions match f."""
    q = sa.select(sa.func.count()).select_from(_assertion_query(f, [trait_assertions.c.id]).subquery())
    with db.connect() as conn:
        return int(conn.execute(q).scalar_one())


def assertion_ids(db: TraitDB, f: AssertionFilter = AssertionFilter()) -> list[int]:
    """Ids of every assertion matching f (for exporting the current filter)."""
    with db.connect() as conn:
        return list(conn.execute(_assertion_query(f, [trait_assertions.c.id])).scalars())


def histories(db: TraitDB, assertion_ids: Iterable[int]) -> dict[int, list[dict]]:
    """Every curation of each of these assertions, oldest first (one query for a whole photo page)."""
    ids = sorted({int(i) for i in assertion_ids})
    out: dict[int, list[dict]] = {i: [] for i in ids}
    if not ids:
        return out
    with db.connect() as conn:
        for r in conn.execute(sa.select(curation).where(curation.c.assertion_id.in_(ids)).order_by(curation.c.id)):
            out[r.assertion_id].append({**r._mapping, "curated_at": as_utc(r.curated_at)})
    return out


def list_assertions(db: TraitDB, run_id: int | None = None, status: str | None = None, taxon: str | None = None,
                    contrast: str | None = None, limit: int | None = 50) -> list[dict]:
    """Assertions with their trait, species pair, evidence and current curation status, best rank first."""
    f = AssertionFilter(run_id=run_id, status=status, taxon=taxon, contrast=contrast)
    q = _assertion_query(f)
    cols = q.selected_columns
    q = q.order_by(cols.run_id, cols.taxon, cols.contrast, cols.image, cols.rank)
    if limit:
        q = q.limit(limit)
    with db.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(q)]
