"""Where real data lives: FINER_TRAITS_DATA, else ../shared/data beside the repository when present."""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


def data_root() -> Path | None:
    """The real-data folder, or None when it is absent (tests then skip with a reason)."""
    env = os.environ.get("FINER_TRAITS_DATA")
    candidates = [Path(env)] if env else [REPO_ROOT.parent / "shared" / "data", Path.cwd().parent / "shared" / "data"]
    for path in candidates:
        if path.is_dir():
            return path.resolve()
    return None


def leeds_root() -> Path | None:
    """The Leeds butterflies folder (images/, masks/, manifest.csv, species.csv), or None."""
    root = data_root()
    path = root / "leeds-butterflies" if root else None
    return path if path and (path / "manifest.csv").is_file() else None


def cub_root() -> Path | None:
    """The CUB-200 attribute tables folder, or None."""
    root = data_root()
    path = root / "cub-attributes" if root else None
    return path if path and (path / "attributes.txt").is_file() else None
