"""Expert trait lists: the trait model, field-guide parsing, CUB attributes, CSV files, checking and scores.

The lowest layer of finer-traits: it also holds the errors (traits.errors), file writing (traits.io), species
names (traits.names) and the trait database (traits.db) that the layers above share. Importing the package is
cheap: the public names below are imported on first use (traits.lazy), and spaCy only when text is first parsed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from traits.errors import TraitsError
from traits.lazy import lazy_exports

if TYPE_CHECKING:  # the same names, for type checkers and editors
    from traits.csv_io import load_trait_csv, save_trait_csv
    from traits.cub import CubAttributes, load_cub, render_cub_attribute
    from traits.expert import load_expert
    from traits.match import check, expert_differences, match_tier
    from traits.model import CheckedTrait, Trait, TraitDifference, TraitList
    from traits.parse import parse_description, parse_phrase
    from traits.scores import PairScore, score, score_pairs, wilson_interval
    from traits.vocab import (
        TaxonGroup,
        group_names,
        load_vocab,
        normalise_colour,
        normalise_part,
        taxon_group,
    )

lazy_exports(__name__, {
    "CheckedTrait": "traits.model",
    "CubAttributes": "traits.cub",
    "PairScore": "traits.scores",
    "Trait": "traits.model",
    "TraitDifference": "traits.model",
    "TaxonGroup": "traits.vocab",
    "TraitList": "traits.model",
    "check": "traits.match",
    "expert_differences": "traits.match",
    "group_names": "traits.vocab",
    "load_cub": "traits.cub",
    "load_expert": "traits.expert",
    "load_trait_csv": "traits.csv_io",
    "load_vocab": "traits.vocab",
    "match_tier": "traits.match",
    "normalise_colour": "traits.vocab",
    "normalise_part": "traits.vocab",
    "parse_description": "traits.parse",
    "parse_phrase": "traits.parse",
    "render_cub_attribute": "traits.cub",
    "save_trait_csv": "traits.csv_io",
    "score": "traits.scores",
    "score_pairs": "traits.scores",
    "taxon_group": "traits.vocab",
    "wilson_interval": "traits.scores",
})

__all__ = [
    "CheckedTrait",
    "CubAttributes",
    "PairScore",
    "TaxonGroup",
    "Trait",
    "TraitDifference",
    "TraitList",
    "TraitsError",
    "check",
    "expert_differences",
    "group_names",
    "load_cub",
    "load_expert",
    "load_trait_csv",
    "load_vocab",
    "match_tier",
    "normalise_colour",
    "normalise_part",
    "parse_description",
    "parse_phrase",
    "render_cub_attribute",
    "save_trait_csv",
    "score",
    "score_pairs",
    "taxon_group",
    "wilson_interval",
]
