"""Expert trait lists: the trait model, field-guide parsing, CUB attributes, CSV files, checking and scores.

spaCy is loaded only when text is first parsed (once per process).
"""

from __future__ import annotations

from traits.csv_io import load_trait_csv, save_trait_csv
from traits.cub import CubAttributes, load_cub, render_cub_attribute
from traits.errors import TraitsError
from traits.expert import load_expert
from traits.match import check, expert_differences, match_tier
from traits.model import CheckedTrait, Trait, TraitDifference, TraitList
from traits.parse import parse_description, parse_phrase
from traits.scores import PairScore, score, score_pairs
from traits.vocab import load_vocab, normalise_colour, normalise_part

__all__ = [
    "CheckedTrait",
    "CubAttributes",
    "PairScore",
    "Trait",
    "TraitDifference",
    "TraitList",
    "TraitsError",
    "check",
    "expert_differences",
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
]
