"""Species name lookup: scientific or common names, any case, underscores or spaces, with suggestions."""

from __future__ import annotations

import difflib
from collections.abc import Sequence

from traits.errors import UnknownSpeciesError
from traits.names import display_name, normalise_name

__all__ = ["SpeciesIndex"]


class SpeciesIndex:
    """Maps species names (scientific or common) to class indices."""

    def __init__(self, class_names: Sequence[str], common_names: Sequence[str | None] | None = None) -> None:
        self.class_names = [display_name(n) for n in class_names]
        commons = list(common_names) if common_names is not None else [None] * len(self.class_names)
        if len(commons) != len(self.class_names):
            raise ValueError("common_names must have one entry per class name")
        self.common_names = [display_name(c) if c else None for c in commons]
        self._lookup: dict[str, int] = {}
        for i, (sci, com) in enumerate(zip(self.class_names, self.common_names, strict=True)):
            self._lookup.setdefault(normalise_name(sci), i)
            if com:
                self._lookup.setdefault(normalise_name(com), i)

    def __len__(self) -> int:
        return len(self.class_names)

    def __repr__(self) -> str:
        return f"SpeciesIndex({len(self)} species: {', '.join(self.class_names[:4])}{', ...' if len(self) > 4 else ''})"

    def index(self, name: str | int) -> int:
        """Class index of a species given by index, scientific name or common name."""
        if isinstance(name, bool):
            raise UnknownSpeciesError(f"{name!r} is not a species.", "Pass a species name or class index.")
        if isinstance(name, int) or (hasattr(name, "__index__") and not isinstance(name, str)):
            i = int(name)
            if 0 <= i < len(self):
                return i
            raise UnknownSpeciesError(f"Class index {i} is out of range (the model has {len(self)} species).",
                                      f"Use an index from 0 to {len(self) - 1} or a species name.")
        key = normalise_name(name)
        if key in self._lookup:
            return self._lookup[key]
        suggestions = self.suggest(name)
        hint = f"Did you mean {', '.join(repr(s) for s in suggestions)}?" if suggestions else ""
        known = ", ".join(self.class_names[:12]) + (", ..." if len(self) > 12 else "")
        raise UnknownSpeciesError(f"Unknown species {name!r}. {hint}".strip(),
                                  f"Use one of the model's species (scientific or common name): {known}.")

    def suggest(self, name: str, n: int = 3) -> list[str]:
        """Up to n known names closest to name."""
        keys = list(self._lookup)
        close = difflib.get_close_matches(normalise_name(name), keys, n=n, cutoff=0.5)
        out: list[str] = []
        for key in close:
            label = self.label(self._lookup[key])
            if label not in out:
                out.append(label)
        return out

    def label(self, i: int) -> str:
        """'Vanessa atalanta (Red Admiral)', or the scientific name alone when no common name is known."""
        common = self.common_names[i]
        return f"{self.class_names[i]} ({common})" if common else self.class_names[i]
