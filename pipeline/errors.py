"""The public home of finer-traits' user-facing errors; they are defined in traits.errors (the lowest layer).

Every error has a code (FT0xx) that docs/errors.md explains with its usual fix.
"""

from __future__ import annotations

from traits.errors import (
    BadImageError,
    BadValueError,
    BatchError,
    CheckpointError,
    ConfigError,
    ConflictingOptionsError,
    CsrfError,
    DatabaseError,
    DatasetError,
    FinerTraitsError,
    LayerError,
    MissingDependencyError,
    MissingValueError,
    ModelUnavailableError,
    PathError,
    StaleEditError,
    TraitsError,
    UnknownChoiceError,
    UnknownGroupError,
    UnknownSpeciesError,
)

__all__ = ["BadImageError", "BadValueError", "BatchError", "CheckpointError", "ConfigError",
           "ConflictingOptionsError", "CsrfError", "DatabaseError", "DatasetError", "FinerTraitsError", "LayerError",
           "MissingDependencyError", "MissingValueError", "ModelUnavailableError", "PathError", "StaleEditError",
           "TraitsError",
           "UnknownChoiceError", "UnknownGroupError", "UnknownSpeciesError"]
