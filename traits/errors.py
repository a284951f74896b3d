"""Errors for trait files and trait sources."""

from __future__ import annotations

from pipeline.errors import DatasetError


class TraitsError(DatasetError):
    """A trait list, vocabulary or trait source that cannot be used as given (names the row/column)."""

    code = "FT040"
