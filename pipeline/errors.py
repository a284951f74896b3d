"""The public home of finer-traits' user-facing errors; they are defined in traits.errors (the lowest layer)."""

from __future__ import annotations

from traits.errors import (
    BadImageError,
    CheckpointError,
    ConfigError,
    DatabaseError,
    DatasetError,
    FinerTraitsError,
    ModelUnavailableError,
    TraitsError,
    UnknownSpeciesError,
)

__all__ = ["BadImageError", "CheckpointError", "ConfigError", "DatabaseError", "DatasetError", "FinerTraitsError",
           "ModelUnavailableError", "TraitsError", "UnknownSpeciesError"]
