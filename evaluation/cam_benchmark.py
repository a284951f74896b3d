"""One CAM benchmark on a named dataset: find or generate the data, find or train the model, explain and score.

What `finer-traits evaluate cams` runs; the tables themselves come from evaluation.evaluate_cams.run_benchmark.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from evaluation.evaluate_cams import (
    BASELINE_METHODS,
    CAM_METHODS,
    LEEDS_METHODS,
    LEEDS_PAIRS,
    SCORECAM_METHODS,
    BenchmarkResult,
    leeds_eval_set,
    run_benchmark,
    synthetic_eval_set,
)
from evaluation.synthetic import make_shapes, make_species
from pipeline.models import load_classifier
from pipeline.paths import leeds_root
from pipeline.train import train_classifier
from traits.errors import BadValueError, DatasetError, MissingValueError, UnknownChoiceError

DATASETS = ("leeds", "synthetic-species", "synthetic-shapes")


def parse_pairs(values: Sequence[str] | None) -> list[tuple[str, str]] | None:
    """'Species A:Species B' strings as pairs (None when none are given)."""
    if not values:
        return None
    out = []
    for v in values:
        a, sep, b = v.partition(":")
        if not sep or not a.strip() or not b.strip():
            raise BadValueError(f"--pairs value {v!r} is not 'Species A:Species B'.",
                              "Write e.g. --pairs 'Vanessa atalanta:Vanessa cardui'.")
        out.append((a.strip(), b.strip()))
    return out


def choose_methods(methods: Sequence[str], leeds: bool, include_scorecam: bool, baselines: bool) -> list[str]:
    """The methods to run: the ones asked for (default: the dataset's set), plus Score-CAM and baselines."""
    chosen = list(methods) or list(LEEDS_METHODS if leeds else CAM_METHODS)
    if include_scorecam:
        chosen += [m for m in SCORECAM_METHODS if m not in chosen]
    if baselines:
        chosen += [m for m in BASELINE_METHODS if m not in chosen]
    return chosen


def synthetic_data(dataset: str, data: Path | None, out: Path, n_per_class: int, size: int, seed: int,
                   say: Callable[[str], None] = print) -> Path:
    """The synthetic dataset folder: `data` when given, else generated (or reused) under OUT/data/DATASET."""
    if data is not None:
        return data
    target = out / "data" / dataset
    say(f"Generating {dataset} into {target} ...")
    if dataset == "synthetic-shapes":
        return make_shapes(target, n_per_class=n_per_class, image_size=size, seed=seed, progress=True)
    return make_species(target, n_per_species=n_per_class, image_size=size, seed=seed, progress=True)


def benchmark_dataset(dataset: str, out: Path, *, model: Path | None = None, data: Path | None = None,
                      methods: Sequence[str] = (), include_scorecam: bool = False, baselines: bool = True,
                      metrics: str | None = None, pairs: Sequence[str] | None = None, split: str = "test",
                      limit: int | None = None, batch_size: int = 8, gamma: float = 0.6, layer: str | None = None,
                      n_per_class: int = 60, size: int = 128, epochs: int = 300, seed: int = 0,
                      device: str = "auto", say: Callable[[str], None] = print) -> BenchmarkResult:
    """Benchmark CAM methods on 'leeds' (with a trained model) or a synthetic dataset (generated and trained on
    when no data or model is given); tables go to OUT (see evaluation.evaluate_cams)."""
    if dataset not in DATASETS:
        raise UnknownChoiceError(f"Unknown --dataset {dataset!r}.", f"Use one of: {', '.join(DATASETS)}.")
    leeds = dataset == "leeds"
    pair_list = parse_pairs(pairs)  # validated first: a typo should not cost a dataset generation
    chosen = choose_methods(methods, leeds, include_scorecam, baselines)
    metric_set = metrics or ("fast" if leeds else "full")
    if leeds:
        root = data or leeds_root()
        if root is None:
            raise DatasetError("The Leeds butterflies folder was not found.",
                               "Pass --data /path/to/leeds-butterflies or set FINER_TRAITS_DATA.")
        if model is None:
            raise MissingValueError("--model is required for --dataset leeds.",
                              f"Train one: finer-traits train {root} --out MODEL_DIR")
        clf = load_classifier(model, device=device)
        evalset = leeds_eval_set(root, clf, pair_list or LEEDS_PAIRS, split=split, limit=limit, seed=seed)
    else:
        root = synthetic_data(dataset, data, out, n_per_class, size, seed, say)
        if model is None:
            model = out / "model"
            say(f"Training a classifier on {root} into {model} ...")
            report = train_classifier(root, model, manifest=root / "manifest.csv", epochs=epochs, device=device,
                                      image_size=size, seed=seed)
            say(f"Test accuracy {report.accuracy:.3f}" if report.accuracy is not None else "Trained.")
        clf = load_classifier(model, device=device)
        evalset = synthetic_eval_set(root, clf, split=split, limit=limit, seed=seed)
    say(f"Explaining {len(evalset)} images with {len(chosen)} methods ({metric_set} metrics) ...")
    return run_benchmark(clf, evalset, chosen, out, metrics=metric_set, batch_size=batch_size, gamma=gamma,
                         seed=seed, layer=layer)
