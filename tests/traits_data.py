"""Where the shared real data lives for the traits tests (never copied into the repo)."""

from __future__ import annotations

import csv
import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def data_root() -> Path | None:
    """FINER_TRAITS_DATA, else ../shared/data next to the repository, else None."""
    env = os.environ.get("FINER_TRAITS_DATA")
    for cand in ([Path(env)] if env else []) + [REPO.parent / "shared" / "data"]:
        if cand.is_dir():
            return cand
    return None


def need(sub: str) -> Path:
    """The path of a shared data folder, or skip the test with the reason."""
    root = data_root()
    if root is None or not (root / sub).exists():
        pytest.skip(f"real data {sub} not found (set FINER_TRAITS_DATA to the shared data folder)")
    return root / sub


def leeds_descriptions() -> dict[str, str]:
    """scientific_name -> field-guide description, read from the shared species.csv."""
    path = need("leeds-butterflies/species.csv")
    with path.open(encoding="utf-8", newline="") as fh:
        return {r["scientific_name"]: r["description"] for r in csv.DictReader(fh)}
