"""`finer-traits describe`: how the species in a photo differs from a similar one, in traits and words."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

import pipeline
from pipeline.cli import app
from traits.errors import MissingValueError

console = Console()


@app.command("describe")
def describe(
    image: Annotated[Path, typer.Argument(help="The photo to describe (JPEG, PNG, TIFF, ...).")],
    contrast: Annotated[str, typer.Option("--contrast", "-c", help="The similar species to compare with "
                                                                    "(scientific or common name).")],
    model: Annotated[Path | None, typer.Option("--model", "-m", envvar="FINER_TRAITS_MODEL",
                                                  help="Model folder from `finer-traits train` "
                                                       "(default: $FINER_TRAITS_MODEL).")] = None,
    target: Annotated[str | None, typer.Option("--target", "-t", help="What the photo shows, when you know it "
                                                                          "(default: the classifier's guess).")] = None,
    scorer: Annotated[str, typer.Option(help="'color' (offline, no weights), 'openclip:<hub id or folder>' or "
                                             "'hf:<folder>'.")] = "color",
    expert: Annotated[str | None, typer.Option(help="Expert traits: a traits CSV, a CUB attribute folder or a CSV "
                                                       "of field-guide descriptions.")] = None,
    top_k: Annotated[int, typer.Option("--top-k", min=1, help="How many traits to report.")] = 5,
    json_out: Annotated[bool, typer.Option("--json", help="Print the result as JSON instead of text.")] = False,
    report: Annotated[Path | None, typer.Option(help="Write a one-file HTML report here.")] = None,
    device: Annotated[str, typer.Option(help="'auto', 'cpu', 'cuda', 'cuda:N' or 'mps'.")] = "auto",
) -> None:
    """Describe the traits that tell the photo's species apart from --contrast, checked against expert lists."""
    if model is None:
        raise MissingValueError("No model folder was given.",
                          f"Pass --model MODEL_DIR (from `finer-traits train DATA --out MODEL_DIR`) or set {pipeline.MODEL_ENV}.")
    pipe = pipeline.Pipeline.load(model, scorer=scorer, expert=expert, device=device, progress=not json_out)
    result = pipe.describe(image, contrast, target_species=target, top_k=top_k)
    if report is not None:
        pipeline.write_report(result, report)
    if json_out:
        typer.echo(result.to_json())
        return
    console.print(result.text, highlight=False)
    table = Table(title=f"{result.target_species} vs {result.contrast_species}")
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
