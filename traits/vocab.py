"""Load the trait vocabularies (JSON data files in traits/vocab/) and normalise parts and colour words."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from traits.errors import TraitsError

VOCAB_DIR = Path(__file__).with_name("vocab")
GROUPS = ("butterfly", "bird", "generic")
# Suffixes of hyphenated colour words: "brass-colored" is a colour, "black-rimmed" describes a ring, not the mark.
COLOUR_SUFFIXES = ("colored", "coloured", "patterned", "tinged", "toned", "tinted", "hued")
RING_SUFFIXES = ("rimmed", "ringed", "edged", "bordered", "tipped", "centered", "centred", "lined", "washed")


@dataclass
class PartVocab:
    """Parts of one taxon group: a multi-parent hierarchy, surface synonyms, regions and elements."""

    group: str
    parents: dict[str, tuple[str, ...]]
    synonyms: dict[str, str]
    regions: set[str] = field(default_factory=set)
    elements: set[str] = field(default_factory=set)
    hosts: tuple[str, ...] = ()

    def normalise(self, words: str) -> str | None:
        """'HW border' -> 'hindwing margin', 'FW' -> 'forewing', 'tips' -> 'tip' (bare region); None if unknown."""
        text = " ".join(words.lower().replace("_", " ").split())
        if not text:
            return None
        if text in self.parents:
            return text
        if text in self.synonyms:
            return self.synonyms[text]
        tokens = text.split()
        for cut in range(len(tokens) - 1, 0, -1):
            head, tail = " ".join(tokens[:cut]), " ".join(tokens[cut:])
            host, region = self.normalise(head), self.normalise(tail)
            if host in self.hosts and region in self.regions:
                return self.compose(host, region)
        return None

    def compose(self, host: str, region: str) -> str:
        """'forewing' + 'tip' -> 'forewing tip'."""
        return f"{host} {region}"

    def host_of(self, part: str) -> str | None:
        """The wing a composed part sits on ('forewing tip' -> 'forewing'); the part itself for a host."""
        if part in self.hosts:
            return part
        for host in self.hosts:
            if part.startswith(host + " "):
                return host
        return None

    def region_of(self, part: str) -> str | None:
        """The region name of a composed part ('hindwing margin' -> 'margin'), else None."""
        host = self.host_of(part)
        if host and part != host:
            return part[len(host) + 1:]
        return part if part in self.regions else None

    def ancestors(self, part: str) -> set[str]:
        """All coarser parts of `part` (not including itself)."""
        seen: set[str] = set()
        stack = list(self.parents.get(part, ()))
        while stack:
            p = stack.pop()
            if p not in seen:
                seen.add(p)
                stack.extend(self.parents.get(p, ()))
        return seen


@dataclass
class Vocab:
    """All vocabularies: colours, pattern/shape/size/... words and parts per group."""

    base_colours: tuple[str, ...]
    sheens: tuple[str, ...]
    colour_anchors: dict[str, tuple[tuple[int, int, int], ...]]  # base colour -> sRGB shades (colour scorer)
    colour_words: dict[str, str]
    modifiers: set[str]
    adjacent: set[frozenset[str]]
    words: dict[str, dict[str, str]]
    parts: dict[str, PartVocab]

    def part_vocab(self, group: str) -> PartVocab:
        """The part vocabulary of a group; unknown groups raise a TraitsError."""
        if group not in self.parts:
            raise TraitsError(f"Unknown taxon group {group!r}.", f"Use one of: {', '.join(sorted(self.parts))}.")
        return self.parts[group]


def _build_parts(group: str, spec: dict) -> PartVocab:
    parents: dict[str, tuple[str, ...]] = {p: ((q,) if q else ()) for p, q in spec["parts"].items()}
    regions = dict(spec.get("regions", {}))
    hosts = tuple(spec.get("region_hosts", []))
    for region, region_parent in regions.items():
        for host in hosts:
            ps = [host]
            host_parent = parents.get(host, ())
            ps += [f"{hp} {region}" for hp in host_parent]
            if region_parent:
                ps.append(f"{host} {region_parent}")
            parents[f"{host} {region}"] = tuple(ps)
    return PartVocab(group, parents, dict(spec.get("synonyms", {})), set(regions),
                     set(spec.get("elements", [])), hosts)


@lru_cache(maxsize=4)
def load_vocab(directory: str | None = None) -> Vocab:
    """Load (once per process) the vocabularies from `directory` (default: traits/vocab, or $FINER_TRAITS_VOCAB)."""
    root = Path(directory or os.environ.get("FINER_TRAITS_VOCAB") or VOCAB_DIR)
    try:
        colours = json.loads((root / "colours.json").read_text(encoding="utf-8"))
        words = json.loads((root / "words.json").read_text(encoding="utf-8"))
        parts = json.loads((root / "parts.json").read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise TraitsError(f"Cannot read the trait vocabularies in {root}: {exc}",
                          "Point FINER_TRAITS_VOCAB at a folder with colours.json, words.json and parts.json.") from exc
    base = tuple(colours["base"])
    anchors = colours.get("anchors", {})
    missing = [c for c in base if not anchors.get(c)]
    if missing:
        raise TraitsError(f"{root / 'colours.json'}: the base colours {', '.join(missing)} have no 'anchors'.",
                          "Give every base colour a list of sRGB shades under 'anchors', e.g. \"red\": [[200, 30, 30]].")
    return Vocab(
        base_colours=base,
        sheens=tuple(colours.get("sheens", [])),
        colour_anchors={c: tuple(tuple(int(v) for v in rgb) for rgb in anchors[c]) for c in base},
        colour_words={k.lower(): v for k, v in colours["words"].items()},
        modifiers=set(colours.get("modifiers", [])),
        adjacent={frozenset(pair) for pair in colours.get("adjacent", [])},
        words={k: {w.lower(): v for w, v in d.items()} for k, d in words.items() if not k.startswith("_")},
        parts={g: _build_parts(g, spec) for g, spec in parts.items() if not g.startswith("_")},
    )


def _is_basic(word: str, vocab: Vocab) -> bool:
    # Basic colour terms (and their -ish forms) make compounds ("orange-red"); naturalists' tints qualify the
    # head instead ("salmon-orange" is an orange).
    base = vocab.colour_words.get(word)
    return base is not None and (word in vocab.base_colours or word == "gray" or word.endswith("ish"))


def normalise_colour(word: str, vocab: Vocab | None = None) -> str | None:
    """A colour word -> normalised value: 'vermilion' -> 'red', 'salmon-orange' -> 'orange', 'orange-red' ->
    'orange-red', 'brass-colored' -> 'yellow'; None when the word is not a colour."""
    vocab = vocab or load_vocab()
    text = word.lower().strip().replace("–", "-")
    pieces = [p for p in text.replace(" ", "-").split("-") if p]
    if not pieces:
        return None
    if pieces[-1] in RING_SUFFIXES:
        return None
    while pieces and (pieces[-1] in COLOUR_SUFFIXES):
        pieces.pop()
    pieces = [p for p in pieces if p not in vocab.modifiers]
    if not pieces or any(p not in vocab.colour_words for p in pieces):
        return None
    head = vocab.colour_words[pieces[-1]]
    values: list[str] = []
    for p in pieces[:-1]:
        base = vocab.colour_words[p]
        if _is_basic(p, vocab) and base != head and base not in values and base not in vocab.sheens:
            values.append(base)
    return "-".join([*values, head])


def colour_family(value: str) -> set[str]:
    """The base colours of a normalised colour value ('orange-red' -> {'orange', 'red'})."""
    return {v for v in value.split("-") if v}


def normalise_part(words: str, group: str = "butterfly") -> str | None:
    """Surface part words -> a vocabulary part ('HW border' -> 'hindwing margin'); None if unknown."""
    return load_vocab().part_vocab(group).normalise(words)
