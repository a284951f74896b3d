"""Synthetic butterfly-like species defined by trait values on known parts, with per-image part label maps.

Every species shares one body plan (body, left/right forewings with a tip patch and a band, hindwings with a
margin, optional eyespots and tail). Species come in sibling pairs that share every ground colour and differ
only in one or two designed traits, so the part that tells siblings apart is known exactly in every image.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw
from scipy import ndimage

from evaluation.synthetic import draw
from evaluation.synthetic.draw import PALETTE, Nuisance
from evaluation.synthetic.io import (
    DATASET_JSON,
    MANIFEST,
    atomic_dataset_dir,
    check_dataset_args,
    dataset_images,
    folder_name,
    save_png,
    split_counts,
    write_csv,
    write_json,
)
from traits.errors import BadValueError

DATASET_VERSION = 2  # 2: the hindwing margin is the outer border only (not the edge along body and forewing)
TEMPLATE_SIZE = 256

# Part ids in the label maps (0 is background). Names follow the traits/ butterfly vocabulary.
PARTS: dict[int, str] = {
    1: "body",
    2: "forewing",
    3: "forewing tip",
    4: "forewing band",
    5: "hindwing",
    6: "hindwing margin",
    7: "hindwing eyespot",
    8: "hindwing tail",
}
PART_IDS = {name: i for i, name in PARTS.items()}


@dataclass(frozen=True)
class SpeciesDesign:
    """Trait values of one synthetic species (colours are palette names)."""

    name: str
    common_name: str
    body: str
    forewing: str
    tip: str
    band: str
    hindwing: str
    margin: str
    eyespots: int = 0  # 0 = no eyespot
    eyespot_colour: str = "blue"
    tail: str = "absent"  # "absent", "long" or "short"
    sibling: str = field(default="", compare=False)


def _pair(genus: str, ground: dict, a: tuple[str, str, dict], b: tuple[str, str, dict]) -> list[SpeciesDesign]:
    sa = SpeciesDesign(name=f"{genus} {a[0]}", common_name=a[1], **{**ground, **a[2]})
    sb = SpeciesDesign(name=f"{genus} {b[0]}", common_name=b[1], **{**ground, **b[2]})
    return [SpeciesDesign(**{**sa.__dict__, "sibling": sb.name}), SpeciesDesign(**{**sb.__dict__, "sibling": sa.name})]


# Sibling pairs, in order; the first three make the default 6-species set (two colour pairs, one presence pair).
DESIGNS: list[SpeciesDesign] = [
    *_pair("Synthia", dict(body="black", forewing="brown", tip="white", band="orange", hindwing="brown",
                           margin="black"),
           ("aurantiaca", "Orange-barred Synth", {}), ("rubra", "Red-barred Synth", {"band": "red"})),
    *_pair("Marginia", dict(body="grey", forewing="black", tip="white", band="green", hindwing="black",
                            margin="white"),
           ("alba", "White-edged Margin", {}), ("flava", "Yellow-edged Margin", {"margin": "yellow"})),
    *_pair("Caudia", dict(body="black", forewing="yellow", tip="black", band="black", hindwing="yellow",
                          margin="black", eyespots=1, eyespot_colour="blue"),
           ("caudata", "Tailed Caudia", {"tail": "long"}), ("ecaudata", "Tailless Caudia", {})),
    *_pair("Ocellia", dict(body="brown", forewing="orange", tip="black", band="white", hindwing="orange",
                           margin="black", eyespot_colour="blue"),
           ("ocellata", "Eyed Ocellia", {"eyespots": 1}), ("caeca", "Plain Ocellia", {})),
    *_pair("Apicia", dict(body="black", forewing="blue", tip="white", band="black", hindwing="blue",
                          margin="black", eyespots=1, eyespot_colour="yellow"),
           ("nivea", "Snow-tipped Apicia", {}), ("rosea", "Rose-tipped Apicia", {"tip": "pink", "eyespots": 2})),
    *_pair("Formia", dict(body="brown", forewing="green", tip="black", band="yellow", hindwing="green",
                          margin="black"),
           ("longicauda", "Long-tailed Formia", {"tail": "long"}), ("brevicauda", "Short-tailed Formia",
                                                                    {"tail": "short"})),
]
MAX_SPECIES = len(DESIGNS)


def species_designs(n_species: int = 6) -> list[SpeciesDesign]:
    """The first n_species designs (an even number: whole sibling pairs)."""
    if n_species < 2 or n_species > MAX_SPECIES or n_species % 2:
        raise BadValueError(f"n_species must be an even number from 2 to {MAX_SPECIES} (got {n_species}).",
                          "Species come in sibling pairs; pick 2, 4, 6, ... up to the number of designed pairs.")
    return DESIGNS[:n_species]


_COUNT_WORDS = {1: "one", 2: "two"}


def trait_rows(sp: SpeciesDesign) -> list[dict]:
    """The expert trait table of one species (traits/ CSV rows: taxon, part, attribute, value, text, source)."""
    rows = [
        ("body", "colour", sp.body, f"{sp.body} body"),
        ("forewing", "colour", sp.forewing, f"{sp.forewing} forewings"),
        ("forewing tip", "colour", sp.tip, f"{sp.tip} patch at the forewing tip"),
        ("forewing band", "colour", sp.band, f"{sp.band} band across the forewing"),
        ("hindwing", "colour", sp.hindwing, f"{sp.hindwing} hindwings"),
        ("hindwing margin", "colour", sp.margin, f"{sp.margin} margin along the hindwing"),
    ]
    if sp.eyespots:
        plural = "s" if sp.eyespots > 1 else ""
        rows += [
            ("hindwing eyespot", "presence", "present", "an eyespot on the hindwing"),
            ("hindwing eyespot", "colour", sp.eyespot_colour, f"{sp.eyespot_colour} eyespot on the hindwing"),
            ("hindwing eyespot", "count", str(sp.eyespots),
             f"{_COUNT_WORDS[sp.eyespots]} eyespot{plural} on each hindwing"),
        ]
    else:
        rows.append(("hindwing eyespot", "presence", "absent", "no eyespot on the hindwing"))
    if sp.tail != "absent":
        rows += [
            ("hindwing tail", "presence", "present", "a tail on the hindwing"),
            ("hindwing tail", "shape", sp.tail, f"{sp.tail} tail on the hindwing"),
        ]
    else:
        rows.append(("hindwing tail", "presence", "absent", "hindwing without a tail"))
    return [dict(taxon=sp.name, part=p, attribute=a, value=v, text=t, source="synthetic") for p, a, v, t in rows]


def pair_differences(a: SpeciesDesign, b: SpeciesDesign) -> list[dict]:
    """Traits that differ between two species (pairs.csv rows). A trait only one of them has (e.g. tail shape when
    the other has no tail) is covered by the presence row and not listed again."""
    ta = {(r["part"], r["attribute"]): r["value"] for r in trait_rows(a)}
    tb = {(r["part"], r["attribute"]): r["value"] for r in trait_rows(b)}
    return [dict(species_a=a.name, species_b=b.name, part=part, attribute=attr, value_a=ta[(part, attr)],
                 value_b=tb[(part, attr)])
            for (part, attr) in ta if (part, attr) in tb and ta[(part, attr)] != tb[(part, attr)]]


# ---------------------------------------------------------------------------------------------------------------
# Drawing. The organism is drawn once per species as a label template in canonical coordinates ([-1, 1]^2, y down,
# right wings mirrored to the left), then warped into each image with its pose.


def _px(x: float, y: float) -> tuple[float, float]:
    return (x + 1.0) * TEMPLATE_SIZE / 2, (y + 1.0) * TEMPLATE_SIZE / 2


def _both_sides(points: list[tuple[float, float]]) -> tuple[list, list]:
    return [_px(x, y) for x, y in points], [_px(-x, y) for x, y in points]


_FOREWING = [(0.05, -0.30), (0.35, -0.62), (0.75, -0.72), (0.97, -0.62), (0.90, -0.30), (0.70, -0.08), (0.05, 0.02)]
_BAND = [(0.36, -0.75), (0.56, -0.78), (0.66, 0.0), (0.44, 0.0)]
_HINDWING = [(0.05, -0.02), (0.55, 0.0), (0.80, 0.22), (0.72, 0.52), (0.46, 0.70), (0.14, 0.58), (0.04, 0.22)]
_TAILS = {"long": [(0.36, 0.60), (0.50, 0.62), (0.52, 0.97), (0.42, 0.97)],
          "short": [(0.36, 0.60), (0.50, 0.62), (0.51, 0.80), (0.41, 0.80)]}
_EYESPOTS = [((0.50, 0.36), 0.10), ((0.26, 0.42), 0.08)]
_TIP = ((0.97, -0.62), 0.30)


@lru_cache(maxsize=64)
def species_template(sp: SpeciesDesign) -> np.ndarray:
    """TEMPLATE_SIZE^2 uint8 label map of the upright organism (part ids of PARTS, 0 = background)."""
    s = TEMPLATE_SIZE
    labels = np.zeros((s, s), dtype=np.uint8)
    scale = s / 2
    for side in (1, -1):
        def pts(points, side=side):  # noqa: ANN001, ANN202 - tiny local helper
            return [_px(side * x, y) for x, y in points]

        hind = draw.polygon_mask(s, pts(_HINDWING))
        if sp.tail != "absent":
            labels[draw.polygon_mask(s, pts(_TAILS[sp.tail])) & ~hind] = PART_IDS["hindwing tail"]
        labels[hind] = PART_IDS["hindwing margin"]
        labels[draw.erode(hind, int(0.07 * scale))] = PART_IDS["hindwing"]
        for (cx, cy), r in _EYESPOTS[: sp.eyespots]:
            spot = draw.ellipse_mask(s, _px(side * cx, cy), (r * scale, r * scale))
            labels[spot & hind] = PART_IDS["hindwing eyespot"]
        fore = draw.polygon_mask(s, pts(_FOREWING))
        labels[fore] = PART_IDS["forewing"]
        labels[fore & draw.polygon_mask(s, pts(_BAND))] = PART_IDS["forewing band"]
        (tx, ty), tr = _TIP
        labels[fore & draw.ellipse_mask(s, _px(side * tx, ty), (tr * scale, tr * scale))] = PART_IDS["forewing tip"]
    body = draw.ellipse_mask(s, _px(0.0, 0.05), (0.075 * scale, 0.55 * scale))
    body |= draw.ellipse_mask(s, _px(0.0, -0.53), (0.085 * scale, 0.085 * scale))
    img = Image.fromarray(body.astype(np.uint8))
    d = ImageDraw.Draw(img)
    for side in (1, -1):
        d.line([_px(0.0, -0.58), _px(side * 0.12, -0.8), _px(side * 0.22, -0.92)], fill=1, width=max(1, s // 128))
    labels[np.asarray(img, dtype=bool)] = PART_IDS["body"]
    # A wing margin is the outer border (termen), as in field guides: the strip of the hindwing ring that runs along
    # the body or under the forewing is ground colour, so 'margin' never touches the body.
    solid = ndimage.binary_fill_holes(ndimage.binary_closing(labels > 0, iterations=4))  # no slivers by the body
    outer = draw.erode(solid, int(0.09 * scale))
    labels[(labels == PART_IDS["hindwing margin"]) & outer] = PART_IDS["hindwing"]
    return labels


def colour_table(sp: SpeciesDesign) -> np.ndarray:
    """(len(PARTS)+1) x 3 float array: the colour of each part id (row 0 unused)."""
    names = {1: sp.body, 2: sp.forewing, 3: sp.tip, 4: sp.band, 5: sp.hindwing, 6: sp.margin, 7: sp.eyespot_colour,
             8: sp.hindwing}
    lut = np.zeros((len(PARTS) + 1, 3), dtype=np.float32)
    for i, name in names.items():
        lut[i] = PALETTE[name]
    return lut


def render_species(sp: SpeciesDesign, size: int, rng: np.random.Generator,
                   nuisance: Nuisance = Nuisance()) -> tuple[np.ndarray, np.ndarray]:
    """One image of a species: (HxWx3 uint8 RGB, HxW uint8 part label map of the visible parts)."""
    template = species_template(sp)
    angle = rng.uniform(-nuisance.rotation, nuisance.rotation)
    span = rng.uniform(*nuisance.scale) * size
    centre = size / 2 + rng.uniform(-nuisance.shift, nuisance.shift, size=2) * size
    labels = draw.warp_labels(template, size, angle, span, (centre[0], centre[1]))
    # Colours are rendered at 2x and averaged down, so edges are anti-aliased while the label map stays exact.
    big = draw.warp_labels(template, 2 * size, angle, 2 * span, (2 * centre[0], 2 * centre[1]))
    rgb_big = colour_table(sp)[big]
    rgb_big += rng.normal(0.0, 4.0, size=rgb_big.shape).astype(np.float32)  # a little texture on the wings
    alpha_big = (big > 0).astype(np.float32)[..., None]
    rgb_obj = (rgb_big * alpha_big).reshape(size, 2, size, 2, 3).mean(axis=(1, 3))
    alpha = alpha_big.reshape(size, 2, size, 2, 1).mean(axis=(1, 3))
    background = draw.cluttered_background(size, rng, nuisance.clutter).astype(np.float32)
    rgb = rgb_obj + (1.0 - alpha) * background
    rgb = draw.colour_jitter(np.clip(rgb, 0, 255).astype(np.uint8), rng, nuisance.color_jitter)
    if nuisance.occlusion > 0 and rng.random() < nuisance.occlusion:
        occ = draw.occluder(size, draw.bbox_of(labels > 0), nuisance.occlusion_size, rng)
        patch = draw.cluttered_background(size, rng, max(nuisance.clutter, 0.3))
        rgb = np.where(occ[..., None], patch, rgb)
        labels = np.where(occ, 0, labels).astype(np.uint8)
    rgb = draw.blur(rgb, rng.uniform(0.0, nuisance.blur) * size / 128)
    return rgb, labels


def make_species(out_dir: str | Path, n_per_species: int = 40, image_size: int = 128, seed: int = 0,
                 n_species: int = 6, test_fraction: float = 0.25, nuisance: Nuisance | None = None,
                 overwrite: bool = False, progress: bool = False) -> Path:
    """Write the synthetic species dataset to out_dir (layout: see evaluation.synthetic) and return its path."""
    designs = species_designs(n_species)
    check_dataset_args("n_per_species", n_per_species, image_size, test_fraction,
                       "Use e.g. 96 or 128 for tests, 224-256 for benchmarks.")
    nuisance = nuisance or Nuisance()
    config = dict(name="synthetic-species", version=DATASET_VERSION, seed=int(seed), image_size=int(image_size),
                  n_per_species=int(n_per_species), n_species=int(n_species), test_fraction=float(test_fraction),
                  nuisance=nuisance.to_dict())
    with atomic_dataset_dir(out_dir, config, overwrite) as tmp:
        if tmp is None:
            return Path(out_dir)
        rows = []
        for k, stem, split, rng in dataset_images([sp.name for sp in designs], n_per_species, seed, test_fraction,
                                                  "synthetic species", progress):
            sp = designs[k]
            rgb, labels = render_species(sp, image_size, rng, nuisance)
            save_png(tmp / "images" / stem, rgb)
            save_png(tmp / "masks" / stem, (labels > 0).astype(np.uint8) * 255)
            save_png(tmp / "parts" / stem, labels)
            rows.append(dict(image=f"images/{stem}", species=sp.name, common_name=sp.common_name, split=split,
                             mask=f"masks/{stem}", parts=f"parts/{stem}"))
        write_csv(tmp / MANIFEST, ["image", "species", "common_name", "split", "mask", "parts"], rows)
        write_json(tmp / "parts.json", {str(i): name for i, name in PARTS.items()})
        write_csv(tmp / "traits.csv", ["taxon", "part", "attribute", "value", "text", "source"],
                  [r for sp in designs for r in trait_rows(sp)])
        pairs = [designs[j : j + 2] for j in range(0, len(designs), 2)]
        write_csv(tmp / "pairs.csv", ["species_a", "species_b", "part", "attribute", "value_a", "value_b"],
                  [r for a, b in pairs for r in pair_differences(a, b)])
        write_json(tmp / DATASET_JSON, dict(
            config=config, name="synthetic-species", version=DATASET_VERSION, seed=int(seed),
            image_size=int(image_size), n_images=len(rows), n_per_species=int(n_per_species),
            species=[dict(name=sp.name, common_name=sp.common_name, sibling=sp.sibling, folder=folder_name(sp.name))
                     for sp in designs],
            pairs=[[a.name, b.name] for a, b in pairs],
            splits=split_counts(rows),
            files=dict(manifest=MANIFEST, traits="traits.csv", pairs="pairs.csv", parts="parts.json")))
    return Path(out_dir)
