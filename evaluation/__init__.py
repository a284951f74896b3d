"""Evaluation on top of the pipeline: synthetic datasets with ground truth, CAM benchmarks and their CLI commands.

`finer-traits evaluate` and `finer-traits synth` come from evaluation.cli, which the command line finds through
the `finer_traits.commands` entry point (the pipeline never imports this package). The public names below are
imported on first use (traits.lazy), so registering the commands costs no torch import.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from traits.lazy import lazy_exports

if TYPE_CHECKING:  # the same names, for type checkers and editors
    from evaluation.cam_benchmark import benchmark_dataset
    from evaluation.synthetic import Nuisance, make_shapes, make_species
    from evaluation.synthetic.tiny_clip import train_tiny_clip

lazy_exports(__name__, {
    "Nuisance": "evaluation.synthetic",
    "benchmark_dataset": "evaluation.cam_benchmark",
    "make_shapes": "evaluation.synthetic",
    "make_species": "evaluation.synthetic",
    "train_tiny_clip": "evaluation.synthetic.tiny_clip",
})

__all__ = ["Nuisance", "benchmark_dataset", "make_shapes", "make_species", "train_tiny_clip"]
