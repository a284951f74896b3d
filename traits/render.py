"""Readable phrases for traits ('orange-red forewing band', 'spotted hindwing', '2 forewing spots')."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # only for the annotation: traits.model imports this module for Trait.phrase()
    from traits.model import Trait


def trait_phrase(trait: Trait) -> str:
    """A short phrase for a trait, with its side when known ('black wing (upperside)')."""
    part, attr, value = trait.part, trait.attribute, trait.value
    if attr == "count":
        text = f"{value} {part}s" if value != "1" else f"1 {part}"
    elif attr == "presence":
        text = f"{part} {value}"
    elif attr == "size" and " " in value:
        text = f"{part} {value}"
    else:
        text = f"{value} {part}"
    if trait.side:
        text += f" ({trait.side}side)"
    return text
