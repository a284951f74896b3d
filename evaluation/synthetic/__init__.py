"""Synthetic datasets with ground truth (shapes, butterfly-like species) and a tiny offline CLIP trained on them.

    from evaluation.synthetic import make_species, make_shapes, train_tiny_clip
    species = make_species("data/synth-species", n_per_species=40, image_size=128, seed=0)   # -> Path
    shapes = make_shapes("data/synth-shapes", n_per_class=100, image_size=256, seed=0)       # -> Path
    clip = train_tiny_clip(species, "models/tiny-clip", minutes=3.0)   # -> open_clip checkpoint folder

Both datasets are deterministic: the same arguments give byte-identical files. Each image depends only on
(seed, class, index), so a larger n_per_species keeps the first images unchanged. A folder is written
atomically (a temporary sibling folder renamed at the end): an interrupted run leaves nothing half-written.
Calling again with identical arguments on an existing dataset returns at once without regenerating (the
arguments are stored in dataset.json["config"]); a folder holding anything else raises DatasetError unless
overwrite=True. CLI: `finer-traits synth {species,shapes} OUT [--n-per-class N] [--size PX] [--seed S]` and
`finer-traits synth tiny-clip DATASET OUT [--minutes M]` (see evaluation.synthetic.tiny_clip).

On-disk layout (both datasets; paths in CSVs are relative to OUT and use '/')
------------------------------------------------------------------------------
OUT/images/<Species_name>/<id>.png   RGB image, ImageFolder layout: one folder per class, spaces in the
                                     class name written as underscores; <id> is a 5-digit index (00000.png).
OUT/masks/<Species_name>/<id>.png    whole-object binary mask, mode "L", 255 = object, 0 = background
                                     (species: the visible organism, occluded pixels are 0; shapes: the shape's
                                     own pixels, i.e. only the ring for outline shapes).
OUT/parts/<Species_name>/<id>.png    species only: uint8 label map, mode "L", 0 = background, else a part id
                                     from parts.json (the visible pixels of that part in this image).
OUT/manifest.csv                     one row per image, columns in this order:
                                       image        images/<Species_name>/<id>.png
                                       species      display name with spaces ("Synthia aurantiaca", "filled circle")
                                       common_name  e.g. "Orange-barred Synth" / "Filled circle"
                                       split        train or test (seeded, stratified per class; default 25 % test)
                                       mask         masks/<Species_name>/<id>.png
                                       parts        species only: parts/<Species_name>/<id>.png
                                       size_range   shapes only: large, medium or small
OUT/parts.json                       {"<part id>": "<part name>"}; background 0 is not listed.
                                       species: 1 body, 2 forewing, 3 forewing tip, 4 forewing band,
                                                5 hindwing, 6 hindwing margin, 7 hindwing eyespot, 8 hindwing tail
                                       shapes:  1 shape
OUT/traits.csv                       species only: the expert trait table, traits/ CSV format, columns
                                       taxon, part, attribute, value, text, source (source = "synthetic"), one row
                                       per trait of each species, e.g. "Synthia aurantiaca, forewing band, colour,
                                       orange, orange band across the forewing, synthetic". Attributes: colour
                                       (palette: black white grey brown red orange yellow green blue purple pink),
                                       presence (present/absent), count ("1", "2"), shape (tail: long/short).
OUT/pairs.csv                        species only: species_a, species_b, part, attribute, value_a, value_b:
                                       the designed differences of each sibling pair (one row per trait).
OUT/dataset.json                     name, version, seed, image_size, n_images, per-class count, species (name,
                                       common_name, sibling, folder), pairs, split counts, and "config" (the
                                       exact generation arguments).

Species (default 6 = 3 sibling pairs; n_species up to 12). Siblings share every ground colour:
  Synthia aurantiaca / Synthia rubra      forewing band colour orange / red
  Marginia alba / Marginia flava          hindwing margin colour white / yellow
  Caudia caudata / Caudia ecaudata        hindwing tail presence present / absent
  Ocellia ocellata / Ocellia caeca        hindwing eyespot presence present / absent
  Apicia nivea / Apicia rosea             forewing tip colour white / pink and hindwing eyespot count 1 / 2
  Formia longicauda / Formia brevicauda   hindwing tail shape long / short
Nuisances (pose, scale, position, clutter, colour jitter, blur, occlusion) are set by `Nuisance`
(moderate by default, `Nuisance.none()` for clean images).

Shapes: 6 classes "filled circle", "outline circle", "filled square", "outline square", "filled triangle",
"outline triangle"; one random-coloured, randomly rotated shape per image in one of three size ranges (about
80-100, 40-50, 20-25 px on a 256 px canvas, scaled with image_size) on a cluttered noise background.

Tests: tests/conftest.py has session-scoped fixtures `synthetic_species_dir` and `synthetic_shapes_dir`.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import TYPE_CHECKING

from evaluation.synthetic.draw import PALETTE, Nuisance
from evaluation.synthetic.shapes import SHAPE_CLASSES, make_shapes
from evaluation.synthetic.species import (
    DESIGNS,
    PARTS,
    SpeciesDesign,
    make_species,
    pair_differences,
    species_designs,
    trait_rows,
)
from traits.lazy import lazy_exports

if TYPE_CHECKING:
    from evaluation.synthetic.tiny_clip import train_tiny_clip

# The tiny CLIP needs open_clip and torch: imported when first used, not with the datasets.
lazy_exports(__name__, {"train_tiny_clip": "evaluation.synthetic.tiny_clip"})

__all__ = ["DESIGNS", "PALETTE", "PARTS", "SHAPE_CLASSES", "Nuisance", "SpeciesDesign", "cached_species",
           "make_shapes", "make_species", "pair_differences", "species_designs", "trait_rows", "train_tiny_clip"]


def cached_species(root: str | Path, **kwargs) -> Path:
    """make_species into root/species-<hash of the arguments>: reuses an identical earlier dataset."""
    key = json.dumps({k: v.to_dict() if isinstance(v, Nuisance) else v for k, v in kwargs.items()},
                     sort_keys=True, default=str)
    return make_species(Path(root) / f"species-{hashlib.sha1(key.encode()).hexdigest()[:10]}", **kwargs)
