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


# Trait phrases are out of distribution for BioCLIP's text side (trained mostly on names), so several
# templates are averaged (prompt ensembling) and describe only uses scores relatively.
TRAIT_TEMPLATES: list[str] = [
    "a photo of {phrase}.",
    "a close-up photo of {phrase}.",
    "an organism with {phrase}.",
    "a photo of a specimen with {phrase}.",
]


def trait_prompts(phrase: str, templates: Sequence[str] = TRAIT_TEMPLATES) -> list[str]:
    """Fill the trait templates with one phrase ('red forewing band')."""
    return [t.format(phrase=phrase) for t in templates]
