"""Plain data for traits: an Entity-Quality `Trait`, a taxon's `TraitList`, directed differences and checks.

These dataclasses are the contract other areas code against (describe, report, database): keep them stable.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace
from typing import Literal

from traits.render import trait_phrase

ATTRIBUTES = ("colour", "pattern", "shape", "size", "count", "presence")
SIDES = ("upper", "under")
SOURCES = ("field_guide", "cub", "csv", "generated", "synthetic")
DIRECTIONS = ("+", "-")
STATUSES = ("confirmed", "contradicted", "new")
TIERS = ("exact", "coarser", "finer", "embedding")

Direction = Literal["+", "-"]
Status = Literal["confirmed", "contradicted", "new"]


@dataclass(frozen=True)
class Trait:
    """One Entity-Quality trait: `part` (entity) + `attribute` and normalised `value` (quality).

    `value` is normalised (a base colour such as 'orange', a compound such as 'orange-red', a pattern such as
    'spotted', 'present'/'absent' for presence, a number for count); `raw` keeps the word the source used
    ('vermilion'). `side` is 'upper' or 'under' (None: not stated), `text` the source sentence or phrase.
    """

    part: str
    attribute: str
    value: str
    raw: str = ""
    side: str | None = None
    sex: str | None = None
    life_stage: str | None = None
    text: str = ""

    @property
    def key(self) -> tuple[str, str, str]:
        """The (part, attribute, value) triple used for scoring and set operations."""
        return (self.part, self.attribute, self.value)

    def phrase(self) -> str:
        """A short readable phrase: 'orange-red forewing band', 'spotted hindwing', 'forewing tail absent'."""
        return trait_phrase(self)

    def with_(self, **changes: object) -> Trait:
        """A copy with some fields changed."""
        return replace(self, **changes)  # type: ignore[arg-type]


@dataclass
class TraitList:
    """The traits of one taxon from one source (field_guide, cub, csv, generated, synthetic)."""

    taxon: str
    traits: list[Trait] = field(default_factory=list)
    source: str = "field_guide"
    provenance: str = ""

    def __iter__(self) -> Iterator[Trait]:
        return iter(self.traits)

    def __len__(self) -> int:
        return len(self.traits)

    def keys(self) -> set[tuple[str, str, str]]:
        """The set of (part, attribute, value) triples."""
        return {t.key for t in self.traits}

    def extend(self, traits: Iterable[Trait]) -> None:
        """Append traits, skipping exact duplicates (same triple, side, sex and life stage)."""
        seen = {(t.key, t.side, t.sex, t.life_stage) for t in self.traits}
        for t in traits:
            k = (t.key, t.side, t.sex, t.life_stage)
            if k not in seen:
                seen.add(k)
                self.traits.append(t)


@dataclass(frozen=True)
class TraitDifference:
    """A trait that `target` shows MORE ('+') or LESS ('-') than `contrast`.

    `score` ranks generated differences (higher = stronger; for CUB the percent-point gap); `phrase` is the
    text the model used, if any.
    """

    trait: Trait
    direction: Direction
    target: str = ""
    contrast: str = ""
    score: float = 0.0
    phrase: str = ""

    @property
    def key(self) -> tuple[str, str, str, str]:
        """(part, attribute, value, direction)."""
        return (*self.trait.key, self.direction)

    def flipped(self) -> TraitDifference:
        """The same difference seen from the contrast species."""
        return replace(self, direction="-" if self.direction == "+" else "+", target=self.contrast,
                       contrast=self.target)


@dataclass(frozen=True)
class CheckedTrait:
    """A generated difference with its verdict against the expert lists.

    `status`: confirmed / contradicted / new. `match`: the expert difference it matched (None for new);
    `tier`: how it matched ('exact', 'coarser' = the generated part is coarser than the expert part,
    'finer', 'embedding'); `similarity`: 1.0 for structural matches, the cosine for embedding ones;
    `note`: extra detail (e.g. 'both species have it in the expert lists').
    """

    difference: TraitDifference
    status: Status
    match: TraitDifference | None = None
    tier: str | None = None
    similarity: float = 0.0
    note: str = ""
