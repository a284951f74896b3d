"""Stage 5 of describe: a plain-English paragraph from ranked trait evidence, hedged by the strength of the evidence.

Only templates, no language model: every word of the paragraph can be traced to a trait, a score and a confidence.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

# How each confidence level is worded: strong evidence is stated, moderate is 'probably', weak is 'possibly'.
HEDGES = {"strong": "", "moderate": "probably ", "weak": "possibly "}
CONFIDENCE_NOTE = {"strong": "strong evidence", "moderate": "moderate evidence", "weak": "weak evidence"}


@dataclass(frozen=True)
class Clause:
    """What compose needs of one trait: its structured parts, direction (+/-), confidence and optional location."""

    part: str
    attribute: str
    value: str
    direction: str
    confidence: str
    location: str | None = None
    expert_status: str | None = None
    in_region: bool | None = None  # False: the trait lies outside the regions the classifier used (None: not checked)


def trait_clause(c: Clause) -> str:
    """'more orange on the forewing band', 'no hindwing tail', 'a less spotted hindwing', ..."""
    part, value = c.part, c.value
    plus = c.direction == "+"
    if c.attribute == "colour":
        return f"{'more' if plus else 'less'} {value} on the {part}"
    if c.attribute == "presence":
        if value == "absent":
            plus = not plus
        return f"a {part}" if plus else f"no clear {part}"
    if c.attribute in ("pattern", "shape", "size"):
        return f"a {'more' if plus else 'less'} {value} {part}"
    if c.attribute == "count":
        return f"{'more' if plus else 'fewer'} {part}s"
    return f"{'more' if plus else 'less'} {value} {part}".strip()


def _join(items: Sequence[str]) -> str:
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]


def compose_paragraph(target_label: str, contrast_label: str, clauses: Sequence[Clause],
                      target_probability: float | None = None, uncertain: bool = False,
                      predicted_label: str | None = None) -> str:
    """The description paragraph: 'Compared with B, this A shows ...', hedged per confidence level."""
    sentences: list[str] = []
    if uncertain:
        p = f" (probability {target_probability:.2f})" if target_probability is not None else ""
        guess = f"; its best guess is {predicted_label}" if predicted_label and predicted_label != target_label else ""
        sentences.append(f"The classifier is not sure this photo shows {target_label}{p}{guess}, "
                         "so the differences below may be wrong.")
    if not clauses:
        sentences.append(f"No trait phrase separated {target_label} from {contrast_label} clearly in this photo.")
        return " ".join(sentences)
    by_conf: dict[str, list[str]] = {"strong": [], "moderate": [], "weak": []}
    for c in clauses:
        text = trait_clause(c)
        if c.location:
            text += f" ({c.location})"
        by_conf.setdefault(c.confidence, []).append(text)
    lead = f"Compared with {contrast_label}, this {target_label}"
    first = True
    for conf in ("strong", "moderate", "weak"):
        items = by_conf.get(conf) or []
        if not items:
            continue
        subject = lead if first else "It"
        verb = {"strong": "shows", "moderate": "probably shows", "weak": "may show"}[conf]
        sentences.append(f"{subject} {verb} {_join(items)}.")
        first = False
    if not by_conf["strong"]:
        sentences.append("None of these differences is strongly supported by this photo alone.")
    outside = [trait_clause(c) for c in clauses if c.in_region is False]
    if outside and len(outside) < len(clauses):
        sentences.append(f"Of these, {_join(outside)} {'lies' if len(outside) == 1 else 'lie'} outside the regions "
                         "the classifier used to tell the species apart.")
    elif outside:
        sentences.append("None of these lies in a region the classifier used to tell the species apart.")
    confirmed = [c for c in clauses if c.expert_status == "confirmed"]
    contradicted = [c for c in clauses if c.expert_status == "contradicted"]
    if confirmed or contradicted:
        parts = []
        if confirmed:
            parts.append(f"{len(confirmed)} of these match{'es' if len(confirmed) == 1 else ''} the expert descriptions")
        if contradicted:
            parts.append(f"{len(contradicted)} contradict{'s' if len(contradicted) == 1 else ''} them")
        sentences.append(_join(parts).capitalize() + ".")
    return " ".join(sentences)
