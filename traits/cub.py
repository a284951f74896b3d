"""CUB-200-2011 attributes: the 312 `has_<part>_<type>::<value>` names, per-class percentages, readable traits,
and the attributes that separate two species (|p_A - p_B| >= tau, METHODS.md section 4)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from traits.errors import TraitsError
from traits.model import Trait, TraitDifference, TraitList
from traits.names import normalise_name
from traits.vocab import Vocab, load_vocab, normalise_colour

# CUB group names (the part of `has_<group>::`) -> (part, attribute). `primary_color` is the bird's main colour
# in CUB's annotation tool (not the primary feathers), so it is a colour of the whole body.
GROUPS: dict[str, tuple[str, str]] = {
    "bill_shape": ("bill", "shape"), "wing_color": ("wing", "colour"), "upperparts_color": ("upperparts", "colour"),
    "underparts_color": ("underparts", "colour"), "breast_pattern": ("breast", "pattern"),
    "back_color": ("back", "colour"), "tail_shape": ("tail", "shape"), "upper_tail_color": ("upper tail", "colour"),
    "head_pattern": ("head", "pattern"), "breast_color": ("breast", "colour"), "throat_color": ("throat", "colour"),
    "eye_color": ("eye", "colour"), "bill_length": ("bill", "size"), "forehead_color": ("forehead", "colour"),
    "under_tail_color": ("under tail", "colour"), "nape_color": ("nape", "colour"),
    "belly_color": ("belly", "colour"), "wing_shape": ("wing", "shape"), "size": ("body", "size"),
    "shape": ("body", "shape"), "back_pattern": ("back", "pattern"), "tail_pattern": ("tail", "pattern"),
    "belly_pattern": ("belly", "pattern"), "primary_color": ("body", "colour"), "leg_color": ("leg", "colour"),
    "bill_color": ("bill", "colour"), "crown_color": ("crown", "colour"), "wing_pattern": ("wing", "pattern"),
}
# Plural display names: "blue wings", but "blue crown".
PLURAL = {"wing": "wings", "leg": "legs", "eye": "eyes", "primaries": "primaries", "upperparts": "upperparts",
          "underparts": "underparts"}


@dataclass(frozen=True)
class CubAttribute:
    """One CUB attribute: id (1-based), raw name, and its trait."""

    id: int
    name: str
    trait: Trait
    label: str  # readable trait, e.g. 'blue wings'


def _value(raw: str, attribute: str, vocab: Vocab | None = None) -> str:
    raw = raw.strip()
    if attribute == "colour":
        if raw in {"multi-colored"}:
            return "multicoloured"
        return normalise_colour(raw, vocab) or raw
    words = load_vocab().words
    simple = raw.replace("_", " ")
    if attribute == "shape":
        simple = simple.removesuffix(" tail").removesuffix("-wings").removesuffix("-like")
        return words["shape"].get(simple, simple).replace("_", " ")
    if attribute == "size":
        size = simple.split(" (")[0]
        return size
    if attribute == "pattern":
        return words["pattern"].get(simple, simple)
    return simple


def render_cub_attribute(name: str) -> str:
    """'has_wing_color::blue' -> 'blue wings'; every one of the 312 CUB names renders to a readable phrase."""
    if "::" not in name or not name.startswith("has_"):
        raise TraitsError(f"Not a CUB attribute name: {name!r}.", "Use names like 'has_wing_color::blue'.")
    group, raw = name[4:].split("::", 1)
    if group not in GROUPS:
        raise TraitsError(f"Unknown CUB attribute group {group!r} in {name!r}.",
                          f"Known groups: {', '.join(sorted(GROUPS))}.")
    part, attribute = GROUPS[group]
    words = raw.replace("_", " ").strip()
    shown = PLURAL.get(part, part)
    if group == "bill_length":
        return "bill about as long as the head" if words.startswith("about") else f"bill {words.replace('head', 'the head')}"
    if group == "size":
        size, _, rest = words.partition(" (")
        rest = rest.rstrip(")").replace(" - ", "-")
        return f"{size} size ({rest})" if rest else f"{size} size"
    if group == "shape":
        if words == "chicken-like-marsh":
            return "chicken-like marsh bird shape"
        return f"{words} body shape"
    if group == "wing_shape":
        return f"{words.replace('-wings', '').replace('-', ' ')} wings"
    if group == "tail_shape":
        return words  # already "notched tail", "fan-shaped tail"
    if group == "bill_shape":
        return "hooked seabird bill" if words == "hooked seabird" else f"{words} bill"
    if group == "head_pattern":
        return f"head with {words}" if words not in {"plain", "capped", "crested", "masked", "spotted",
                                                     "striped", "unique pattern"} else f"{words} head"
    if attribute == "pattern":
        return f"{words} {shown}"
    return f"{words} {shown}"


def parse_cub_attribute(attr_id: int, name: str, vocab: Vocab | None = None) -> CubAttribute:
    """One line of attributes.txt -> CubAttribute with a Trait (colours in `vocab`'s palette, default the shared)."""
    group, raw = name[4:].split("::", 1)
    part, attribute = GROUPS[group]
    label = render_cub_attribute(name)
    trait = Trait(part, attribute, _value(raw, attribute, vocab), raw, text=label)
    return CubAttribute(attr_id, name, trait, label)


class CubAttributes:
    """The CUB class x attribute table: percent of each species' images showing each attribute."""

    def __init__(self, classes: list[str], attributes: list[CubAttribute], percent: np.ndarray, root: Path):
        self.classes = classes
        self.attributes = attributes
        self.percent = percent
        self.root = root
        self._index = {c: i for i, c in enumerate(classes)}
        for i, c in enumerate(classes):
            self._index.setdefault(normalise_name(c), i)

    def __repr__(self) -> str:
        return f"CubAttributes({len(self.classes)} classes x {len(self.attributes)} attributes from {self.root})"

    def class_index(self, name: str | int) -> int:
        """Index of a class by '001.Black_footed_Albatross', 'Black footed Albatross' or 1-based id."""
        if isinstance(name, int) or (isinstance(name, str) and name.isdigit()):
            idx = int(name) - 1
            if 0 <= idx < len(self.classes):
                return idx
        elif name in self._index or normalise_name(name) in self._index:
            return self._index.get(name, self._index.get(normalise_name(name), -1))
        raise TraitsError(f"Unknown CUB class {name!r}.",
                          "Use a name from classes.txt (e.g. '001.Black_footed_Albatross') or a 1-based id.")

    def row(self, name: str | int) -> np.ndarray:
        """The 312 percentages of one class."""
        return self.percent[self.class_index(name)]

    def part_colours(self, name: str | int) -> dict[str, dict[str, float]]:
        """Per part, the percentage of a class's images whose part shows each colour ({'breast': {'red': 62.5, ...}})."""
        out: dict[str, dict[str, float]] = {}
        for a, p in zip(self.attributes, self.row(name), strict=True):
            if a.trait.attribute == "colour":
                shares = out.setdefault(a.trait.part, {})
                shares[a.trait.value] = max(shares.get(a.trait.value, 0.0), float(p))
        return out

    def trait_list(self, name: str | int, min_percent: float = 50.0) -> TraitList:
        """Attributes shown by at least `min_percent` of a class's images, as a TraitList (source 'cub')."""
        idx = self.class_index(name)
        traits = [a.trait for a, p in zip(self.attributes, self.percent[idx], strict=True) if p >= min_percent]
        return TraitList(self.classes[idx], traits, "cub", f"{self.root} (>= {min_percent:g}% of images)")

    def differences(self, a: str | int, b: str | int, tau: float = 40.0) -> list[TraitDifference]:
        """Attributes with |p_A - p_B| >= tau, direction '+' when A shows it more; strongest first."""
        if not 0 < tau <= 100:
            raise TraitsError(f"tau must be in (0, 100] percent points, got {tau}.", "Use e.g. tau=40.")
        ia, ib = self.class_index(a), self.class_index(b)
        gap = self.percent[ia] - self.percent[ib]
        order = np.argsort(-np.abs(gap), kind="stable")
        out = []
        for j in order:
            if abs(gap[j]) < tau:
                break
            attr = self.attributes[j]
            out.append(TraitDifference(attr.trait, "+" if gap[j] > 0 else "-", self.classes[ia], self.classes[ib],
                                       float(abs(gap[j])), attr.label))
        return out


def load_cub(directory: str | Path, group: str | None = None) -> CubAttributes:
    """Read attributes.txt, classes.txt and class_attribute_labels_continuous.txt from a CUB attribute folder.

    group: read the colour values in that taxon group's palette ('bird': CUB's own 15 colour words, so rufous,
    buff and olive stay themselves); default the shared palette (rufous, buff -> brown; olive -> green)."""
    root = Path(directory)
    vocab = load_vocab().for_group(group)
    need = ["attributes.txt", "classes.txt", "class_attribute_labels_continuous.txt"]
    missing = [n for n in need if not (root / n).is_file()]
    if missing:
        raise TraitsError(f"{root} is not a CUB attribute folder: missing {', '.join(missing)}.",
                          "Point at the folder holding CUB-200-2011's attributes.txt, classes.txt and "
                          "attributes/class_attribute_labels_continuous.txt.")
    attributes = []
    for n, line in enumerate((root / "attributes.txt").read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        parts = line.split()
        if len(parts) != 2 or not parts[0].isdigit():
            raise TraitsError(f"attributes.txt line {n}: expected '<id> <name>', got {line!r}.",
                              "Restore the original CUB attributes.txt.")
        try:
            attributes.append(parse_cub_attribute(int(parts[0]), parts[1], vocab))
        except (KeyError, ValueError) as exc:
            raise TraitsError(f"attributes.txt line {n}: cannot read attribute {parts[1]!r} ({exc}).",
                              "Restore the original CUB attributes.txt.") from exc
    classes = [ln.split()[1] for ln in (root / "classes.txt").read_text(encoding="utf-8").splitlines() if ln.strip()]
    try:
        percent = np.loadtxt(root / "class_attribute_labels_continuous.txt", dtype=np.float64, ndmin=2)
    except ValueError as exc:
        raise TraitsError(f"class_attribute_labels_continuous.txt is not a numeric table: {exc}",
                          "Restore the original CUB file.") from exc
    if percent.shape != (len(classes), len(attributes)):
        raise TraitsError(f"class_attribute_labels_continuous.txt has shape {percent.shape}, expected "
                          f"({len(classes)}, {len(attributes)}) from classes.txt and attributes.txt.",
                          "Use the three files from the same CUB release.")
    return CubAttributes(classes, attributes, percent, root)


def differences(cub: CubAttributes, a: str | int, b: str | int, tau: float = 40.0) -> list[TraitDifference]:
    """Module-level form of CubAttributes.differences."""
    return cub.differences(a, b, tau)
