"""`finer-traits db ...`: export, summarise, review and inspect the trait database.

The traits.db, export, review and summary modules need SQLAlchemy and pandas: each command imports what it uses
when it runs, so that these libraries stay out of the CLI's start.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from pipeline.cli import app

console = Console()
db_app = typer.Typer(help="Export, summarise and review the trait database.", no_args_is_help=True)
review_app = typer.Typer(help="Accept or reject trait assertions (curation never changes the machine's evidence).",
                         no_args_is_help=True)
app.add_typer(db_app, name="db")
db_app.add_typer(review_app, name="review")

DbOpt = Annotated[str | None, typer.Option("--db", help="Database URL or SQLite file (default: $FINER_TRAITS_DB "
                                                           "or sqlite:///finer-traits.sqlite).")]
_ID_MAX = 2**63 - 1  # the largest id the databases store: a longer number is a typo, said at parse time
RunOpt = Annotated[int | None, typer.Option("--run", min=1, max=_ID_MAX, help="Only this run (default: all runs).")]


def _open(db: str | None):
    from traits.db import TraitDB

    return TraitDB(db, create=False)


@db_app.command("export")
def export(
    format: Annotated[str, typer.Option("--format", "-f", help="csv, parquet or dwca (Darwin Core Archive zip).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="File to write.")],
    db: DbOpt = None,
    run: RunOpt = None,
) -> None:
    """Export trait assertions as a tidy long table (csv, parquet) or a Darwin Core Archive (dwca)."""
    from traits.export import assertions_frame
    from traits.export import export as do_export

    with _open(db) as tdb:
        path = do_export(tdb, format, out, run)
        n = len(assertions_frame(tdb, run))
    console.print(f"Wrote {n} trait assertions to {path} ({format}).")


@db_app.command("summary")
def summary(
    db: DbOpt = None,
    run: RunOpt = None,
    top: Annotated[int, typer.Option(min=1, help="Traits shown per species pair.")] = 10,
    out: Annotated[Path | None, typer.Option(help="Also write the full summary as CSV here.")] = None,
) -> None:
    """Per species pair: the traits found, how often, agreement with experts and curation state."""
    from traits.export import neutralise_formulas
    from traits.io import atomic_write, output_file
    from traits.summary import summarise

    with _open(db) as tdb:
        if run is not None:
            tdb.check_run(run)
        frame = summarise(tdb, run)
        counts = tdb.counts(run)
    console.print(f"{counts['results']} photo descriptions, {counts['trait_assertions']} trait assertions, "
                  f"{counts['image_errors']} photos with errors" + (f" in run {run}." if run else "."))
    if frame.empty:
        console.print("No trait assertions yet: run `finer-traits batch` first.")
        return
    for (a, b), group in frame.groupby(["scientific_name", "contrast_scientific_name"], sort=False):
        pair_n = int(group.pair_images.iloc[0])
        table = Table(title=f"{a} vs {b} ({pair_n} photos)", title_justify="left")
        for col in ("trait", "dir", "photos", "freq", "score", "contrast", "expert agree", "acc/rej/pend"):
            table.add_column(col)
        for r in group.head(top).itertuples():
            trait = " ".join(x for x in (r.side, r.part, r.attribute, r.value) if x)
            agree = "-" if r.expert_agreement != r.expert_agreement else f"{r.expert_agreement:.0%}"
            table.add_row(trait, r.direction, str(r.images), f"{r.frequency:.0%}", f"{r.mean_score:.3f}",
                          "-" if r.mean_contrast_score != r.mean_contrast_score else f"{r.mean_contrast_score:.3f}",
                          agree, f"{r.accepted}/{r.rejected}/{r.pending}")
        console.print(table)
    if out is not None:
        atomic_write(output_file(out), lambda p: neutralise_formulas(frame).to_csv(p, index=False))
        console.print(f"Full summary written to {out}.")


@db_app.command("info")
def info(db: DbOpt = None) -> None:
    """Schema version, runs and row counts."""
    from traits.db import as_utc

    with _open(db) as tdb:
        console.print(f"{tdb!r}, schema revision {tdb.schema_version()}")
        table = Table(title="Runs")
        for col in ("run", "status", "started", "ended", "classifier", "scorer", "cam", "results", "errors"):
            table.add_column(col)
        for r in tdb.runs():
            c = tdb.counts(r["id"])
            started, ended = as_utc(r["started_at"]), as_utc(r["ended_at"])
            table.add_row(str(r["id"]), r["status"], f"{started:%Y-%m-%d %H:%M}",
                          f"{ended:%Y-%m-%d %H:%M}" if ended else "", r["classifier"], r["scorer"] or "",
                          r["cam_method"] or "", str(c["results"]), str(c["image_errors"]))
        console.print(table)


@db_app.command("errors")
def errors(db: DbOpt = None, run: RunOpt = None) -> None:
    """Photos that failed in batch runs (they are retried when the batch is run again)."""
    with _open(db) as tdb:
        rows = tdb.errors(run)
    table = Table(title=f"{len(rows)} photos with errors")
    for col in ("run", "line", "image", "species", "tries", "error"):
        table.add_column(col, overflow="fold")
    for e in rows:
        table.add_row(str(e["run_id"]), str(e["manifest_row"] or ""), e["image_path"], e["species"] or "",
                      str(e["attempts"]), e["message"])
    console.print(table)


@review_app.command("list")
def review_list(
    db: DbOpt = None,
    run: RunOpt = None,
    status: Annotated[str, typer.Option(help="accepted, rejected, pending or all.")] = "pending",
    species: Annotated[str | None, typer.Option(help="Only this (target) species.")] = None,
    contrast: Annotated[str | None, typer.Option(help="Only this contrast species.")] = None,
    limit: Annotated[int, typer.Option(min=1)] = 50,
) -> None:
    """List trait assertions to review, with their ids."""
    from traits.review import list_assertions

    with _open(db) as tdb:
        rows = list_assertions(tdb, run_id=run, status=None if status == "all" else status, taxon=species,
                               contrast=contrast, limit=limit)
    table = Table(title=f"{len(rows)} assertions ({status})")
    for col in ("id", "pair", "image", "rank", "trait", "dir", "score", "expert", "status"):
        table.add_column(col, overflow="fold")
    for r in rows:
        trait = " ".join(x for x in (r["part"], r["attribute"], r["value"]) if x) or (r["phrase"] or "")
        table.add_row(str(r["id"]), f"{r['taxon']} vs {r['contrast']}", r["image"], str(r["rank"]), trait,
                      r["direction"] or "", "" if r["score"] is None else f"{r['score']:.3f}",
                      r["expert_status"] or "", r["status"] + (f" ({r['curator']})" if r["curator"] else ""))
    console.print(table)


def _decide(status: str, ids: list[int], db: str | None, by: str | None, note: str | None) -> None:
    from traits.review import set_status

    with _open(db) as tdb:
        n = set_status(tdb, ids, status, by, note)
    console.print(f"{n} of {len(ids)} assertions marked {status}" + (" (the rest already were)." if n < len(ids) else "."))


IdsArg = Annotated[list[int], typer.Argument(min=1, max=_ID_MAX,
                                              help="Assertion ids (from `finer-traits db review list`).")]
ByOpt = Annotated[str | None, typer.Option("--by", help="Curator name (default: $FINER_TRAITS_CURATOR or login).")]
NoteOpt = Annotated[str | None, typer.Option(help="Why (kept with the decision).")]


@review_app.command("accept")
def review_accept(ids: IdsArg, db: DbOpt = None, by: ByOpt = None, note: NoteOpt = None) -> None:
    """Accept assertions."""
    _decide("accepted", ids, db, by, note)


@review_app.command("reject")
def review_reject(ids: IdsArg, db: DbOpt = None, by: ByOpt = None, note: NoteOpt = None) -> None:
    """Reject assertions."""
    _decide("rejected", ids, db, by, note)


@review_app.command("reset")
def review_reset(ids: IdsArg, db: DbOpt = None, by: ByOpt = None, note: NoteOpt = None) -> None:
    """Put assertions back to pending (earlier decisions stay in the history)."""
    _decide("pending", ids, db, by, note)


@review_app.command("history")
def review_history(assertion_id: Annotated[int, typer.Argument(min=1, max=_ID_MAX)], db: DbOpt = None) -> None:
    """Every decision on one assertion, oldest first."""
    from traits.review import history

    with _open(db) as tdb:
        rows = history(tdb, assertion_id)
    if not rows:
        console.print(f"Assertion {assertion_id} has no decisions (pending).")
    for r in rows:
        console.print(f"{r['curated_at']:%Y-%m-%d %H:%M:%S} {r['status']} by {r['curator']}"
                      + (f": {r['note']}" if r["note"] else ""))
