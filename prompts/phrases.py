"""Stage 3 of describe: candidate trait phrases, each tied to a structured trait (part, attribute, value).

Sources: the taxon group's vocabulary (part x attribute x value templates), the expert lists of both species when
known, and a random-phrase control (WaffleCLIP showed random words can look as useful as real descriptors, so every
ranking is reported next to one). Filters: phrase length, near-duplicates, and phrases that merely name a species.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass

from traits.model import Trait
from traits.vocab import TaxonGroup, load_vocab, taxon_group

# Which parts get vocabulary phrases, and the pattern and shape values, come from the taxon group's file
# (traits/vocab/groups/<group>.json: candidates, values); colours from the group's palette.
# Words with no bearing on organisms: random-phrase controls are drawn from these (WaffleCLIP-style).
CONTROL_WORDS = ("kettle", "lantern", "violin", "harbour", "pencil", "thunder", "carpet", "engine", "saddle",
                 "marble", "ticket", "window", "ladder", "bucket", "velvet", "anchor", "parcel", "compass",
                 "whistle", "tunnel", "blanket", "hammer", "mirror", "orbit", "candle", "quartz", "meadow")
MIN_WORDS, MAX_WORDS, MAX_CHARS = 1, 8, 60


@dataclass(frozen=True)
class Candidate:
    """A phrase to score and the trait it stands for. source: 'vocab', 'expert' or 'control'."""

    phrase: str
    trait: Trait
    source: str = "vocab"

    @property
    def control(self) -> bool:
        """True for random-phrase controls."""
        return self.source == "control"


def render_trait(trait: Trait) -> str:
    """A short phrase for a trait: 'orange forewing band', 'spotted hindwing', 'hindwing tail', 'long hindwing tail'."""
    part, attr, value = trait.part, trait.attribute, trait.value
    if attr == "colour":
        return f"{value} {part}"
    if attr == "pattern":
        return f"{value} {part}"
    if attr == "presence":
        return part if value == "present" else f"no {part}"
    if attr in ("shape", "size"):
        return f"{value} {part}"
    if attr == "count":
        return f"{value} {part}{'s' if value not in ('1', 'one') else ''}"
    return f"{value} {part}".strip()


def vocab_candidates(group: str = "butterfly", attributes: Iterable[str] = ("colour", "presence", "pattern", "shape"),
                     parts: Sequence[str] | None = None) -> list[Candidate]:
    """Part x attribute x value phrases for a taxon group (its file's candidate parts and values, its palette)."""
    spec = taxon_group(group)
    colours = load_vocab().for_group(group).base_colours
    out: list[Candidate] = []
    for attr in attributes:
        for part in (parts if parts is not None else spec.candidates.get(attr, ())):
            if attr == "colour":
                values: Sequence[str] = colours
            elif attr == "presence":
                values = ("present",)
            elif attr == "pattern":
                values = spec.patterns
            elif attr == "shape":
                values = spec.shapes.get(part, ())
            else:
                values = ()
            for v in values:
                t = Trait(part=part, attribute=attr, value=v, raw=v, text="", side=None)
                out.append(Candidate(render_trait(t), t, "vocab"))
    return out


def value_options(trait: Trait, group: str = "butterfly") -> tuple[str, ...]:
    """The values a trait's attribute can take in a group: its palette colours, its patterns, its shapes of the
    part; empty for attributes without a fixed set (counts, sizes)."""
    spec = taxon_group(group)
    if trait.attribute == "colour":
        return load_vocab().for_group(group).base_colours
    if trait.attribute == "pattern":
        return spec.patterns
    if trait.attribute == "shape":
        return spec.shapes.get(trait.part, ())
    return ()


def place_candidates(cands: Iterable[Candidate], group: TaxonGroup, located: Collection[str] = ()) -> list[Candidate]:
    """Each candidate on the part the group can measure it on: a group that cannot locate a part names its colour
    and pattern traits after the whole organism ('red whole bird', never a guessed 'red breast') and drops its other
    traits (a bill's shape cannot be judged on the whole bird); controls pass unchanged. located: parts the model's
    fitted part concepts find (pipeline.parts), located as if the group's layout had them."""
    out = []
    for c in cands:
        if c.control:
            out.append(c)
            continue
        part = group.parts.normalise(c.trait.part) or c.trait.part
        placed = group.placed_part(part, c.trait.attribute, located)
        if placed is None:
            continue
        if placed == c.trait.part or (placed == part and group.unlocated == "keep"):
            out.append(c)  # measured where it says: the candidate as it came
            continue
        t = c.trait.with_(part=placed)
        out.append(Candidate(render_trait(t), t, c.source))
    return out


def expert_candidates(trait_lists: Iterable[Iterable[Trait]]) -> list[Candidate]:
    """Phrases for every trait of the given expert lists (both species of a pair)."""
    out = []
    for tl in trait_lists:
        for t in tl:
            if t.attribute == "presence" and t.value == "absent":
                t = t.with_(value="present")  # describe scores what is there; 'absent' is a '-' direction
            out.append(Candidate(render_trait(t), t, "expert"))
    return out


def control_candidates(n: int = 8, seed: int = 0, words_per_phrase: int = 2) -> list[Candidate]:
    """n random-word phrases ('kettle lantern'), a control that real phrases must beat."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        phrase = " ".join(rng.sample(CONTROL_WORDS, words_per_phrase))
        out.append(Candidate(phrase, Trait(part="control", attribute="control", value=phrase, text=phrase), "control"))
    return out


def measurable_controls(cands: Sequence[Candidate], measurable: Callable[[str], bool], group: str = "butterfly",
                        seed: int = 0) -> list[Candidate]:
    """cands with every random-word control the scorer cannot measure turned into one it can: its words plus a
    random colour of the group's palette on a random part that the real phrases name ('kettle lantern green
    hindwing'), scored on that part like a real phrase. The colour scorer reads only colours and patterns, so
    bare random words would score nothing (NaN) and the controls would measure nothing; drawn at random, part
    and colour say how large an effect a trait nobody chose reaches on this photo. Controls the scorer can
    read (embedding scorers: any text) and all real phrases pass unchanged."""
    parts = list(dict.fromkeys(c.trait.part for c in cands if not c.control and c.trait.part))
    colours = load_vocab().for_group(group).base_colours
    if not parts or not colours:
        return list(cands)
    rng = random.Random(seed)
    out = []
    for c in cands:
        if c.control and not measurable(c.phrase):
            part, colour = rng.choice(parts), rng.choice(colours)
            phrase = f"{c.phrase} {colour} {part}"
            c = Candidate(phrase, Trait(part=part, attribute="control", value=phrase, text=phrase), "control")
        out.append(c)
    return out


def _norm(phrase: str) -> str:
    return " ".join(re.sub(r"[^a-z0-9\- ]", " ", phrase.lower()).split())


def _near_duplicate(a: str, b: str) -> bool:
    """Same words up to order, plural 's' and grey/gray spelling ('grey wings' / 'wing gray')."""
    def key(text: str) -> list[str]:
        return sorted(w.replace("gray", "grey").removesuffix("s") for w in text.split())

    return key(a) == key(b)


def names_species(phrase: str, species_names: Iterable[str]) -> bool:
    """True when the phrase contains a species' genus, epithet or common-name word (it would just name the class)."""
    words = set(_norm(phrase).replace("-", " ").split())
    for name in species_names:
        for tok in _norm(name).replace("-", " ").split():
            if len(tok) >= 4 and tok in words:
                return True
    return False


def filter_candidates(cands: Iterable[Candidate], species_names: Iterable[str] = (), max_chars: int = MAX_CHARS,
                      max_words: int = MAX_WORDS) -> list[Candidate]:
    """Drop phrases that are too long or empty, near-duplicates of an earlier phrase, or that name a species.

    Expert phrases are kept ahead of vocabulary duplicates (they come first when passed first).
    """
    names = [n for n in species_names if n]
    kept: list[Candidate] = []
    seen: list[str] = []
    seen_keys: set[tuple[str, str, str]] = set()
    for c in cands:
        text = _norm(c.phrase)
        n_words = len(text.split())
        if not text or len(text) > max_chars or not (MIN_WORDS <= n_words <= max_words):
            continue
        if not c.control and names_species(text, names):
            continue
        if not c.control and c.trait.key in seen_keys:
            continue
        if any(_near_duplicate(text, s) for s in seen):
            continue
        seen.append(text)
        if not c.control:
            seen_keys.add(c.trait.key)
        kept.append(c)
    return kept


def candidate_phrases(group: str = "butterfly", expert_lists: Sequence[Iterable[Trait]] = (),
                      species_names: Iterable[str] = (), n_controls: int = 8, seed: int = 0,
                      located: Collection[str] = ()) -> list[Candidate]:
    """All candidates for one species pair: expert phrases first, then vocabulary phrases, then controls; placed on
    the parts the group can measure (place_candidates; located: parts a model's part concepts find), then filtered."""
    cands = [*expert_candidates(expert_lists), *vocab_candidates(group), *control_candidates(n_controls, seed)]
    return filter_candidates(place_candidates(cands, taxon_group(group), located), species_names)
