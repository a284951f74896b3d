"""finer-traits: which visible traits tell a species apart from a similar one.

Main entry point: ``pipeline.describe(image, contrast_species)``.

Importing this package is cheap: the public names below are imported from their modules on first use
(traits.lazy), so the command line starts without torch, timm or open_clip.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from traits.errors import FinerTraitsError
from traits.lazy import lazy_exports
from traits.version import __version__

if TYPE_CHECKING:  # the same names, for type checkers and editors
    from pipeline.batch import run_batch
    from pipeline.cam import CamRequest, default_method, explain, explain_many, parse_method, plain_method
    from pipeline.describe import MODEL_ENV, DescribeResult, Pipeline, describe
    from pipeline.images import image_files, load_image
    from pipeline.models import Classifier, load_classifier
    from pipeline.report import write_report
    from pipeline.train import train_classifier

lazy_exports(__name__, {
    "CamRequest": "pipeline.cam",
    "Classifier": "pipeline.models",
    "DescribeResult": "pipeline.describe",
    "MODEL_ENV": "pipeline.describe",
    "Pipeline": "pipeline.describe",
    "default_method": "pipeline.cam",
    "describe": "pipeline.describe",
    "explain": "pipeline.cam",
    "explain_many": "pipeline.cam",
    "image_files": "pipeline.images",
    "load_classifier": "pipeline.models",
    "load_image": "pipeline.images",
    "parse_method": "pipeline.cam",
    "plain_method": "pipeline.cam",
    "run_batch": "pipeline.batch",
    "train_classifier": "pipeline.train",
    "write_report": "pipeline.report",
})

__all__ = ["CamRequest", "Classifier", "DescribeResult", "FinerTraitsError", "MODEL_ENV", "Pipeline", "__version__",
           "default_method", "describe", "explain", "explain_many", "image_files", "load_classifier", "load_image",
           "parse_method", "plain_method", "run_batch", "train_classifier", "write_report"]
