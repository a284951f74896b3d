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
    taxon_group: Annotated[str, typer.Option("--taxon-group", "-g",
                                             help="The photos' taxon group: its parts, colour words and trait "
                                                  "phrases are what describe and batch use with this model (stored "
                                                  "in card.json). `finer-traits groups` lists them.")] = "butterfly",
) -> None:
    """Train a classifier: frozen backbone features (cached, resumable) + a linear head; prints test accuracy."""
    report = pipeline.train_classifier(data, out, manifest=manifest, backbone=backbone, epochs=epochs, device=device,
                                       image_size=image_size, seed=seed, batch_size=batch_size, weights=weights,
                                       workers=workers, head=head,
                                       taps=[t.strip() for t in layers.split(",") if t.strip()] if layers else None,
                                       taxon_group=taxon_group)
    table = Table(title="Test split, per species")
    for col in ("species", "n_train", "n_test", "accuracy (95% interval)", "most_confused_with"):
        table.add_column(col)
    for row in report.per_species.itertuples():
        acc_row = "n/a" if row.n_test == 0 else \
            f"{row.accuracy:.3f} ({row.accuracy_low:.2f}-{row.accuracy_high:.2f})"
        table.add_row(row.species, str(row.n_train), str(row.n_test), acc_row, row.most_confused_with)
    console.print(table)
    if report.warnings:  # each was logged as a warning while training; say where they are kept
        console.print(f"{len(report.warnings)} species have fewer than 3 training photos (warnings above; kept in "
                      f"{out / 'card.json'} under training.warnings).", highlight=False)
    if report.accuracy is None:
        acc = "n/a (no test split)"
    else:
        low, high = report.accuracy_interval or (report.accuracy, report.accuracy)
        acc = f"{report.accuracy:.4f} (95% interval {low:.2f}-{high:.2f}, Wilson, {report.n_test} photos)"
    console.print(f"Trained on {report.n_train} photos of {len(report.species)} species (taxon group "
                  f"{report.taxon_group}); tested on {report.n_test}; skipped {report.n_skipped}. "
                  f"Time: {report.seconds:.1f} s.", highlight=False)
    console.print(f"Test accuracy: [bold]{acc}[/].", highlight=False)
    console.print(_calibration_line(report.calibration), highlight=False)
    if report.n_skipped:
        console.print(f"Skipped files are listed in {out / 'skipped.csv'}.")
    console.print(f"Model saved to {out}. Next: finer-traits cam PHOTO --model {out} --contrast SPECIES")


def _calibration_line(cal: dict) -> str:
    """One line on the temperature and what it did to the test split's calibration error."""
    if not cal:
        return "Probabilities: not calibrated."
    if cal.get("skipped"):
        return f"Probabilities: not calibrated ({cal['skipped']})."
    line = f"Probabilities: temperature {cal['temperature']:.3f}, fitted on {cal['n']} out-of-fold training logits"
    if cal.get("ece_test_before") is None:
        return line + "."
    return (line + f"; test ECE ({cal['ece_bins']} bins) {cal['ece_test_before']:.3f} -> {cal['ece_test_after']:.3f},"
            f" NLL {cal['nll_test_before']:.3f} -> {cal['nll_test_after']:.3f}.")
