"""User-facing errors of every layer: each says what went wrong and how to fix it, with a stable code.

They live in the lowest layer (traits) so that traits, prompts, pipeline and evaluation can all raise them without
importing upwards; `pipeline.errors` re-exports them as the public API. Codes and fixes: docs/errors.md.
"""

from __future__ import annotations


class FinerTraitsError(Exception):
    """Base class for errors a user can act on; the CLI prints them without a traceback."""

    code = "FT000"

    def __init__(self, problem: str, fix: str | None = None) -> None:
        self.problem = problem
        self.fix = fix
        super().__init__(str(self))

    def __str__(self) -> str:
        text = f"[{self.code}] {self.problem}"
        if self.fix:
            text += f"\n  How to fix: {self.fix}"
        return text


class ModelUnavailableError(FinerTraitsError):
    """Weights or a model config cannot be found locally and cannot be downloaded."""

    code = "FT001"


class UnknownSpeciesError(FinerTraitsError, KeyError):
    """A species name or index that the classifier does not know."""

    code = "FT002"

    # KeyError's own __str__ would quote the message; keep the readable form.
    __str__ = FinerTraitsError.__str__


class BadImageError(FinerTraitsError):
    """An image that cannot be read, is empty, too small or too large."""

    code = "FT003"


class DatasetError(FinerTraitsError):
    """A training or evaluation dataset that cannot be used as given."""

    code = "FT004"


class CheckpointError(FinerTraitsError):
    """A model directory or weights file that does not match what it claims to be."""

    code = "FT005"


class ConfigError(FinerTraitsError):
    """An option value that is not valid (device, method, scorer spec, ...)."""

    code = "FT006"


class DatabaseError(FinerTraitsError):
    """The trait database cannot be opened, read or written (wrong URL, locked, read-only, unreachable)."""

    code = "FT020"


class TraitsError(DatasetError):
    """A trait list, vocabulary or trait source that cannot be used as given (names the row/column)."""

    code = "FT040"
