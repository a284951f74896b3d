"""finer-traits: which visible traits tell a species apart from a similar one.

Main entry point: ``pipeline.describe(image, contrast_species)``.
"""

from __future__ import annotations

__version__ = "0.1.0"

from pipeline.describe import DescribeResult, Pipeline, describe  # noqa: E402
from pipeline.errors import FinerTraitsError  # noqa: E402
from pipeline.models import Classifier, load_classifier  # noqa: E402

__all__ = ["Classifier", "DescribeResult", "FinerTraitsError", "Pipeline", "__version__", "describe", "load_classifier"]
