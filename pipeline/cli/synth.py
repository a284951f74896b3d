"""`finer-traits synth`: synthetic datasets with ground truth and the tiny offline CLIP trained on them."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from pipeline.cli import app

console = Console()
synth_app = typer.Typer(help="Synthetic datasets with ground truth (species, shapes) and a tiny offline CLIP.",
                        no_args_is_help=True)
app.add_typer(synth_app, name="synth")


@synth_app.command("species")
def species(
    out: Annotated[Path, typer.Argument(help="Folder to write (ImageFolder images/, masks/, parts/, manifest.csv, "
                                             "traits.csv, pairs.csv, parts.json, dataset.json).")],
    n_per_class: Annotated[int, typer.Option("--n-per-class", min=1, help="Images per species.")] = 40,
    size: Annotated[int, typer.Option("--size", min=32, max=2048, help="Image side in pixels.")] = 128,
    seed: Annotated[int, typer.Option(help="Random seed; the same seed gives byte-identical files.")] = 0,
    n_species: Annotated[int, typer.Option("--n-species", help="Number of species, an even number (sibling pairs), "
                                                               "2-12.")] = 6,
    clean: Annotated[bool, typer.Option("--clean", help="No nuisances: upright, centred, plain background.")] = False,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace an existing folder.")] = False,
) -> None:
    """Procedurally drawn butterfly-like species in sibling pairs that differ in known traits on known parts."""
    from evaluation.synthetic import Nuisance, make_species

    root = make_species(out, n_per_species=n_per_class, image_size=size, seed=seed, n_species=n_species,
                        nuisance=Nuisance.none() if clean else None, overwrite=overwrite, progress=True)
    console.print(f"Synthetic species written to {root} (sibling differences in {root / 'pairs.csv'}). "
                  f"Next: finer-traits train {root} --manifest {root / 'manifest.csv'} --out MODEL_DIR")


@synth_app.command("shapes")
def shapes(
    out: Annotated[Path, typer.Argument(help="Folder to write (ImageFolder images/, masks/, manifest.csv, ...).")],
    n_per_class: Annotated[int, typer.Option("--n-per-class", min=1, help="Images per shape class.")] = 100,
    size: Annotated[int, typer.Option("--size", min=32, max=2048, help="Image side in pixels.")] = 256,
    seed: Annotated[int, typer.Option(help="Random seed; the same seed gives byte-identical files.")] = 0,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace an existing folder.")] = False,
) -> None:
    """The 6-class shapes dataset (filled/outline circle, square, triangle) with per-image masks."""
    from evaluation.synthetic import make_shapes

    root = make_shapes(out, n_per_class=n_per_class, image_size=size, seed=seed, overwrite=overwrite, progress=True)
    console.print(f"Synthetic shapes written to {root}.")


@synth_app.command("tiny-clip")
def tiny_clip(
    dataset: Annotated[Path, typer.Argument(help="A synthetic species folder (from `finer-traits synth species`).")],
    out: Annotated[Path, typer.Argument(help="Checkpoint folder to write (open_clip_config.json + "
                                             "open_clip_model.safetensors).")],
    minutes: Annotated[float, typer.Option(min=0.01, help="Training time budget in minutes.")] = 3.0,
    max_steps: Annotated[int | None, typer.Option("--max-steps", min=1, help="Train this many steps instead of "
                                                  "for a time budget (reproducible on one machine).")] = None,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
    device: Annotated[str, typer.Option(help="'auto', 'cpu', 'cuda', 'cuda:N' or 'mps'.")] = "auto",
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace an existing checkpoint folder.")] = False,
    report: Annotated[Path | None, typer.Option(help="Also write the evaluation report (JSON) here.")] = None,
    value_weight: Annotated[float, typer.Option("--value-weight", min=0.0, help="Weight of the loss among the "
                                                "values of a part (tail present vs absent); 0: CLIP loss only.")] = 1.0,
) -> None:
    """Train a tiny open_clip model on part crops and trait captions of a synthetic species dataset."""
    from evaluation.synthetic.tiny_clip import train_tiny_clip

    folder = train_tiny_clip(dataset, out, minutes=minutes, seed=seed, device=device, overwrite=overwrite,
                             max_steps=max_steps, value_weight=value_weight)
    import json

    metrics = json.loads((folder / "training.json").read_text())
    ev = metrics.get("eval", {})
    console.print(f"Tiny CLIP saved to {folder}: {metrics['steps']} steps, loss {metrics['loss_first']:.3f} -> "
                  f"{metrics['loss_last']:.3f}; held-out caption retrieval top-1 {ev.get('top1', float('nan')):.3f}, "
                  f"top-3 {ev.get('top3', float('nan')):.3f} over {ev.get('n_crops', 0)} crops.")
    if report:
        report.write_text(json.dumps(metrics, indent=2) + "\n")
    console.print(f"Use it with: --scorer openclip:{folder}")
