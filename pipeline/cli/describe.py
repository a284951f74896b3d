"""`finer-traits describe`: how the species in one or more photos differs from a similar one, in traits and words.

Several photos (or folders of photos) in one call share one loaded model, scorer and reference scores, so each
photo after the first costs only its own analysis.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

import pipeline
from pipeline.cli import app
from traits.errors import BadImageError, MissingValueError, PathError
from traits.io import dumps_strict
from traits.vocab import normalise_side

console = Console()
err_console = Console(stderr=True)


@app.command("describe")
def describe(
    images: Annotated[list[Path], typer.Argument(help="The photos to describe (JPEG, PNG, TIFF, ...), or folders of "
                                                      "photos; the model is loaded once for all of them.")],
    contrast: Annotated[str, typer.Option("--contrast", "-c", help="The similar species to compare with "
                                                                    "(scientific or common name).")],
    model: Annotated[Path | None, typer.Option("--model", "-m", envvar="FINER_TRAITS_MODEL",
                                                  help="Model folder from `finer-traits train` "
                                                       "(default: $FINER_TRAITS_MODEL).")] = None,
    target: Annotated[str | None, typer.Option("--target", "-t", help="What the photos show, when you know it "
                                                                          "(default: the classifier's guess).")] = None,
    scorer: Annotated[str, typer.Option(help="'color' (offline, no weights), 'openclip:<hub id or folder>' or "
                                             "'hf:<folder>'.")] = "color",
    expert: Annotated[str | None, typer.Option(help="Expert traits: a traits CSV, a CUB attribute folder or a CSV "
                                                       "of field-guide descriptions.")] = None,
    top_k: Annotated[int, typer.Option("--top-k", min=1, help="How many traits to report.")] = 5,
    json_out: Annotated[bool, typer.Option("--json", help="Print the result as JSON instead of text (several photos: "
                                                          "a list, each with its 'image').")] = False,
    report: Annotated[Path | None, typer.Option(help="Write a one-file HTML report here (several photos: a folder, "
                                                     "one PHOTO_NAME.html each).")] = None,
    device: Annotated[str, typer.Option(help="'auto', 'cpu', 'cuda', 'cuda:N' or 'mps'.")] = "auto",
    taxon_group: Annotated[str | None, typer.Option("--taxon-group", "-g",
                                                    help="Taxon group whose parts, colour words and phrases are used "
                                                         "(default: the model's, from `train --taxon-group`; "
                                                         "`finer-traits groups` lists them).")] = None,
    side: Annotated[str | None, typer.Option(help="Which side of the organism the photos show, when known: 'upper' "
                                                  "(above, dorsal) or 'under' (below, ventral). Traits then carry it "
                                                  "and are not checked against the expert's statements about the "
                                                  "other side. Default: not known.")] = None,
) -> None:
    """Describe the traits that tell the photos' species apart from --contrast, checked against expert lists."""
    if model is None:
        raise MissingValueError("No model folder was given.",
                                f"Pass --model MODEL_DIR (from `finer-traits train DATA --out MODEL_DIR`) or set "
                                f"{pipeline.MODEL_ENV}.")
    photos = pipeline.image_files(images)
    several = len(photos) > 1
    if several and report is not None and (report.suffix.lower() in (".html", ".htm") or report.is_file()):
        raise PathError(f"--report {report} names one file, but {len(photos)} photos are described.",
                        "Pass a folder for --report: each photo gets its own PHOTO_NAME.html there.")
    if not several and report is not None and report.is_dir():
        raise PathError(f"--report {report} is a folder.", "Pass a file name such as report.html.")
    side = normalise_side(side)  # a bad value fails before the model loads
    pipe = pipeline.Pipeline.load(model, scorer=scorer, expert=expert, device=device, progress=not json_out,
                                  taxon_group=taxon_group)
    results, failed = [], 0
    for photo in photos:
        try:
            result = pipe.describe(photo, contrast, target_species=target, top_k=top_k, side=side)
        except BadImageError as exc:
            if not several:
                raise
            failed += 1  # one unreadable photo among many: say so and go on with the rest
            err_console.print(f"[bold red]error[/] {photo}: {exc}", highlight=False)
            continue
        path = None
        if report is not None:
            path = report / f"{photo.stem}.html" if several else report
            if several:
                report.mkdir(parents=True, exist_ok=True)
            pipeline.write_report(result, path)
        if json_out:
            results.append({"image": str(photo), **result.to_dict()} if several else result.to_dict())
        else:
            _print_result(result, photo if several else None, path)
    if json_out:
        typer.echo(dumps_strict(results if several else results[0]))
    if failed:
        raise typer.Exit(2)


def _print_result(result: pipeline.DescribeResult, photo: Path | None, report: Path | None) -> None:
    """The paragraph, the trait table and the notes of one result (headed by the photo's name when given)."""
    if photo is not None:
        console.rule(str(photo))
    console.print(result.text, highlight=False)
    side = (result.provenance or {}).get("side")
    seen = f" ({side}side)" if side else ""  # the expert check left the other side's statements out
    table = Table(title=f"{result.target_species} vs {result.contrast_species}{seen}")
    for col in ("rank", "trait", "direction", "confidence", "effect", "region", "expert"):
        table.add_column(col)
    for t in result.traits:
        table.add_row(str(t.rank), t.phrase, "more" if t.direction == "+" else "less", t.confidence,
                      f"{t.effect:+.2f}", "" if t.region is None else str(t.region + 1), t.expert_status or "-")
    console.print(table)
    for w in result.warnings:
        console.print(f"[yellow]note[/] {w}", highlight=False)
    if report is not None:
        console.print(f"Report written to {report}")
