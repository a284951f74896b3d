"""Load the trait vocabularies and taxon groups (JSON data files in traits/vocab/) and normalise parts and colours.

A taxon group is one file, traits/vocab/groups/<name>.json: its part hierarchy, palette, candidate phrases and how
its parts are found on a photo (docs/taxon-groups.md). A new group is a new file; no code changes.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import os
from collections.abc import Collection
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from traits.errors import BadValueError, TraitsError, UnknownGroupError
from traits.model import SIDES

VOCAB_DIR = Path(__file__).with_name("vocab")
GROUPS_DIR = "groups"  # under the vocabulary folder: one <group>.json per taxon group
DEFAULT_GROUP = "butterfly"  # the group of models trained before groups existed
# How a group's parts are found: a box layout of the usual pose; DFF part concepts fitted per model
# (pipeline.parts, `finer-traits parts fit`); or not at all.
LOCATE_METHODS = ("layout", "dff", "none")
UNLOCATED = ("keep", "whole")  # a trait on a part the group cannot locate: keep its name, or say the whole organism
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


Box = tuple[float, float, float, float]


@dataclass(frozen=True)
class TaxonGroup:
    """One taxon group (traits/vocab/groups/<name>.json): parts, palette, candidate phrases, how parts are found.

    layout: part -> boxes (u0, v0, u1, v1) in the organism's core box for the group's usual pose (empty when parts
    are not located). unlocated: 'keep' measures a part the layout lacks on the whole organism under its own name;
    'whole' names such a colour or pattern trait after `whole_part` ('whole bird') instead of guessing a part.
    """

    name: str
    description: str
    organism: str
    parts: PartVocab
    whole_part: str | None
    default_part: str
    palette: dict[str, Any]
    candidates: dict[str, tuple[str, ...]]
    patterns: tuple[str, ...]
    shapes: dict[str, tuple[str, ...]]
    locate: str
    unlocated: str
    layout: dict[str, tuple[Box, ...]]
    path: Path | None = None
    # Settings of the locate method beyond layout (dff: the default tap and k of `finer-traits parts fit`).
    locate_options: dict[str, Any] = field(default_factory=dict)

    def locates(self, part: str) -> bool:
        """Whether the group can find this part on a photo (its layout has boxes for it)."""
        return part in self.layout

    def placed_part(self, part: str, attribute: str, located: Collection[str] = ()) -> str | None:
        """The part a candidate trait is measured on and named after: its own part when the group locates it (its
        layout, or `located`: the parts a model's fitted part concepts find), or keeps unlocated names; with
        unlocated 'whole', colours and patterns of an unlocated part go to the whole organism, and other
        attributes of it (a bill's shape cannot be judged on the whole bird) give None."""
        if self.unlocated == "keep" or self.locates(part) or part in located or part == self.whole_part:
            return part
        if attribute in ("colour", "pattern"):
            return self.whole_part
        return None


@dataclass
class Vocab:
    """All vocabularies: the shared colour palette, pattern/shape/size/... words, parts and taxon groups."""

    base_colours: tuple[str, ...]
    sheens: tuple[str, ...]
    colour_anchors: dict[str, tuple[tuple[int, int, int], ...]]  # base colour -> sRGB shades (colour scorer)
    colour_words: dict[str, str]
    modifiers: set[str]
    adjacent: set[frozenset[str]]
    words: dict[str, dict[str, str]]
    parts: dict[str, PartVocab]
    groups: dict[str, TaxonGroup] = field(default_factory=dict)
    _views: dict[str, Vocab] = field(default_factory=dict, repr=False)

    def group(self, name: str) -> TaxonGroup:
        """A taxon group by name; an unknown name raises an UnknownGroupError listing the groups, closest first."""
        key = str(name).strip().lower()
        if key not in self.groups:
            known = list(self.groups)
            close = difflib.get_close_matches(key, known, n=1, cutoff=0.5)
            hint = f"Did you mean {close[0]!r}? " if close else ""
            raise UnknownGroupError(f"Unknown taxon group {name!r}.",
                                    f"{hint}Known groups: {', '.join(known)} (`finer-traits groups` describes them); "
                                    f"a new group is a new file in {VOCAB_DIR / GROUPS_DIR} (docs/taxon-groups.md).")
        return self.groups[key]

    def part_vocab(self, group: str) -> PartVocab:
        """The part vocabulary of a group; unknown groups raise an UnknownGroupError (a TraitsError)."""
        return self.group(group).parts

    def for_group(self, group: str | None) -> Vocab:
        """This vocabulary with the group's palette in place of the shared one (base colours, anchors, colour
        words, sheens); the shared vocabulary itself when the group keeps the shared palette."""
        if group is None or not self.group(group).palette:
            return self
        key = self.group(group).name
        if key not in self._views:
            self._views[key] = _palette_view(self, self.group(group))
        return self._views[key]


def _palette_view(vocab: Vocab, group: TaxonGroup) -> Vocab:
    """The shared vocabulary with a group's palette: its base colours (default: the shared ones), sheens, and
    anchors and colour words laid over the shared ones; words whose colour the group's palette lacks are dropped."""
    spec = group.palette
    base = tuple(spec.get("base", vocab.base_colours))
    sheens = tuple(spec.get("sheens", vocab.sheens))
    anchors = {**vocab.colour_anchors,
               **{c: tuple(tuple(int(v) for v in rgb) for rgb in shades) for c, shades in spec.get("anchors", {}).items()}}
    missing = [c for c in base if not anchors.get(c)]
    if missing:
        raise TraitsError(f"{group.path}: the palette colours {', '.join(missing)} have no 'anchors'.",
                          "Give every new base colour a list of sRGB shades under palette.anchors, "
                          "e.g. \"rufous\": [[170, 80, 40]].")
    words = {**vocab.colour_words, **{k.lower(): v for k, v in spec.get("words", {}).items()}}
    words.update({c: c for c in (*base, *sheens)})
    return dataclasses.replace(
        vocab, base_colours=base, sheens=sheens, colour_anchors={c: anchors[c] for c in base},
        colour_words={w: c for w, c in words.items() if c in base or c in sheens},
        modifiers=vocab.modifiers | set(spec.get("modifiers", [])), _views={})


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


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise TraitsError(f"Cannot read {path}: {exc}", "Fix the JSON (docs/taxon-groups.md shows the format).") from exc


def _build_group(name: str, spec: dict, path: Path | None = None) -> TaxonGroup:
    """A TaxonGroup from one group file's contents (checked: the fix names the field)."""
    where = path or name
    try:
        parts = _build_parts(name, spec)
        locate = dict(spec.get("locate") or {"method": "none"})
        method, unlocated = locate.get("method", "none"), locate.get("unlocated", "keep")
        if method not in LOCATE_METHODS or unlocated not in UNLOCATED:
            raise TraitsError(f"{where}: locate.method {method!r} / locate.unlocated {unlocated!r} is not known.",
                              f"Use method one of {', '.join(LOCATE_METHODS)} and unlocated one of "
                              f"{', '.join(UNLOCATED)}.")
        whole = spec.get("whole_part")
        if unlocated == "whole" and whole not in parts.parents:
            raise TraitsError(f"{where}: unlocated 'whole' needs whole_part to be one of its parts (got {whole!r}).",
                              "Add the whole organism as a top-level part, e.g. \"whole bird\": null.")
        layout = {p: tuple(tuple(float(v) for v in box) for box in boxes)
                  for p, boxes in (locate.get("layout") or {}).items()}
        if any(len(b) != 4 for boxes in layout.values() for b in boxes):
            raise TraitsError(f"{where}: every layout box needs four numbers (u0, v0, u1, v1).",
                              "Give boxes as [u0, v0, u1, v1] fractions of the organism's box.")
        values = spec.get("values", {})
        return TaxonGroup(
            name=name, description=str(spec.get("description", "")), organism=str(spec.get("organism", name)),
            parts=parts, whole_part=whole, default_part=str(spec.get("default_part") or whole or "body"),
            palette=dict(spec.get("palette") or {}),
            candidates={a: tuple(ps) for a, ps in (spec.get("candidates") or {}).items()},
            patterns=tuple(values.get("pattern", ())),
            shapes={p: tuple(v) for p, v in (values.get("shape") or {}).items()},
            locate=method, unlocated=unlocated, layout=layout if method == "layout" else {}, path=path,
            locate_options={k: v for k, v in locate.items() if k not in ("method", "unlocated", "layout")})
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise TraitsError(f"{where}: not a taxon group file ({type(exc).__name__}: {exc}).",
                          "Compare it with traits/vocab/groups/bird.json (docs/taxon-groups.md).") from exc


def _load_groups(root: Path) -> dict[str, TaxonGroup]:
    """Every <name>.json under root/groups, the default group first (expert parts are normalised in this order)."""
    folder = root / GROUPS_DIR
    files = sorted(folder.glob("*.json")) if folder.is_dir() else []
    if not files:
        raise TraitsError(f"No taxon group files in {folder}.",
                          f"Put one <group>.json per taxon group there (copy them from {VOCAB_DIR / GROUPS_DIR}).")
    groups = {f.stem.lower(): _build_group(f.stem.lower(), _read_json(f), f) for f in files}
    order = sorted(groups, key=lambda g: (g != DEFAULT_GROUP, g))
    return {g: groups[g] for g in order}


@lru_cache(maxsize=4)
def load_vocab(directory: str | None = None) -> Vocab:
    """Load (once per process) the vocabularies from `directory` (default: traits/vocab, or $FINER_TRAITS_VOCAB)."""
    root = Path(directory or os.environ.get("FINER_TRAITS_VOCAB") or VOCAB_DIR)
    try:
        colours = json.loads((root / "colours.json").read_text(encoding="utf-8"))
        words = json.loads((root / "words.json").read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise TraitsError(f"Cannot read the trait vocabularies in {root}: {exc}",
                          "Point FINER_TRAITS_VOCAB at a folder with colours.json, words.json and groups/.") from exc
    groups = _load_groups(root)
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
        parts={g: grp.parts for g, grp in groups.items()},
        groups=groups,
    )


def group_names() -> tuple[str, ...]:
    """The known taxon groups, the default group first."""
    return tuple(load_vocab().groups)


def taxon_group(name: str | None = None) -> TaxonGroup:
    """The taxon group called `name` (default: butterfly); unknown names raise an UnknownGroupError."""
    return load_vocab().group(name or DEFAULT_GROUP)


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


def normalise_side(value: str | None) -> str | None:
    """The side of the organism a photo shows, as field guides word it ('above', 'dorsal', 'upperside' -> 'upper';
    'below', 'ventral', 'underside' -> 'under'); None or '' for not stated. Anything else is a clear error."""
    if value is None or not str(value).strip():
        return None
    word = " ".join(str(value).lower().replace("_", " ").replace("-", " ").split())
    sides = load_vocab().words.get("side", {})
    if word in SIDES:
        return word
    for form in (word, word.replace(" ", "")):  # 'under side' is the vocabulary's 'underside'
        if form in sides:
            return sides[form]
    raise BadValueError(f"Unknown side {value!r}.",
                        "Use 'upper' (above, dorsal, upperside) or 'under' (below, ventral, underside), "
                        "or leave it out when the photo's side is not known.")
