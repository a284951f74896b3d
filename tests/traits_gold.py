"""Hand-made gold traits for six Leeds field-guide descriptions (written from reading the text, not the parser).

Annotation conventions (also in docs/traits.md):
- A colour said of a part -> (part, colour, base colour); a ground colour with no part ("Above, black") -> wing.
- A coloured element (spot, band/bar/line, eyespot, chevron; patch/blotch/dot count as spot) on a wing ->
  ("<wing> <element>", colour, value); an element sitting AT a region (tip, margin, base) -> (region, colour, value).
- An element with no colour word -> (element, presence, present). "dark" alone is not a colour.
- Pattern adjectives (mottled, banded, striated, webwork) -> (part, pattern, value); shape words -> shape;
  size words (large, small) -> size; a number before an element -> count.
- Ranges ("orange-red to vermilion") and lists ("black, brown, and blue") give one triple per colour.
- Naturalists' colour names map to base colours (vermilion/crimson -> red, copper -> orange, brass -> yellow,
  olive -> green, salmon-orange -> orange, rose-pink -> pink); two base colours joined give a compound (orange-red).
- Side (above/below), sex and wingspan are not part of the triple; duplicate triples count once.
"""

GOLD: dict[str, set[tuple[str, str, str]]] = {
    "Danaus plexippus": {
        ("body", "size", "large"),
        ("forewing", "shape", "long"),
        ("forewing", "shape", "drawn-out"),
        ("wing", "colour", "orange"),
        ("wing vein", "colour", "black"),
        ("wing margin", "colour", "black"),
        ("wing margin", "colour", "white"),
        ("forewing tip", "colour", "black"),
        ("forewing tip", "colour", "white"),
        ("forewing tip", "colour", "orange"),
        ("hindwing spot", "colour", "black"),
        ("hindwing spot", "count", "1"),
    },
    "Heliconius charitonius": {
        ("wing", "shape", "long"),
        ("wing", "shape", "narrow"),
        ("wing", "colour", "black"),
        ("wing", "pattern", "banded"),
        ("wing band", "colour", "yellow"),
        ("wing base", "colour", "red"),
    },
    "Heliconius erato": {
        ("wing", "shape", "long"),
        ("wing", "shape", "narrow"),
        ("wing", "shape", "rounded"),
        ("wing", "colour", "black"),
        ("forewing spot", "colour", "red"),
        ("forewing spot", "shape", "broad"),
        ("forewing spot", "colour", "pink"),
        ("hindwing band", "colour", "yellow"),
        ("hindwing band", "shape", "narrow"),
    },
    "Lycaena phlaeas": {
        ("forewing", "colour", "orange"),
        ("forewing", "colour", "yellow"),
        ("forewing spot", "presence", "present"),
        ("hindwing", "colour", "brown"),
        ("hindwing margin", "colour", "orange"),
        ("wing", "colour", "grey"),
        ("wing spot", "colour", "black"),
        ("hindwing band", "colour", "orange"),
    },
    "Vanessa atalanta": {
        ("forewing tip", "shape", "extended"),
        ("forewing tip", "shape", "clipped"),
        ("wing", "colour", "black"),
        ("forewing band", "colour", "orange-red"),
        ("forewing band", "colour", "red"),
        ("hindwing margin", "colour", "orange-red"),
        ("hindwing margin", "colour", "red"),
        ("wing", "pattern", "mottled"),
        ("wing", "colour", "brown"),
        ("wing", "colour", "blue"),
        ("forewing band", "colour", "pink"),
        ("forewing tip", "colour", "white"),
        ("hindwing spot", "colour", "blue"),
    },
    "Vanessa cardui": {
        ("forewing tip", "shape", "extended"),
        ("forewing tip", "shape", "rounded"),
        ("wing", "colour", "orange"),
        ("wing spot", "colour", "black"),
        ("wing margin", "colour", "black"),
        ("forewing tip", "colour", "black"),
        ("forewing tip", "colour", "white"),
        ("hindwing spot", "colour", "blue"),
        ("hindwing spot", "size", "small"),
        ("forewing", "colour", "pink"),
        ("forewing", "colour", "green"),
        ("forewing", "colour", "black"),
        ("forewing", "colour", "white"),
        ("hindwing", "colour", "green"),
        ("hindwing", "colour", "white"),
        ("hindwing", "pattern", "reticulate"),
        ("forewing band", "colour", "white"),
        ("forewing spot", "colour", "black"),
    },
}

# Written after the parser was tuned on GOLD, before running it on these two: a held-out check of the rules.
HELD_OUT: dict[str, set[tuple[str, str, str]]] = {
    "Pieris rapae": {
        ("wing", "colour", "white"),
        ("forewing tip", "colour", "grey"),
        ("forewing spot", "colour", "black"),
        ("forewing spot", "count", "1"),
        ("forewing spot", "count", "2"),
        ("hindwing costa", "colour", "black"),
        ("forewing tip", "colour", "yellow"),
        ("hindwing", "colour", "yellow"),
        ("forewing tip", "pattern", "spotted"),
        ("hindwing", "pattern", "spotted"),
        ("hindwing spot", "colour", "grey"),
    },
    "Papilio cresphontes": {
        ("body", "size", "large"),
        ("wing tail", "shape", "long"),
        ("wing tail", "shape", "spoon-shaped"),
        ("wing tail", "colour", "yellow"),
        ("wing", "colour", "brown-black"),
        ("forewing band", "count", "2"),
        ("forewing band", "shape", "broad"),
        ("forewing band", "colour", "yellow"),
        ("hindwing spot", "colour", "orange"),
        ("hindwing spot", "colour", "blue"),
        ("wing chevron", "colour", "blue"),
        ("wing spot", "colour", "orange"),
        ("wing", "colour", "yellow"),
        ("wing vein", "colour", "black"),
        ("wing margin", "colour", "black"),
        ("abdomen", "colour", "yellow"),
        ("abdomen", "colour", "black"),
        ("abdomen", "shape", "notched"),
        ("thorax", "colour", "yellow"),
        ("thorax", "pattern", "spotted"),
        ("thorax", "pattern", "striped"),
    },
}
