"""Scores of generated differences against an expert difference set, per species pair (METHODS.md section 4).

A generated difference is a hit when it matches an expert difference structurally (tiers exact / coarser /
finer; the similarity fallback is not counted). Precision = hits / generated; recall = expert differences
matched by at least one generated one / expert differences; direction accuracy = hits whose direction agrees /
hits; hit@k = 1 when one of the k highest-scored generated differences matches an expert one in the same
direction. A generated difference the list lacks is a candidate for review, not necessarily an error.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from traits.match import best_match
from traits.model import TraitDifference


@dataclass(frozen=True)
class PairScore:
    """Scores for one species pair."""

    target: str
    contrast: str
    n_generated: int
    n_expert: int
    precision: float
    recall: float
    f1: float
    direction_accuracy: float
    hit_at_k: dict[int, float] = field(default_factory=dict)
    n_hits: int = 0

    def as_dict(self) -> dict[str, object]:
        """Flat dict (hit@k as separate keys), e.g. for a DataFrame row."""
        d = {k: v for k, v in self.__dict__.items() if k != "hit_at_k"}
        d.update({f"hit@{k}": v for k, v in self.hit_at_k.items()})
        return d


def score(generated: Iterable[TraitDifference], expert_differences: Sequence[TraitDifference],
          ks: Sequence[int] = (1, 3, 5), group: str | None = None) -> PairScore:
    """Precision, recall, F1, direction accuracy and hit@k of generated differences for one pair."""
    gens = sorted(generated, key=lambda d: -d.score)  # stable: equal scores keep the given order
    experts = list(expert_differences)
    matched_experts: set[int] = set()
    hits = agree = 0
    first_good: int | None = None
    for rank, g in enumerate(gens):
        m, tier, _ = best_match(g, experts, group, similarity=None)
        if m is None:
            continue
        hits += 1
        # every expert difference this generated one covers counts for recall
        for i, e in enumerate(experts):
            if e is m or (e.trait.attribute == g.trait.attribute and best_match(g, [e], group, None)[0]):
                matched_experts.add(i)
        if m.direction == g.direction:
            agree += 1
            if first_good is None:
                first_good = rank
    precision = hits / len(gens) if gens else 0.0
    recall = len(matched_experts) / len(experts) if experts else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    target = gens[0].target if gens else (experts[0].target if experts else "")
    contrast = gens[0].contrast if gens else (experts[0].contrast if experts else "")
    return PairScore(target, contrast, len(gens), len(experts), precision, recall, f1,
                     agree / hits if hits else 0.0,
                     {k: float(first_good is not None and first_good < k) for k in ks}, hits)


def score_pairs(pairs: dict[tuple[str, str], tuple[Iterable[TraitDifference], Sequence[TraitDifference]]],
                ks: Sequence[int] = (1, 3, 5), group: str | None = None) -> list[PairScore]:
    """Score several pairs: {(target, contrast): (generated, expert_differences)} -> one PairScore each."""
    out = []
    for (a, b), (gen, exp) in pairs.items():
        s = score(gen, exp, ks, group)
        out.append(PairScore(a, b, *list(s.__dict__.values())[2:]))
    return out


def wilson_interval(successes: int, n: int, z: float = 1.96) -> tuple[float, float] | None:
    """Wilson score interval (95 % with z = 1.96) of a proportion successes / n; None when n is 0.

    Unlike the normal approximation it stays inside [0, 1] and is honest for small n and proportions near 0 or 1
    (10 of 10 correct: 0.72-1.00, not 1.00-1.00)."""
    if n <= 0:
        return None
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)
