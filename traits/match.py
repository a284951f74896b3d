"""Expert difference sets and checking generated differences against them (METHODS.md sections 3-4).

Matching is structural first: same attribute, compatible value (colours by base-colour family), and a part that
is the same (tier 'exact'), coarser ('coarser': generated 'wing' vs expert 'forewing tip') or finer ('finer').
Only when nothing matches structurally and one of the two parts is not in the vocabulary ('tail streamer'), a
token-overlap similarity (default; pass `similarity=` for another, e.g. an embedding cosine) is tried behind an
antonym/number guard, because embeddings score opposites
('long tail' / 'short tail') as near-identical.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable

from traits.model import CheckedTrait, Trait, TraitDifference, TraitList
from traits.render import trait_phrase
from traits.vocab import PartVocab, colour_family, group_names, load_vocab

TIER_ORDER = {"exact": 0, "coarser": 1, "finer": 1, "embedding": 2}
ANTONYMS = [("long", "short"), ("large", "small"), ("broad", "narrow"), ("wide", "narrow"), ("present", "absent"),
            ("pale", "dark"), ("light", "dark"), ("upper", "under"), ("forewing", "hindwing"), ("fore", "hind"),
            ("rounded", "pointed"), ("more", "less"), ("with", "without"), ("plain", "spotted"),
            ("plain", "striped"), ("plain", "banded"), ("male", "female")]
# A pattern on a part and a mark on that part say the same thing ("banded forewing" ~ "forewing band").
PATTERN_ELEMENTS = {"banded": "band", "striped": "band", "spotted": "spot", "eyespotted": "eyespot"}
EMBED_THRESHOLD = 0.5

Similarity = Callable[[str, str], float]


def _traits(x: TraitList | Iterable[Trait]) -> list[Trait]:
    return list(x.traits) if isinstance(x, TraitList) else list(x)


def _taxon(x: TraitList | Iterable[Trait]) -> str:
    return x.taxon if isinstance(x, TraitList) else ""


def _sides_compatible(a: str | None, b: str | None) -> bool:
    return a is None or b is None or a == b


def _shared(t: Trait, u: Trait, group: str | None) -> bool:
    """Whether the other list's trait u says what t says: the same (part, attribute, value) on a compatible side,
    or, for colours, the same colour on a coarser part ('black wings' covers 'black forewing spot': a species
    black above has black where the other has a black patch). The same colour, not the same family: orange
    wings do not cover an orange-red band, which is a field mark of its own."""
    if not _sides_compatible(t.side, u.side):
        return False
    if u.key == t.key:
        return True
    return (t.attribute == u.attribute == "colour" and t.value == u.value
            and part_tier(t.part, u.part, group) == "finer")


def expert_differences(list_a: TraitList | Iterable[Trait], list_b: TraitList | Iterable[Trait],
                       group: str | None = None) -> list[TraitDifference]:
    """Differences of A vs B from two expert lists: traits of A absent from B ('+'), of B absent from A ('-').

    A trait counts as shared when the other list has the same (part, attribute, value) on a compatible side
    (an unstated side is compatible with either), or, for a colour, the same colour on a coarser part (parts of
    the taxon group, every group's when None).
    """
    ta, tb = _traits(list_a), _traits(list_b)
    name_a, name_b = _taxon(list_a), _taxon(list_b)
    out: list[TraitDifference] = []
    seen: set[tuple] = set()
    for mine, other, direction in ((ta, tb, "+"), (tb, ta, "-")):
        for t in mine:
            if any(_shared(t, u, group) for u in other):
                continue
            k = (t.key, t.side, direction)
            if k in seen:
                continue
            seen.add(k)
            out.append(TraitDifference(t, direction, name_a, name_b, 1.0, trait_phrase(t.with_(side=None))))  # type: ignore[arg-type]
    return out


def _part_vocabs(group: str | None) -> list[PartVocab]:
    vocab = load_vocab()
    return [vocab.part_vocab(group)] if group else [vocab.part_vocab(g) for g in group_names()]


def _known_part(part: str, group: str | None) -> bool:
    """Whether the group's part vocabulary (any group's without one) knows the part or one of its synonyms."""
    return any(pv.normalise(part) for pv in _part_vocabs(group))


def part_tier(generated: str, expert: str, group: str | None = None) -> str | None:
    """'exact', 'coarser' (generated part contains the expert part), 'finer', or None."""
    if generated == expert:
        return "exact"
    for pv in _part_vocabs(group):
        g = pv.normalise(generated) or generated
        e = pv.normalise(expert) or expert
        if g == e:
            return "exact"
        if g in pv.ancestors(e):
            return "coarser"
        if e in pv.ancestors(g):
            return "finer"
    return None


def _values_match(attribute: str, a: str, b: str) -> bool:
    if a == b:
        return True
    if attribute == "colour":
        return bool(colour_family(a) & colour_family(b))
    return False


def match_tier(generated: Trait, expert: Trait, group: str | None = None) -> str | None:
    """How a generated trait matches an expert trait structurally: 'exact' / 'coarser' / 'finer' / None."""
    if not _sides_compatible(generated.side, expert.side):
        return None
    if generated.attribute == expert.attribute:
        if not _values_match(generated.attribute, generated.value, expert.value):
            return None
        return part_tier(generated.part, expert.part, group)
    # "banded forewing" (pattern) vs "forewing band" (a coloured or present mark)
    for pat, mark in ((generated, expert), (expert, generated)):
        element = PATTERN_ELEMENTS.get(pat.value) if pat.attribute == "pattern" else None
        if element and mark.attribute in {"colour", "presence"} and mark.value != "absent" and \
                mark.part.endswith(" " + element):
            tier = part_tier(pat.part, mark.part.rsplit(" ", 1)[0], group)
            if tier:
                return tier if pat is generated else {"coarser": "finer", "finer": "coarser"}.get(tier, tier)
    return None


def _one_way(a: Trait, b: Trait) -> bool:
    """True for a pattern matched to a coloured mark ('banded wing' ~ 'red forewing band'): the mark implies the
    pattern, not the reverse, so such a match can confirm a difference but never contradict it (less red band says
    nothing about yellow bands)."""
    return {a.attribute, b.attribute} == {"colour", "pattern"}


_TOKEN = re.compile(r"[a-z]+|\d+")


def _tokens(text: str) -> set[str]:
    words = set(_TOKEN.findall(text.lower()))
    return {w[:-1] if w.endswith("s") and len(w) > 3 else w for w in words}


def token_overlap(a: str, b: str) -> float:
    """Jaccard overlap of word tokens (plural 's' dropped): the default fallback similarity."""
    ta, tb = _tokens(a), _tokens(b)
    return len(ta & tb) / len(ta | tb) if ta and tb else 0.0


def guard_ok(a: str, b: str) -> bool:
    """False when two phrases differ by an antonym pair, a number, or clashing colour families."""
    ta, tb = _tokens(a), _tokens(b)
    for x, y in ANTONYMS:
        if (x in ta and y in tb) or (y in ta and x in tb):
            return False
    na, nb = {t for t in ta if t.isdigit()}, {t for t in tb if t.isdigit()}
    if na and nb and na != nb:
        return False
    vocab = load_vocab()
    ca = {vocab.colour_words[t] for t in ta if t in vocab.colour_words}
    cb = {vocab.colour_words[t] for t in tb if t in vocab.colour_words}
    return not (ca and cb and not ca & cb)


def _phrase(d: TraitDifference) -> str:
    return d.phrase or trait_phrase(d.trait.with_(side=None))


def best_match(gen: TraitDifference, experts: list[TraitDifference], group: str | None = None,
               similarity: Similarity | None = token_overlap) -> tuple[TraitDifference | None, str | None, float]:
    """The best expert difference for a generated one: structural first (same direction preferred), then the
    guarded similarity fallback. Returns (match, tier, similarity)."""
    best: tuple[int, int, TraitDifference] | None = None
    for e in experts:
        tier = match_tier(gen.trait, e.trait, group)
        if tier is None or (e.direction != gen.direction and _one_way(gen.trait, e.trait)):
            continue
        rank = (TIER_ORDER[tier], 0 if e.direction == gen.direction else 1)
        if best is None or rank < best[:2]:
            best = (*rank, e)
            best_tier = tier
    if best is not None:
        return best[2], best_tier, 1.0
    if similarity is None:
        return None, None, 0.0
    scored = []
    known = _known_part(gen.trait.part, group)
    for e in experts:
        if e.trait.attribute != gen.trait.attribute or not guard_ok(_phrase(gen), _phrase(e)):
            continue
        if known and _known_part(e.trait.part, group):
            continue  # both parts are in the vocabulary: the structural test already said they differ
        s = float(similarity(_phrase(gen), _phrase(e)))
        if s >= EMBED_THRESHOLD:
            scored.append((s, e.direction == gen.direction, e))
    if not scored:
        return None, None, 0.0
    s, _, e = max(scored, key=lambda x: (x[0], x[1]))
    return e, "embedding", s


def check(generated: Iterable[TraitDifference], expert_a: TraitList | Iterable[Trait],
          expert_b: TraitList | Iterable[Trait], group: str | None = None,
          similarity: Similarity | None = token_overlap) -> list[CheckedTrait]:
    """Mark each generated difference (target = A, contrast = B) confirmed / contradicted / new."""
    experts = expert_differences(expert_a, expert_b, group)
    ta, tb = _traits(expert_a), _traits(expert_b)
    out = []
    for gen in generated:
        match, tier, sim = best_match(gen, experts, group, similarity)
        if match is None:
            in_a = any(match_tier(gen.trait, t, group) for t in ta)
            in_b = any(match_tier(gen.trait, t, group) for t in tb)
            note = "both species have it in the expert lists" if in_a and in_b else "not in the expert lists"
            out.append(CheckedTrait(gen, "new", None, None, 0.0, note))
            continue
        status = "confirmed" if match.direction == gen.direction else "contradicted"
        out.append(CheckedTrait(gen, status, match, tier, sim))  # type: ignore[arg-type]
    return out
