"""`finer-traits batch`: describe every photo of a manifest and store the traits in the trait database."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

import pipeline
from pipeline.cli import app

console = Console(stderr=True)


@app.command("batch")
def batch(
    manifest: Annotated[Path, typer.Argument(help="CSV or Parquet (.parquet file or folder) with 'image' (relative "
                                                  "to the manifest's folder) and 'species' (or 'scientific_name'); "
                                                  "optional 'licence' and any other columns, kept as image "
                                                  "metadata. Read streamed: millions of rows are fine.")],
    model: Annotated[Path, typer.Option("--model", "-m", help="Model folder from `finer-traits train`.")],
    db: Annotated[str | None, typer.Option("--db", help="Database URL or SQLite file (default: $FINER_TRAITS_DB or "
                                                           "sqlite:///finer-traits.sqlite; PostgreSQL: "
                                                           "postgresql+psycopg://user@host/dbname).")] = None,
    pairs: Annotated[Path | None, typer.Option(help="CSV with species_a,species_b: the contrast species of each "
                                                       "species (both ways). Default: per photo, the species the "
                                                       "classifier finds most similar.")] = None,
    workers: Annotated[int, typer.Option(min=1, help="Worker processes (--engine ray: actors), each with its own "
                                                     "copy of the models.")] = 1,
    scorer: Annotated[str, typer.Option(help="Phrase scorer spec passed to the describe pipeline.")] = "color",
    expert: Annotated[str | None, typer.Option(help="Expert trait list to check against (as for describe).")] = None,
    top_k: Annotated[int, typer.Option(min=1, help="Trait differences kept per photo and contrast.")] = 5,
    progress: Annotated[bool, typer.Option(help="Show the progress bar.")] = True,
    taxon_group: Annotated[str | None, typer.Option("--taxon-group", "-g",
                                                    help="Taxon group whose parts, colour words and phrases are used "
                                                         "(default: the model's; `finer-traits groups`).")] = None,
    engine: Annotated[str, typer.Option(help="local: this machine's processes. ray: Ray Data actors on a Ray "
                                             "instance (a laptop or a cluster; needs the ray extra); see "
                                             "docs/scale.md.")] = "local",
    address: Annotated[str | None, typer.Option(help="--engine ray: the Ray cluster to join: 'auto' (this node's "
                                                     "cluster) or ray://HOST:10001. Default: $RAY_ADDRESS, else a "
                                                     "new Ray instance on this machine.")] = None,
    num_cpus: Annotated[float, typer.Option(help="--engine ray: CPUs reserved per actor (also its torch "
                                                 "threads).")] = 1.0,
    num_gpus: Annotated[float, typer.Option(help="--engine ray: GPUs per actor (0.5: two actors share one "
                                                 "GPU).")] = 0.0,
    parquet: Annotated[Path | None, typer.Option(help="Also write the run's trait assertions as a Parquet dataset "
                                                      "in this folder (one row per assertion, the columns of "
                                                      "`db export`); replaced whole at the end of each run.")] = None,
) -> None:
    """Describe a manifest's photos against their contrast species into the trait DB; safe to interrupt and re-run."""
    from traits.db import redact_url  # SQLAlchemy: loaded when the command runs, not at CLI start

    report = pipeline.run_batch(manifest, model, db, pairs=pairs, workers=workers, scorer=scorer, expert=expert,
                                top_k=top_k, progress=progress, taxon_group=taxon_group, engine=engine,
                                address=address, num_cpus=num_cpus, num_gpus=num_gpus, parquet=parquet)
    how = "resumed" if report.resumed else "new"
    console.print(f"Run {report.run_id} ({how}) in {redact_url(report.db_url)}: {report.manifest_rows} manifest rows, "
                  f"{report.described} photos described now ({report.results_written} results), "
                  f"{report.already_done} already done, {len(report.failed)} with errors, "
                  f"{len(report.duplicates)} duplicate rows skipped. Engine: {report.engine}. "
                  f"Time: {report.seconds:.1f} s.")
    if report.parquet is not None:
        console.print(f"Parquet dataset of the run's assertions: {report.parquet}")
    for note in report.duplicates[:10]:
        console.print(f"  duplicate: {note}")
    for note in report.relabelled[:10]:
        console.print(f"  label changed: {note}")
    if report.failed:
        table = Table(title="Photos with errors (kept in the database; run the same command again to retry)")
        for col in ("line", "image", "species", "error"):
            table.add_column(col, overflow="fold")
        for e in report.failed[:30]:
            table.add_row(str(e["manifest_row"] or ""), e["image_path"], e["species"] or "", e["message"])
        console.print(table)
        if len(report.failed) > 30:
            console.print(f"... and {len(report.failed) - 30} more: `finer-traits db errors --run {report.run_id}`.")
        raise typer.Exit(1)
    console.print(f"Next: finer-traits db summary --run {report.run_id}"
                  + (f" --db {report.db_url}" if db else ""))
