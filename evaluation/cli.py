"""`finer-traits evaluate` and `finer-traits synth`: CAM benchmarks, synthetic datasets and the tiny offline CLIP.

The command line finds these through the `finer_traits.commands` entry point (pyproject.toml), which calls
register(app): the evaluation layer adds its commands to the pipeline's CLI without the pipeline importing it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

import evaluation

console = Console()
evaluate_app = typer.Typer(help="Benchmarks: how faithful and how well localised the maps are.", no_args_is_help=True)
synth_app = typer.Typer(help="Synthetic datasets with ground truth (species, shapes) and a tiny offline CLIP.",
                        no_args_is_help=True)


def register(app: typer.Typer) -> None:
    """Add the `evaluate` and `synth` command groups to the finer-traits app."""
    app.add_typer(evaluate_app, name="evaluate")
    app.add_typer(synth_app, name="synth")


def _split_list(values: list[str] | None) -> list[str]:
    return [v.strip() for item in values or [] for v in item.split(",") if v.strip()]


@evaluate_app.command("cams")
def cams(
    dataset: Annotated[str, typer.Option(help="leeds, synthetic-species or synthetic-shapes.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder for per_image.csv, summary.csv, table.md.")],
    model: Annotated[Path | None, typer.Option(help="Model folder from `finer-traits train`. Required for leeds; "
                                                       "for synthetic data omit it to generate and train first.")] = None,
    data: Annotated[Path | None, typer.Option(help="Dataset folder with manifest.csv (default: Leeds from "
                                                      "FINER_TRAITS_DATA, synthetic generated under OUT/data).")] = None,
    methods: Annotated[list[str] | None, typer.Option(help="CAM methods, repeat or comma-separate (default: "
                                                              "all gradient methods; Leeds: gradcam, finer, layercam, "
                                                              "finer-layercam).")] = None,
    include_scorecam: Annotated[bool, typer.Option(help="Also run Score-CAM and Finer-Score-CAM (slow).")] = False,
    baselines: Annotated[bool, typer.Option(help="Add the random, all-ones, constant and centre-Gaussian maps.")] = True,
    metrics: Annotated[str | None, typer.Option(help="'fast' (RD, Average Drop, Complexity) or 'full' (adds "
                                                        "deletion/insertion, ROAD, Coherency, ADCC, ARCC). Default: "
                                                        "full for synthetic, fast for leeds.")] = None,
    pairs: Annotated[list[str] | None, typer.Option(help="Leeds species pairs 'A:B' (both directions are "
                                                            "explained). Default: V. atalanta:V. cardui and "
                                                            "H. charitonius:H. erato.")] = None,
    split: Annotated[str, typer.Option(help="Which split to explain.")] = "test",
    limit: Annotated[int | None, typer.Option(min=1, help="At most N images (balanced over species).")] = None,
    batch_size: Annotated[int, typer.Option(min=1, help="Images per batch.")] = 8,
    gamma: Annotated[float, typer.Option(help="Finer-CAM gamma.")] = 0.6,
    layer: Annotated[str | None, typer.Option(help="CAM layer (module name) instead of the model's default; "
                                                   "RefineCAM keeps its own layers.")] = None,
    n_per_class: Annotated[int, typer.Option(min=2, help="Synthetic images per class when generating.")] = 60,
    size: Annotated[int, typer.Option(min=32, help="Synthetic image size (px) when generating; also the training "
                                                   "input size.")] = 128,
    epochs: Annotated[int, typer.Option(min=1, max=100_000, help="Head training steps when training a synthetic model.")] = 300,
    seed: Annotated[int, typer.Option(help="Seed for generation, training, subsets and tie-breaking.")] = 0,
    device: Annotated[str, typer.Option(help="'auto', 'cpu', 'cuda', 'cuda:N' or 'mps'.")] = "auto",
) -> None:
    """Explain test images with each CAM method and write methods x metrics tables (mean and 95 % interval)."""
    result = evaluation.benchmark_dataset(
        dataset, out, model=model, data=data, methods=_split_list(methods), include_scorecam=include_scorecam,
        baselines=baselines, metrics=metrics, pairs=pairs, split=split, limit=limit, batch_size=batch_size,
        gamma=gamma, layer=layer, n_per_class=n_per_class, size=size, epochs=epochs, seed=seed, device=device,
        say=console.print)
    console.print(result.table, markup=False, highlight=False)
    console.print(f"Per-image scores: {out / 'per_image.csv'}; tables: {out / 'table.md'}")


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
    root = evaluation.make_species(out, n_per_species=n_per_class, image_size=size, seed=seed, n_species=n_species,
                                   nuisance=evaluation.Nuisance.none() if clean else None, overwrite=overwrite,
                                   progress=True)
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
    root = evaluation.make_shapes(out, n_per_class=n_per_class, image_size=size, seed=seed, overwrite=overwrite,
                                  progress=True)
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
    folder = evaluation.train_tiny_clip(dataset, out, minutes=minutes, seed=seed, device=device, overwrite=overwrite,
                                        max_steps=max_steps, value_weight=value_weight)
    metrics = json.loads((folder / "training.json").read_text())
    ev = metrics.get("eval", {})
    console.print(f"Tiny CLIP saved to {folder}: {metrics['steps']} steps, loss {metrics['loss_first']:.3f} -> "
                  f"{metrics['loss_last']:.3f}; held-out caption retrieval top-1 {ev.get('top1', float('nan')):.3f}, "
                  f"top-3 {ev.get('top3', float('nan')):.3f} over {ev.get('n_crops', 0)} crops.")
    if report:
        report.write_text(json.dumps(metrics, indent=2) + "\n")
    console.print(f"Use it with: --scorer openclip:{folder}")
