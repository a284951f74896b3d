"""Species names in one normal form, shared by the trait database, expert lists and the classifier."""

from __future__ import annotations


def normalise_name(name: str) -> str:
    """Lower-case a species name and fold underscores, dashes and repeated spaces to single spaces."""
    return " ".join(str(name).replace("_", " ").replace("-", " ").lower().split())


def display_name(name: str) -> str:
    """Turn a folder-style name ('Vanessa_atalanta') into display form ('Vanessa atalanta')."""
    return " ".join(str(name).replace("_", " ").split())
