"""`finer-traits train`: fit a species classifier on labelled photos."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

import pipeline
from pipeline.cli import app

console = Console()


@app.command("train")
def train(
    data: Annotated[Path, typer.Argument(help="ImageFolder tree (one folder per species, e.g. images/Vanessa_atalanta/*.jpg) "
                                              "or a manifest CSV.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Model folder to write (head.safetensors, card.json, reports).")],
    manifest: Annotated[Path | None, typer.Option(help="CSV with 'image' (relative to the CSV) and 'species' or "
                                                          "'scientific_name'; optional 'common_name', 'split'.")] = None,
    backbone: Annotated[str, typer.Option(help="timm backbone. Default efficientnet_lite0 (ImageNet weights ship with "
                                               "the package, works offline).")] = "efficientnet_lite0",
    weights: Annotated[str, typer.Option(help="'default', 'hub' (download), 'random', or a local .safetensors/.pth file.")] = "default",
    epochs: Annotated[int, typer.Option(min=1, max=100_000, help="Full-batch optimisation steps of the linear head.")] = 300,
    image_size: Annotated[int | None, typer.Option(help="Input size in px (default: the backbone's own).")] = None,
    batch_size: Annotated[int, typer.Option(min=1, help="Images per feature-extraction batch.")] = 32,
    workers: Annotated[int, typer.Option(min=0, help="Image-loading worker processes.")] = 0,
    head: Annotated[str, typer.Option(help="'multilayer' (default): the head reads pooled stage outputs at strides "
                                           "8/16/32, so Finer-CAM maps are local and sharp; 'pooled': final "
                                           "pooled features only (the classic linear probe).")] = "multilayer",
    layers: Annotated[str | None, typer.Option(help="Comma-separated backbone modules a multilayer head reads "
                                                    "(default: the stage outputs at strides 8, 16, 32, e.g. "
                                                    "blocks.2,blocks.4,blocks.6).")] = None,
    seed: Annotated[int, typer.Option(help="Seed for the split (when the data has none) and the head.")] = 0,
    device: Annotated[str, typer.Option(help="'auto' (GPU when present), 'cpu', 'cuda', 'cuda:N' or 'mps'.")] = "auto",
) -> None:
    """Train a classifier: frozen backbone features (cached, resumable) + a linear head; prints test accuracy."""
    report = pipeline.train_classifier(data, out, manifest=manifest, backbone=backbone, epochs=epochs, device=device,
                                       image_size=image_size, seed=seed, batch_size=batch_size, weights=weights,
                                       workers=workers, head=head,
                                       taps=[t.strip() for t in layers.split(",") if t.strip()] if layers else None)
    table = Table(title="Test split, per species")
    for col in ("species", "n_test", "accuracy", "most_confused_with"):
        table.add_column(col)
    for row in report.per_species.itertuples():
        table.add_row(row.species, str(row.n_test), f"{row.accuracy:.3f}", row.most_confused_with)
    console.print(table)
    acc = "n/a (no test split)" if report.accuracy is None else f"{report.accuracy:.4f}"
    console.print(f"Trained on {report.n_train} photos of {len(report.species)} species; tested on {report.n_test}; "
                  f"skipped {report.n_skipped}. Test accuracy: [bold]{acc}[/]. Time: {report.seconds:.1f} s.")
    if report.n_skipped:
        console.print(f"Skipped files are listed in {out / 'skipped.csv'}.")
    console.print(f"Model saved to {out}. Next: finer-traits cam PHOTO --model {out} --contrast SPECIES")
