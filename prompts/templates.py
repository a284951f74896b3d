"""Text templates for CLIP-style models: species names (zero-shot classes) and trait phrases."""

from __future__ import annotations

from collections.abc import Sequence

# BioCLIP was trained on taxonomic and common names; plain name prompts work best for it.
SPECIES_TEMPLATES: list[str] = [
    "a photo of {name}.",
    "a photo of {scientific}, {common}.",
    "an image of {name}.",
]


def species_prompts(scientific: str, common: str | None, templates: Sequence[str] = SPECIES_TEMPLATES) -> list[str]:
    """Fill species templates; with no common name the scientific name stands in for it."""
    common = common or scientific
    name = f"{scientific} ({common})" if common != scientific else scientific
    return [t.format(name=name, scientific=scientific, common=common) for t in templates]
