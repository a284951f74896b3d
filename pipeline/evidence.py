"""Region evidence: each Finer-CAM region compared with its counterparts on reference photos.

The top regions of the target-vs-contrast Finer-CAM map are where the classifier separates the two species on
this photo. Each region is matched to the place that looks most like it on every reference photo of the contrast
species (and of the photo's own species), by cosine similarity of the classifier's own backbone features, so a
region is compared with the same part of another specimen whatever its pose or scale. Phrases are then scored on
the region and on its counterparts: a trait the region shows more (or less) than the contrast species'
counterparts, the way the two species differ, sits in a region the classifier used.

Feature matching follows the dense-correspondence idea of comparing normalised CNN activations across images
(as in Deep Feature Factorization and hypercolumn matching); it is written here because no installed library
matches a masked region descriptor against a batch of feature maps.
"""

from __future__ import annotations

import warnings
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from pipeline.cam.base import capture
from pipeline.cam.reshape import to_grid, token_layout
from pipeline.masks import Box
from pipeline.regions import Region, core_box, masked_crop, part_mask
from pipeline.scoring import PhraseTable
from prompts.phrases import Candidate

# LLR from which a region's evidence counts (e = 2.7 times likelier under the target's counterparts).
REGION_SUPPORT = 1.0
# A part located on the photo must cover this share of a region's organism pixels for the trait to sit in it.
PART_IN_REGION = 0.15


@dataclass(frozen=True)
class Counterpart:
    """Where a region of the described photo lies on one reference photo."""

    image: str  # the reference photo's path
    species: str
    box: Box
    similarity: float  # cosine similarity of the region's features with the matched place (-1..1)

    def to_dict(self) -> dict:
        """JSON-able dict."""
        return {"image": self.image, "species": self.species, "box": [int(v) for v in self.box],
                "similarity": round(float(self.similarity), 4)}


@dataclass
class ReferencePhoto:
    """One reference photo, ready for matching: the image, its organism outline and its feature grid."""

    path: str
    image: Image.Image
    organism: np.ndarray | None
    features: torch.Tensor  # [K, h, w], unit length along K
    inside: torch.Tensor | None = None  # grid cells mostly on the organism [h, w] (None: no outline)

    def __post_init__(self) -> None:
        if self.inside is None and self.organism is not None and self.organism.any():
            inside = _grid_weights(self.organism, tuple(self.features.shape[-2:])) > 0.25
            self.inside = inside if inside.any() else None


@dataclass
class RegionEvidence:
    """Per region and phrase: the region's score, its counterparts' scores on both species, and the statistics."""

    counterparts: list[list[Counterpart]]  # per region, contrast counterparts first, then target ones
    region_scores: np.ndarray  # [R, P]
    contrast_scores: np.ndarray  # [R, n_contrast, P]
    target_scores: np.ndarray  # [R, n_target, P]
    effect: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))  # [R, P] region vs contrast counterparts
    support: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))  # [R, P] LLR, target vs contrast

    def to_dict(self) -> list[dict]:
        """Per region, its counterparts (JSON-able)."""
        return [{"region": r, "counterparts": [c.to_dict() for c in cps]} for r, cps in enumerate(self.counterparts)]


def matching_layers(classifier: torch.nn.Module) -> list[str]:
    """The layers whose features match regions across photos: the two deepest taps of a multi-layer head
    (mid-level parts and whole-part context), else the classifier's CAM layer."""
    layers = list(getattr(classifier, "cam_layers", lambda: [])() or [])
    return layers[:2] if len(layers) >= 2 else [classifier.default_cam_layer()]


@torch.no_grad()
def feature_grids(classifier: torch.nn.Module, images: Sequence[Image.Image],
                  layers: Sequence[str] | None = None) -> list[torch.Tensor]:
    """Per image, the matching features [K, h, w] (see matching_features), from one forward pass over the batch."""
    layers = list(layers or matching_layers(classifier))
    x = classifier.prepare(list(images))
    with capture(classifier, layers, with_grad=False) as outs:
        classifier(x)
    grids = {name: to_grid(outs[name].float(), x.shape[0], tuple(x.shape[-2:]), *token_layout(classifier, name))
             for name in layers}
    return matching_features(grids, layers)


def matching_features(grids: Mapping[str, torch.Tensor], layers: Sequence[str]) -> list[torch.Tensor]:
    """Per image, the matching features [K, h, w] from the layers' activation grids [N, C, h, w] (each resized to
    the finest grid, unit length along its channels, concatenated, then unit length again): the grids of a
    forward pass already run (a CAM's, kept with explain_many(keep=...)) or of feature_grids' own."""
    chosen = [grids[name].float() for name in layers]
    size = max((g.shape[-2:] for g in chosen), key=lambda s: s[0] * s[1])
    chosen = [F.normalize(F.interpolate(g, size=size, mode="bilinear", align_corners=False), dim=1) for g in chosen]
    return list(F.normalize(torch.cat(chosen, dim=1), dim=1).cpu())


def _grid_weights(mask: np.ndarray, grid: tuple[int, int]) -> torch.Tensor:
    """An image-size bool mask as the share of each grid cell it covers [h, w]."""
    t = torch.as_tensor(mask, dtype=torch.float32)[None, None]
    return F.adaptive_avg_pool2d(t, grid)[0, 0]


def region_descriptor(features: torch.Tensor, region_mask: np.ndarray) -> torch.Tensor | None:
    """The unit-length mean feature [K] of the grid cells under an image-size region mask (None when empty)."""
    w = _grid_weights(region_mask, tuple(features.shape[-2:]))
    if float(w.sum()) <= 0:
        return None
    return F.normalize((features * w).sum(dim=(-2, -1)), dim=0)


def _scale(image: Image.Image, organism: np.ndarray | None) -> float:
    """A photo's organism size in pixels (square root of its area; the whole photo without an outline)."""
    area = float(organism.sum()) if organism is not None and organism.any() else float(image.size[0] * image.size[1])
    return max(area, 1.0) ** 0.5


def match_region(descriptor: torch.Tensor, ref: ReferencePhoto, box_size: tuple[float, float]) -> tuple[Box, float]:
    """The box on `ref` centred on the grid cell most like `descriptor` (inside its organism when known), with
    the region's size (box_size, already in the reference's pixels), and the cosine similarity there."""
    sim = torch.einsum("k,khw->hw", descriptor, ref.features)
    h, w = sim.shape
    if ref.inside is not None:
        sim = torch.where(ref.inside, sim, torch.full_like(sim, -2.0))
    k = int(sim.argmax())
    i, j = divmod(k, w)
    width, height = ref.image.size
    cx, cy = (j + 0.5) / w * width, (i + 0.5) / h * height
    bw, bh = min(box_size[0], width), min(box_size[1], height)
    x0 = int(round(min(max(cx - bw / 2, 0), width - bw)))
    y0 = int(round(min(max(cy - bh / 2, 0), height - bh)))
    return Box(x0, y0, max(x0 + 1, int(round(x0 + bw))), max(y0 + 1, int(round(y0 + bh)))), float(sim[i, j])


def region_mask(image: Image.Image, region: Region, organism: np.ndarray | None) -> np.ndarray:
    """The region's box on the photo as an image-size bool mask, cut to the organism when it overlaps it."""
    width, height = image.size
    m = np.zeros((height, width), dtype=bool)
    x0, y0, x1, y1 = region.box
    m[y0:y1, x0:x1] = True
    if organism is not None and (m & organism).any():
        m &= organism
    return m


def counterparts(image: Image.Image, organism: np.ndarray | None, features: torch.Tensor,
                 regions: Sequence[Region], refs: Sequence[tuple[str, ReferencePhoto]]) -> list[list[Counterpart]]:
    """Per region, its counterpart on each (species, reference photo), in the order given."""
    scale = _scale(image, organism)
    out = []
    for region in regions:
        d = region_descriptor(features, region_mask(image, region, organism))
        x0, y0, x1, y1 = region.box
        found = []
        for species, ref in refs:
            s = _scale(ref.image, ref.organism) / scale
            if d is None:
                box, sim = Box(0, 0, *ref.image.size), 0.0
            else:
                box, sim = match_region(d, ref, ((x1 - x0) * s, (y1 - y0) * s))
            found.append(Counterpart(image=ref.path, species=species, box=box, similarity=sim))
        out.append(found)
    return out


def _stats(ref: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and standard deviation over the reference axis (-2), ignoring NaN."""
    with np.errstate(invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns: unscorable phrases stay NaN
        return np.nanmean(ref, axis=-2), np.nanstd(ref, axis=-2)


def region_statistics(region_scores: np.ndarray, contrast: np.ndarray, target: np.ndarray,
                      real: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(effect [R, P], support [R, P]): the region's score against its contrast counterparts in their (floored)
    spread, and the log-likelihood ratio of that score under the target's vs the contrast's counterparts, set to
    0 where the photo differs from the contrast the other way than the target species does."""
    mu_c, sd_c = _stats(contrast)
    vals = sd_c[:, real] if real.any() else sd_c
    floor = max(float(np.nanmedian(vals)) if np.isfinite(vals).any() else 0.0, 1e-3)
    sd_c = np.sqrt(np.nan_to_num(sd_c) ** 2 + floor**2)
    effect = np.nan_to_num((region_scores - mu_c) / sd_c)
    if target.shape[-2] == 0:
        return effect, np.abs(effect)
    mu_t, sd_t = _stats(target)
    sd_t = np.sqrt(np.nan_to_num(sd_t) ** 2 + floor**2)
    x = region_scores
    llr = (-0.5 * ((x - mu_t) / sd_t) ** 2 - np.log(sd_t)) - (-0.5 * ((x - mu_c) / sd_c) ** 2 - np.log(sd_c))
    same_way = np.sign(x - mu_c) == np.sign(mu_t - mu_c)
    return effect, np.nan_to_num(np.where(same_way, llr, 0.0))


def score_counterparts(scorer: object, image: Image.Image, organism: np.ndarray | None, regions: Sequence[Region],
                       found: Sequence[Sequence[Counterpart]], refs: dict[str, ReferencePhoto],
                       candidates: Sequence[Candidate], contrast: str, region_scores: np.ndarray) -> RegionEvidence:
    """Scores of every phrase on each counterpart (one scorer call for all of them), split by species, with the
    region-vs-counterparts statistics. region_scores: the phrases' scores on the regions themselves [R, P]."""
    phrases = [c.phrase for c in candidates]
    crops = [masked_crop(refs[c.image].image, refs[c.image].organism, c.box) if refs[c.image].organism is not None
             else refs[c.image].image.crop(c.box) for cps in found for c in cps]
    flat = (scorer.score(crops, phrases).numpy().astype(np.float64) if crops
            else np.zeros((0, len(phrases))))
    n_refs = len(found[0]) if found else 0
    table = flat.reshape(len(found), n_refs, len(phrases))
    is_contrast = np.array([c.species == contrast for c in (found[0] if found else [])], dtype=bool)
    ev = RegionEvidence(counterparts=[list(cps) for cps in found], region_scores=region_scores,
                        contrast_scores=table[:, is_contrast], target_scores=table[:, ~is_contrast])
    real = np.array([not c.control for c in candidates], dtype=bool)
    if len(found) and is_contrast.any():
        ev.effect, ev.support = region_statistics(region_scores, ev.contrast_scores, ev.target_scores, real)
    else:
        ev.effect = np.zeros((len(found), len(phrases)))
        ev.support = np.zeros((len(found), len(phrases)))
    return ev


class PartShares:
    """For one photo: the share of a region's organism pixels that lie on a trait's part (each part's mask is
    computed once per photo). 1.0 for the whole organism (no part, or the group's whole part such as 'whole
    bird'); None when the part cannot be located on this photo (a part the group cannot locate, no outline), so
    nobody can say whether the trait sits in the region. located: part masks found on this photo (bird parts)."""

    def __init__(self, organism: np.ndarray | None, group: str, whole: str | None = None,
                 located: Mapping[str, np.ndarray] | None = None) -> None:
        self.organism = organism if organism is not None and organism.any() else None
        self.group, self.whole, self.located = group, whole, dict(located or {})
        self._box = core_box(self.organism) if self.organism is not None else None
        self._masks: dict[str, np.ndarray | None] = {}

    def mask(self, part: str) -> np.ndarray | None:
        """The part's pixels on this photo, or None when it cannot be located."""
        if part not in self._masks:
            found = self.located.get(part)
            if found is None and self.organism is not None:
                found = part_mask(self.organism, part, self.group, self._box)
            self._masks[part] = found
        return self._masks[part]

    def __call__(self, part: str | None, region: Region) -> float | None:
        if not part or part == self.whole:
            return 1.0
        if self.organism is None:
            return None
        mask = self.mask(part)
        if mask is None:
            return None
        x0, y0, x1, y1 = region.box
        inside = self.organism[y0:y1, x0:x1]
        n = int(inside.sum())
        return float((mask[y0:y1, x0:x1] & inside).sum() / n) if n else 0.0


def apply_region_evidence(table: PhraseTable, candidates: Sequence[Candidate], ev: RegionEvidence | None,
                          regions: Sequence[Region], on_part: Callable[[str | None, Region], float | None]
                          ) -> PhraseTable:
    """Add region evidence to the ranked phrase table and re-rank: traits that sit in a region the classifier used
    (a region whose counterparts differ the way the photo does, on the trait's part: on_part gives the share of
    the region on that part, None when the part cannot be located, and then the trait is not in the region)
    come first, by photo-level plus region-level support; the others follow and say so (`in_region` False).

    Sets each row's in_region, region (index or None), region_effect (None outside a region) and region_support."""
    n = len(table)
    in_region = np.zeros(n, dtype=bool)
    region = [None] * n
    r_effect: list[float | None] = [None] * n
    r_support = np.zeros(n)
    if ev is not None and len(regions) and ev.support.size:
        for row, scored in enumerate(table):
            j = scored.index
            c = candidates[j]
            sign = 1.0 if scored.direction == "+" else -1.0
            best, best_r = 0.0, None
            for r, reg in enumerate(regions):
                agrees = np.sign(ev.effect[r, j]) == sign and ev.support[r, j] >= REGION_SUPPORT
                share = on_part(c.trait.part, reg)
                if agrees and share is not None and share >= PART_IN_REGION and ev.support[r, j] > best:
                    best, best_r = float(ev.support[r, j]), r
            if best_r is not None and not c.control and scored.rank_score > 0:
                in_region[row], region[row] = True, best_r
                r_effect[row], r_support[row] = float(ev.effect[best_r, j]), best
    rank = np.array([s.rank_score for s in table]) + r_support.clip(min=0.0)
    rows = tuple(replace(s, in_region=bool(in_region[k]), region=region[k], region_effect=r_effect[k],
                         region_support=float(r_support[k]), rank_score=float(rank[k])) for k, s in enumerate(table))
    return PhraseTable(rows, table.method).sorted()


class ReferencePhotoCache:
    """The last few species' reference photos with their outlines and features, kept in memory: describing many
    photos against one contrast species loads and encodes its references once."""

    def __init__(self, max_species: int = 8) -> None:
        self.max_species = max_species
        self._store: OrderedDict[str, list[ReferencePhoto]] = OrderedDict()

    def get(self, species: str, build: Callable[[], list[ReferencePhoto]]) -> list[ReferencePhoto]:
        """The species' reference photos, built on first use."""
        if species in self._store:
            self._store.move_to_end(species)
            return self._store[species]
        refs = build()
        self._store[species] = refs
        while len(self._store) > self.max_species:
            self._store.popitem(last=False)
        return refs
