"""Species names in one normal form, shared by the trait database, expert lists and the classifier."""

from __future__ import annotations

import re

# Class folders numbered the CUB-200 way ('014.Indigo_Bunting'): the number is not part of the name.
_NUMBER_PREFIX = re.compile(r"^\s*\d+\.(?=\D)")


def normalise_name(name: str) -> str:
    """Lower-case a species name, drop a 'NNN.' class-number prefix and fold underscores, dashes and repeated
    spaces to single spaces: '014.Indigo_Bunting', 'Indigo Bunting' and 'indigo bunting' are one name."""
    return " ".join(_NUMBER_PREFIX.sub("", str(name)).replace("_", " ").replace("-", " ").lower().split())


def display_name(name: str) -> str:
    """Turn a folder-style name ('Vanessa_atalanta') into display form ('Vanessa atalanta')."""
    return " ".join(str(name).replace("_", " ").split())
