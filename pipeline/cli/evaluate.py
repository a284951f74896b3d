"""`finer-traits evaluate cams`: benchmark tables of CAM methods (faithfulness, localisation, baselines)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from pipeline.cli import app
from pipeline.errors import ConfigError, DatasetError

console = Console()
evaluate_app = typer.Typer(help="Benchmarks: how faithful and how well localised the maps are.", no_args_is_help=True)
app.add_typer(evaluate_app, name="evaluate")

DATASETS = ("leeds", "synthetic-species", "synthetic-shapes")


def _split_list(values: list[str] | None) -> list[str]:
    return [v.strip() for item in values or [] for v in item.split(",") if v.strip()]


def _pairs(values: list[str] | None) -> list[tuple[str, str]] | None:
    if not values:
        return None
    out = []
    for v in values:
        a, sep, b = v.partition(":")
        if not sep or not a.strip() or not b.strip():
            raise ConfigError(f"--pairs value {v!r} is not 'Species A:Species B'.",
                              "Write e.g. --pairs 'Vanessa atalanta:Vanessa cardui'.")
        out.append((a.strip(), b.strip()))
    return out


def _synthetic_data(dataset: str, data: Path | None, out: Path, n_per_class: int, size: int, seed: int) -> Path:
    if data is not None:
        return data
    from evaluation.synthetic import make_shapes, make_species

    target = out / "data" / dataset
    console.print(f"Generating {dataset} into {target} ...")
    if dataset == "synthetic-shapes":
        return make_shapes(target, n_per_class=n_per_class, image_size=size, seed=seed, progress=True)
    return make_species(target, n_per_species=n_per_class, image_size=size, seed=seed, progress=True)


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
    epochs: Annotated[int, typer.Option(min=1, help="Head training steps when training a synthetic model.")] = 300,
    seed: Annotated[int, typer.Option(help="Seed for generation, training, subsets and tie-breaking.")] = 0,
    device: Annotated[str, typer.Option(help="'auto', 'cpu', 'cuda', 'cuda:N' or 'mps'.")] = "auto",
) -> None:
    """Explain test images with each CAM method and write methods x metrics tables (mean and 95 % interval)."""
    from evaluation.evaluate_cams import (
        BASELINE_METHODS,
        CAM_METHODS,
        LEEDS_METHODS,
        LEEDS_PAIRS,
        SCORECAM_METHODS,
        leeds_eval_set,
        run_benchmark,
        synthetic_eval_set,
    )
    from pipeline.models import load_classifier

    if dataset not in DATASETS:
        raise ConfigError(f"Unknown --dataset {dataset!r}.", f"Use one of: {', '.join(DATASETS)}.")
    leeds = dataset == "leeds"
    pair_list = _pairs(pairs)  # validated first: a typo should not cost a dataset generation
    chosen = _split_list(methods) or list(LEEDS_METHODS if leeds else CAM_METHODS)
    if include_scorecam:
        chosen += [m for m in SCORECAM_METHODS if m not in chosen]
    if baselines:
        chosen += [m for m in BASELINE_METHODS if m not in chosen]
    metric_set = metrics or ("fast" if leeds else "full")
    if leeds:
        from pipeline.paths import leeds_root

        root = data or leeds_root()
        if root is None:
            raise DatasetError("The Leeds butterflies folder was not found.",
                               "Pass --data /path/to/leeds-butterflies or set FINER_TRAITS_DATA.")
        if model is None:
            raise ConfigError("--model is required for --dataset leeds.",
                              f"Train one: finer-traits train {root} --out MODEL_DIR")
        clf = load_classifier(model, device=device)
        evalset = leeds_eval_set(root, clf, pair_list or LEEDS_PAIRS, split=split, limit=limit, seed=seed)
    else:
        root = _synthetic_data(dataset, data, out, n_per_class, size, seed)
        if model is None:
            from pipeline.train import train_classifier

            model = out / "model"
            console.print(f"Training a classifier on {root} into {model} ...")
            report = train_classifier(root, model, manifest=root / "manifest.csv", epochs=epochs, device=device,
                                      image_size=size, seed=seed)
            console.print(f"Test accuracy {report.accuracy:.3f}" if report.accuracy is not None else "Trained.")
        clf = load_classifier(model, device=device)
        evalset = synthetic_eval_set(root, clf, split=split, limit=limit, seed=seed)
    console.print(f"Explaining {len(evalset)} images with {len(chosen)} methods ({metric_set} metrics) ...")
    result = run_benchmark(clf, evalset, chosen, out, metrics=metric_set, batch_size=batch_size, gamma=gamma,
                           seed=seed, layer=layer)
    console.print(result.table, markup=False, highlight=False)
    console.print(f"Per-image scores: {out / 'per_image.csv'}; tables: {out / 'table.md'}")
