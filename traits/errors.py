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
    """An option or argument that cannot be used; the subclasses below say which kind of problem it is."""

    code = "FT006"


class UnknownChoiceError(ConfigError):
    """A name that is not one of the known choices (CAM method, scorer, backbone, device, format, dataset, ...)."""

    code = "FT007"


class BadValueError(ConfigError):
    """A value of the wrong form or out of range (a negative count, a gamma of NaN, an array of the wrong shape)."""

    code = "FT008"


class MissingValueError(ConfigError):
    """Something required was not given (no model folder, no ids, an empty list)."""

    code = "FT009"


class ConflictingOptionsError(ConfigError):
    """Options that contradict each other or do not fit what they are used with (contrast = target species)."""

    code = "FT010"


class LayerError(ConfigError):
    """The model's layers cannot give a class activation map as asked (no such layer, not a feature map, ...)."""

    code = "FT011"


class MissingDependencyError(ConfigError):
    """Something the options need is not on this machine: an optional package, a database driver, a GPU."""

    code = "FT012"


class PathError(ConfigError):
    """A path that points at the wrong kind of thing: a folder for a file, a folder that does not exist, a file
    that cannot be read or whose kind cannot be told from its name."""

    code = "FT013"


class DatabaseError(FinerTraitsError):
    """The trait database cannot be opened, read or written (wrong URL, locked, read-only, unreachable)."""

    code = "FT020"


class StaleEditError(DatabaseError):
    """A curation decision made on an out-of-date view: someone else curated the assertion since (web app)."""

    code = "FT022"


class CsrfError(FinerTraitsError):
    """A data-changing web request without the app's cross-site token (another site's form, or a stale page)."""

    code = "FT023"


class BatchError(FinerTraitsError):
    """A batch run cannot go on (a worker process died)."""

    code = "FT021"


class TraitsError(DatasetError):
    """A trait list, vocabulary or trait source that cannot be used as given (names the row/column)."""

    code = "FT040"


class UnknownGroupError(UnknownChoiceError, TraitsError):
    """A taxon group that has no file in traits/vocab/groups/ (an unknown choice, and a vocabulary problem)."""

    code = "FT014"
