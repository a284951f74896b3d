"""finer-traits: which visible traits tell a species apart from a similar one.

Main entry point: ``pipeline.describe(image, contrast_species)``.
"""

from __future__ import annotations

__version__ = "0.1.0"

from pipeline.errors import FinerTraitsError  # noqa: E402
from pipeline.models import Classifier, load_classifier  # noqa: E402

__all__ = ["Classifier", "FinerTraitsError", "__version__", "load_classifier"]
