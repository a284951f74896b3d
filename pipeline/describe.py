"""describe(): how the pictured species differs from a contrast species, in traits and words.

The flow reads top to bottom as five stages: maps (pipeline.cam), regions (pipeline.regions), phrases (prompts),
scores (pipeline.scorers) and words (prompts.compose). This module holds the result objects and the Pipeline.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch
from PIL import Image

from pipeline.cam import CamRequest, default_method, explain, explain_many
from pipeline.evidence import (
    PartShares,
    ReferencePhoto,
    ReferencePhotoCache,
    RegionEvidence,
    apply_region_evidence,
    counterparts,
    feature_grids,
    matching_features,
    matching_layers,
    score_counterparts,
)
from pipeline.images import is_achromatic, load_image
from pipeline.models import load_classifier
from pipeline.parts import PartLocator
from pipeline.references import reference_images, reference_scores
from pipeline.regions import Region, extract_regions, organism_mask
from pipeline.scorers import create_scorer
from pipeline.scoring import (
    PhraseScore,
    PhraseTable,
    absent_threshold,
    image_profile,
    rank_phrases,
    region_scores,
    select_diverse,
    set_statistics,
    shown_floor,
)
from prompts.compose import Clause, compose_paragraph
from prompts.phrases import candidate_phrases, measurable_controls
from traits.errors import BadValueError, ConflictingOptionsError, MissingValueError, TraitsError
from traits.expert import load_expert
from traits.io import dumps_strict
from traits.match import check
from traits.model import TraitDifference
from traits.names import normalise_name
from traits.version import __version__
from traits.vocab import PartVocab, load_vocab, normalise_side
from traits.vocab import taxon_group as find_group

CONFIDENCES = ("strong", "moderate", "weak")


def trait_to_dict(trait: Any) -> dict:
    """A traits.Trait (or any dataclass / dict) as a JSON-able dict."""
    if trait is None:
        return {}
    if hasattr(trait, "to_dict"):
        return trait.to_dict()
    if dataclasses.is_dataclass(trait):
        return {k: v for k, v in dataclasses.asdict(trait).items()}
    if isinstance(trait, dict):
        return dict(trait)
    return {"text": str(trait)}


@dataclass
class TraitEvidence:
    """One generated trait and the evidence behind it.

    score: how strongly this image shows the phrase, relative to the rest of the organism in the same image.
    contrast_score: the same phrase's score on the contrast species' reference photos (None without references).
    direction: '+' when the pictured (target) species shows the trait more than the contrast species, '-' when
    less (the traits.TraitDifference convention). confidence: strong / moderate / weak, from the standardised target-vs-contrast gap.
    expert_status: confirmed / contradicted / new from traits.check, or None without expert lists.
    region: index into DescribeResult.regions of the region that carries the evidence (None: whole organism).
    """

    trait: Any  # traits.Trait
    phrase: str
    region: int | None
    score: float
    contrast_score: float | None
    direction: str
    confidence: str
    expert_status: str | None
    rank: int
    effect: float = 0.0  # standardised target-vs-contrast gap (photo score minus contrast mean, in reference sds)
    control: bool = False  # True for random-phrase controls
    # What the traits were ranked by: with reference photos the log-likelihood ratio of the photo's score under the
    # target vs the contrast references (0 when the photo does not differ the way the species do, or when neither
    # side shows the value); describe_pair: the AUROC distance from 0.5.
    rank_score: float = 0.0
    # Whether the trait sits in a Finer-CAM region the classifier used: the region differs from its counterparts
    # on the contrast species' reference photos the way this photo differs (on the trait's part where that part is
    # located). None where it was not checked (describe_pair, no reference photos).
    in_region: bool | None = None
    region_effect: float | None = None  # the region's score against its contrast counterparts, in their spread

    def to_dict(self) -> dict:
        """JSON-able dict."""
        return {"trait": trait_to_dict(self.trait), "phrase": self.phrase, "region": self.region,
                "score": _r(self.score), "contrast_score": _r(self.contrast_score), "direction": self.direction,
                "confidence": self.confidence, "expert_status": self.expert_status, "rank": self.rank,
                "effect": _r(self.effect), "rank_score": _r(self.rank_score), "control": self.control,
                "in_region": self.in_region, "region_effect": _r(self.region_effect)}


def _r(v: float | None) -> float | None:
    """Rounded for JSON; None for missing and non-finite values (strict JSON has no NaN)."""
    return None if v is None or not np.isfinite(float(v)) else round(float(v), 4)


@dataclass
class DescribeResult:
    """What describe() returns: the paragraph, ranked traits with evidence, regions, maps and provenance.

    maps: name -> float32 [H, W] in [0, 1] at the classifier's input size ('gradcam', 'finer', 'finer_reverse').
    target_probability: the classifier's calibrated probability of the target species (softmax of logits / T, card.json).
    uncertain: True when the classifier is unsure (the target is not its top guess, or its probability is low).
    """

    text: str
    traits: list[TraitEvidence]
    regions: list[Region]
    maps: dict[str, np.ndarray]
    provenance: dict
    target_species: str
    contrast_species: str
    target_probability: float
    uncertain: bool
    controls: list[TraitEvidence] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    image: Any = field(default=None, repr=False)  # the RGB PIL photo (left out of to_dict)
    # Per region, where it lies on each reference photo of the contrast (and target) species: what it was compared with.
    counterparts: list[dict] = field(default_factory=list)

    def to_dict(self, include_maps: bool = False) -> dict:
        """JSON-able dict; maps are included as nested lists only when asked (they are large)."""
        out = {"text": self.text, "target_species": self.target_species, "contrast_species": self.contrast_species,
               "target_probability": _r(self.target_probability), "uncertain": self.uncertain,
               "traits": [t.to_dict() for t in self.traits], "regions": [r.to_dict() for r in self.regions],
               "controls": [c.to_dict() for c in self.controls], "warnings": list(self.warnings),
               "counterparts": self.counterparts, "provenance": self.provenance}
        if include_maps:
            out["maps"] = {k: np.round(np.asarray(v, dtype=np.float32), 3).tolist() for k, v in self.maps.items()}
        return out

    def to_json(self, include_maps: bool = False, indent: int | None = 2) -> str:
        """The to_dict() as a strict JSON string (NaN and infinities are null)."""
        return dumps_strict(self.to_dict(include_maps=include_maps), indent=indent)


class Words(NamedTuple):
    """Stage 5's output, the same for describe and describe_pair: ranked evidence, controls and the paragraph."""

    traits: list[TraitEvidence]
    controls: list[TraitEvidence]
    text: str


# ---------------------------------------------------------------------------------------------------------------
# The pipeline: five stages, top to bottom.

MODEL_ENV = "FINER_TRAITS_MODEL"
UNCERTAIN_BELOW = 0.5  # target probability under which the result is flagged as uncertain
MAX_WORK_SIDE = 1024  # huge photos are processed at this longest side (maps and regions need no more)
NO_COLOUR_WARNING = ("The photo has no colour (grayscale or equal colour channels): colours cannot be judged, so "
                     "colour traits are left out.")


class PartRelations:
    """How two part names relate in a group's part hierarchy; a group the vocabulary does not know compares the
    words ('hindwing margin' contains 'hindwing')."""

    def __init__(self, group: str, regions: Mapping[str, Any] | None = None) -> None:
        try:
            self.parts: PartVocab | None = load_vocab().part_vocab(group)
        except TraitsError:
            self.parts = None
        # Parts located on the same region (bird parts whose concepts coincide, PartLocator.parts): a colour read on
        # one is the very same measurement on the others, so saying it once is enough.
        self.regions = dict(regions or {})

    def related(self, a: str, b: str) -> bool:
        """Are the parts the same, one inside the other, or located on the same region?"""
        if a == b:
            return True
        if a in self.regions and self.regions.get(a) == self.regions.get(b):
            return True
        if self.parts is None:
            return a in b or b in a
        return a in self.parts.ancestors(b) or b in self.parts.ancestors(a)

    def finer(self, a: str, b: str) -> bool:
        """Does part a lie inside part b ('hindwing margin' inside 'hindwing')?"""
        if a == b:
            return False
        if self.parts is None:
            return b in a
        return b in self.parts.ancestors(a)


def _expert_by_name(expert: Any) -> dict[str, Any]:
    """The expert TraitLists of a source keyed by normalised taxon name ('014.Indigo_Bunting' -> 'indigo bunting')."""
    lists: list[Any] = []
    if isinstance(expert, Mapping):
        lists = list(expert.values())
    elif isinstance(expert, (list, tuple)):
        lists = list(expert)
    elif hasattr(expert, "traits") and hasattr(expert, "taxon"):
        lists = [expert]
    elif hasattr(expert, "lists"):
        lists = list(expert.lists.values()) if isinstance(expert.lists, Mapping) else list(expert.lists)
    by_name = {normalise_name(getattr(tl, "taxon", "")): tl for tl in lists}
    if isinstance(expert, Mapping):
        by_name.update({normalise_name(k): v for k, v in expert.items()})
    return by_name


def _expert_lists(expert: Any, names: Sequence[str]) -> list[Any | None]:
    """The expert TraitList of each named species (None where the source has none)."""
    if expert is None:
        return [None] * len(names)
    by_name = _expert_by_name(expert)
    return [by_name.get(normalise_name(n)) for n in names]


def expert_coverage_warnings(expert: Any, names: Sequence[str]) -> list[str]:
    """Warnings for species the expert source has no list for (none without a source): without a list nothing
    about that species can be confirmed or contradicted, which a user would otherwise not notice."""
    if expert is None:
        return []
    by_name = _expert_by_name(expert)
    missing = [n for n in names if normalise_name(n) not in by_name]
    if not missing:
        return []
    hints = []
    for n in missing:
        close = difflib.get_close_matches(normalise_name(n), list(by_name), n=2, cutoff=0.6)
        if close:
            hints.append(f"for {n} it has {' or '.join(repr(c) for c in close)}")
    hint = f" Closest names in the source: {'; '.join(hints)}." if hints else ""
    rule = "names are compared ignoring case, underscores, dashes and 'NNN.' class-number prefixes"
    if len(missing) == len(names):
        return [f"The expert lists ({len(by_name)} taxa) match neither {' nor '.join(names)} ({rule}), so no trait "
                f"could be checked against them.{hint}"]
    return [f"The expert lists have no entry for {n} ({rule}); traits are checked against the other species' "
            f"list only.{hint}" for n in missing]


def load_expert_source(expert: Any, group: str = "butterfly") -> Any:
    """An expert source loaded with traits.load_expert ({taxon: TraitList}); None stays None."""
    if expert is None:
        return None
    return load_expert(expert, group=group)


def check_statuses(differences: list[Any], expert_target: Any, expert_contrast: Any,
                   group: str | None = None) -> list[str | None]:
    """traits.check statuses (confirmed / contradicted / new) for generated differences; None without lists."""
    if expert_target is None and expert_contrast is None:
        return [None] * len(differences)
    checked = check(differences, expert_target if expert_target is not None else [],
                           expert_contrast if expert_contrast is not None else [], group=group)
    return [getattr(c, "status", None) for c in checked]


def _on_side(trait: Any, side: str | None) -> Any:
    """The trait as seen on a known side of the organism (unchanged when the side is not known)."""
    return trait.with_(side=side) if side is not None else trait


def working_image(img: Image.Image) -> Image.Image:
    """The photo at the size describe() works on (longest side at most MAX_WORK_SIDE): region boxes are in its
    pixels, so anything that draws them over the photo shows it at this size."""
    if max(img.size) <= MAX_WORK_SIDE:
        return img
    scale = MAX_WORK_SIDE / max(img.size)
    return img.resize((max(1, round(img.size[0] * scale)), max(1, round(img.size[1] * scale))), Image.LANCZOS)


class Pipeline:
    """A loaded classifier + scorer (+ expert lists) that describes photos against a contrast species."""

    def __init__(self, classifier: Any, scorer: Any = "color", expert: Any = None, group: str = "butterfly",
                 model_dir: str | Path | None = None, gamma: float = 0.6, n_regions: int = 3,
                 max_references: int = 16, uncertain_below: float = UNCERTAIN_BELOW, n_controls: int = 8,
                 device: str = "auto", progress: bool = False, max_reference_species: int = 8) -> None:
        self.classifier = classifier
        self.group = find_group(group).name  # an unknown group fails here, naming the known ones
        # Pixel scorers name colours in the group's palette (birds: CUB's rufous, buff, olive ...).
        self.scorer = create_scorer(scorer, device=device).for_group(self.group)
        self.expert = load_expert_source(expert, self.group)
        self.model_dir = Path(model_dir) if model_dir else getattr(classifier, "model_dir", None)
        self.gamma = gamma
        self.n_regions = n_regions
        self.max_references = max_references
        self.uncertain_below = uncertain_below
        self.n_controls = n_controls
        self.progress = progress
        self._reference_photos = ReferencePhotoCache(max_reference_species)
        # Parts found by fitted part concepts (`finer-traits parts fit`), when the model folder has them.
        self.parts = PartLocator.load(self.model_dir)

    def __repr__(self) -> str:
        return (f"Pipeline(model_dir={str(self.model_dir)!r}, scorer={self.scorer.spec!r}, group={self.group!r}, "
                f"species={self.classifier.num_classes})")

    @classmethod
    def load(cls, model_dir: str | Path, scorer: Any = "color", expert: Any = None, device: str = "auto",
             taxon_group: str | None = None, **kwargs: Any) -> Pipeline:
        """Load the classifier in MODEL_DIR and build the scorer ('color', 'openclip:<id or path>', 'hf:<id or path>').

        taxon_group: the group whose parts, palette and phrases are used; default the model card's `taxon_group`
        (set by `finer-traits train --taxon-group`), else butterfly (models trained before groups existed)."""
        if taxon_group is not None:
            find_group(taxon_group)  # an unknown group fails before the model is loaded
        clf = load_classifier(model_dir, device=device)
        group = taxon_group or kwargs.pop("group", None) or clf.card.get("taxon_group") or "butterfly"
        return cls(clf, scorer=scorer, expert=expert, group=group, model_dir=model_dir, device=device, **kwargs)

    # -- helpers -------------------------------------------------------------------------------------------
    def _candidates(self, target: str, contrast: str, names: Sequence[str],
                    colour: bool = True) -> tuple[list, list]:
        lists = [tl for tl in _expert_lists(self.expert, [target, contrast])]
        cands = candidate_phrases(self.group, [tl for tl in lists if tl is not None], species_names=names,
                                  n_controls=self.n_controls, located=tuple(self.parts.parts) if self.parts else ())
        cands = [c for c in cands if c.control or (self.scorer.supports(c.phrase)
                                                   and self.scorer.supports_trait(c.trait.part, c.trait.attribute))]
        if not colour:  # a photo without colour cannot show a colour difference, whatever a scorer says
            cands = [c for c in cands if c.control or c.trait.attribute != "colour"]
        # Controls the scorer cannot read (the colour scorer: random words) become a random part and colour.
        return measurable_controls(cands, self.scorer.supports, self.group), lists

    def _profile_fn(self, cands: Sequence[Any], species: Any = None,
                    outlines: Callable[[], Mapping[str, np.ndarray | None]] | None = None):
        """profile(images, phrases, paths=None) -> scores [n, P], computed exactly as for the described photo (same
        organism estimate, with the classifier's Grad-CAM for `species` as saliency, one batched pass per call).

        outlines: path -> organism outline of photos whose outline is already known (the in-memory reference
        photos), asked for only when a photo with a path is scored; the others get their Grad-CAM here."""
        by_phrase = {c.phrase: c for c in cands}

        def profile(images, phrases, paths=None):
            chosen = [by_phrase[p] for p in phrases]
            known = outlines() if outlines is not None and paths is not None else {}
            keys = [str(p) for p in paths] if paths is not None else [None] * len(images)
            organisms = [known.get(k) for k in keys]
            todo = [i for i, k in enumerate(keys) if k not in known]
            if todo:
                batch = [images[i] for i in todo]
                saliency = self._saliency(batch, species) if species is not None else [None] * len(batch)
                for i, im, s in zip(todo, batch, saliency, strict=True):
                    organisms[i] = organism_mask(im, saliency=s)
            return np.stack([image_profile(im, o, chosen, self.scorer, self.group, self._located(im, o))
                             for im, o in zip(images, organisms, strict=True)])

        return profile

    def _saliency(self, images: list, species: Any) -> np.ndarray:
        """Plain Grad-CAM of `species` for a batch of photos (where the classifier looks): [N, H, W] in [0, 1]."""
        return explain(self.classifier, images, target=species, method="gradcam").maps.numpy()

    def _located(self, image: Image.Image, organism: np.ndarray | None) -> dict[str, np.ndarray] | None:
        """Masks of the parts the model's part concepts find on this photo (None without fitted parts)."""
        return self.parts.locate(image, organism, self.classifier) if self.parts else None

    def _cache_key(self) -> str:
        parts = self.parts.cache_id if self.parts else "none"
        return (f"{self.scorer.cache_id}|group={self.group}|layout=5|organism=3|crops=2|exif=1|parts={parts}"
                f"|n={self.max_references}")

    def references(self, species: str, cands: Sequence[Any]) -> np.ndarray | None:
        """Reference scores [n_photos, n_candidates] of one species (cached in the model dir)."""
        # Reference photos get their outline once: the region evidence needs the same photos in memory anyway.
        def outlines() -> dict[str, np.ndarray | None]:
            return {p.path: p.organism for p in self.reference_photos(species)}

        return reference_scores(self.model_dir, species, [c.phrase for c in cands],
                                self._profile_fn(cands, species, outlines),
                                self._cache_key(), max_images=self.max_references, progress=self.progress)

    def _species(self, contrast_species: Any, target_species: Any, probs: torch.Tensor) -> tuple[int, int, int]:
        clf = self.classifier
        c_idx = clf.index(contrast_species)
        pred = int(probs.argmax())
        t_idx = clf.index(target_species) if target_species is not None else pred
        if t_idx == c_idx:
            if target_species is not None:
                raise ConflictingOptionsError(f"The contrast species is the target species ({clf.label(c_idx)}).",
                                  "Pick a different, similar species to compare with (e.g. its sibling).")
            raise ConflictingOptionsError(
                f"The classifier says this photo shows {clf.label(pred)} (probability {float(probs[pred]):.2f}), "
                "the same species you asked to contrast it with.",
                "Pass target_species= (CLI: --target) to say what the photo shows, or choose another contrast.")
        return t_idx, c_idx, pred

    def maps(self, img: Image.Image, t_idx: int, c_idx: int) -> tuple[dict[str, np.ndarray], list]:
        """Stage 1 alone: {'gradcam', 'finer', 'finer_reverse'} maps of a photo, and the CAM results behind them.

        The Finer maps use the model card's measured default (multi-layer heads: sharp, local maps); the plain
        Grad-CAM stays at the last layer, where it marks the whole organism for the outline. The web app calls
        this to redraw the maps of a stored result."""
        finer_method = default_method(self.classifier)
        # The same forward pass keeps the layers region matching reads (CamResult.activations).
        cams = explain_many(self.classifier, img, [
            CamRequest(method="gradcam", target=t_idx),
            CamRequest(method=finer_method, target=t_idx, contrast=c_idx, gamma=self.gamma),
            CamRequest(method=finer_method, target=c_idx, contrast=t_idx, gamma=self.gamma)],
            keep=matching_layers(self.classifier))
        names = ("gradcam", "finer", "finer_reverse")
        return {name: r.maps[0].numpy().astype(np.float32) for name, r in zip(names, cams, strict=False)}, cams

    # -- the five stages -----------------------------------------------------------------------------------
    def describe(self, image: Any, contrast_species: Any, target_species: Any = None, top_k: int = 5,
                 side: str | None = None) -> DescribeResult:
        """Describe how the pictured species differs from contrast_species (see the module docstring).

        side: which side of the organism the photo shows ('upper' / 'under', or a field guide's word for it:
        above, dorsal, below, ventral ...), when known: the traits carry it, and the expert lists' statements about
        the other side are then not checked against them. None: not known, every statement applies."""
        t0 = time.perf_counter()
        if not isinstance(top_k, int) or top_k < 1:
            raise BadValueError(f"top_k must be a positive whole number (got {top_k!r}).", "Use e.g. top_k=5.")
        side = normalise_side(side)
        img = load_image(image)
        warnings_: list[str] = []
        if max(img.size) > MAX_WORK_SIDE:
            warnings_.append(f"Photo downscaled from {img.size[0]}x{img.size[1]} for processing.")
            img = working_image(img)
        if min(img.size) < 32:
            warnings_.append(f"The photo is only {img.size[0]}x{img.size[1]} px: maps and colours are unreliable.")
        achromatic = is_achromatic(img)
        if achromatic:
            warnings_.append(NO_COLOUR_WARNING)
        clf = self.classifier
        probs, _ = clf.predict(img)
        probs = probs[0].cpu()
        t_idx, c_idx, pred = self._species(contrast_species, target_species, probs)
        target, contrast = clf.class_names[t_idx], clf.class_names[c_idx]
        p_target = float(probs[t_idx])
        uncertain = pred != t_idx or p_target < self.uncertain_below
        if uncertain:
            warnings_.append(f"The classifier is unsure: p({target}) = {p_target:.2f}, top guess {clf.class_names[pred]}"
                             f" ({float(probs[pred]):.2f}).")

        # 1. Maps: plain Grad-CAM and Finer-CAM both ways, from one pass of the CAM engine.
        maps, cams = self.maps(img, t_idx, c_idx)

        # 2. Regions of the target-vs-contrast map, and where the organism is.
        organism = organism_mask(img, saliency=maps["gradcam"])
        regions = extract_regions(img, maps["finer"], top_k=self.n_regions, organism=organism)
        if organism is None:
            warnings_.append("No clear organism outline was found; colours are measured on the whole photo.")

        # 3. Candidate phrases for this pair.
        names = [target, contrast, clf.common_names[t_idx] or "", clf.common_names[c_idx] or ""]
        cands, lists = self._candidates(target, contrast, names, colour=not achromatic)
        warnings_ += expert_coverage_warnings(self.expert, [target, contrast])

        # 4. Scores, made relative: this photo vs the contrast species' references, regions vs the organism.
        # The regions themselves are compared with their counterparts on both species' reference photos.
        located = self._located(img, organism)
        profile = image_profile(img, organism, cands, self.scorer, self.group, located)
        whole, per_region = region_scores(img, organism, regions, cands, self.scorer)
        contrast_ref = self.references(contrast, cands)
        target_ref = self.references(target, cands)
        if contrast_ref is None:
            warnings_.append(f"No reference photos of {contrast} were found (references.csv in the model folder): "
                             "traits are ranked by region-vs-organism contrast only and have no direction.")
        table = rank_phrases(cands, profile, whole, per_region, contrast_ref, target_ref,
                             floor_shown=shown_floor(self.scorer), absent_below=absent_threshold(self.scorer))
        layers, kept = matching_layers(clf), cams[0].activations
        features = matching_features(kept, layers)[0] if set(layers) <= kept.keys() else None
        evidence = self.region_evidence(img, organism, regions, cands, per_region, target, contrast, features)
        table = apply_region_evidence(table, cands, evidence, regions,
                                      PartShares(organism, self.group, whole=find_group(self.group).whole_part,
                                                 located=located))
        parts = PartRelations(self.group, self.parts.parts if self.parts else None)
        chosen = select_diverse(table, top_k, related=parts.related, finer=parts.finer)

        # 5. Words: traits with evidence and expert status, then the paragraph.
        words = self._words(table, chosen, lists, (target, contrast), lambda r: r.effect,
                            (clf.label(t_idx), clf.label(c_idx)), p_target, uncertain, clf.label(pred), side=side)
        provenance = self._provenance(cams[1], time.perf_counter() - t0, contrast_ref, target_ref, table)
        provenance["side"] = side
        return DescribeResult(text=words.text, traits=words.traits, regions=regions, maps=maps, provenance=provenance,
                              target_species=target, contrast_species=contrast, target_probability=p_target,
                              uncertain=uncertain, controls=words.controls, warnings=warnings_, image=img,
                              counterparts=evidence.to_dict() if evidence is not None else [])

    def reference_photos(self, species: str) -> list[ReferencePhoto]:
        """The species' reference photos (the model's references.csv), with outlines and matching features; kept
        in memory for the next photos described against the same species."""
        def build() -> list[ReferencePhoto]:
            paths = reference_images(self.model_dir, species, max_images=self.max_references) if self.model_dir else []
            if not paths:
                return []
            images = [load_image(p) for p in paths]
            saliency = self._saliency(images, species)
            feats = feature_grids(self.classifier, images)
            return [ReferencePhoto(path=str(p), image=im, organism=organism_mask(im, saliency=s), features=f)
                    for p, im, s, f in zip(paths, images, saliency, feats, strict=True)]

        return self._reference_photos.get(species, build)

    def region_evidence(self, img: Image.Image, organism: np.ndarray | None, regions: Sequence[Region],
                        cands: Sequence[Any], per_region: np.ndarray, target: str, contrast: str,
                        features: torch.Tensor | None = None) -> RegionEvidence | None:
        """Each region's counterparts on the contrast (and target) species' reference photos, found by matching
        the classifier's features, and every phrase scored on them; None without regions or contrast references.
        features: the photo's matching features when the CAM pass kept them (else one forward pass here)."""
        contrast_refs = self.reference_photos(contrast)
        if not regions or not contrast_refs:
            return None
        refs = [(contrast, r) for r in contrast_refs] + [(target, r) for r in self.reference_photos(target)]
        if features is None:
            features = feature_grids(self.classifier, [img])[0]
        found = counterparts(img, organism, features, regions, refs)
        by_path = {r.path: r for _, r in refs}
        return score_counterparts(self.scorer, img, organism, regions, found, by_path, cands, contrast, per_region)

    def _words(self, table: PhraseTable, chosen: PhraseTable, lists: Sequence[Any],
               species: tuple[str, str], score_of: Callable[[PhraseScore], float], labels: tuple[str, str],
               target_probability: float | None = None, uncertain: bool = False,
               predicted_label: str | None = None, side: str | None = None) -> Words:
        """Stage 5, shared by describe and describe_pair: the chosen rows as expert-checked evidence (their
        differences scored by `score_of`), the table's controls, and the paragraph about labels[0] vs labels[1].
        side: the side of the organism the photos show, when known; the traits carry it (see describe)."""
        target, contrast = species
        diffs = [TraitDifference(trait=_on_side(r.trait, side), direction=r.direction, target=target,
                                 contrast=contrast, score=float(score_of(r)), phrase=r.phrase)
                 for r in chosen]
        statuses = check_statuses(diffs, lists[0], lists[1], self.group)
        traits_out = [self._evidence(r, rank, status, side) for rank, (r, status)
                      in enumerate(zip(chosen, statuses, strict=False), start=1)]
        controls = [self._evidence(r, 0, None) for r in table.controls]
        clauses = [Clause(part=e.trait.part, attribute=e.trait.attribute, value=e.trait.value, direction=e.direction,
                          confidence=e.confidence, expert_status=e.expert_status, in_region=e.in_region)
                   for e in traits_out]
        text = compose_paragraph(labels[0], labels[1], clauses, target_probability, uncertain, predicted_label)
        return Words(traits=traits_out, controls=controls, text=text)

    def _evidence(self, row: PhraseScore, rank: int, status: str | None, side: str | None = None) -> TraitEvidence:
        contrast = row.contrast_score
        return TraitEvidence(trait=_on_side(row.trait, side), phrase=row.phrase, region=row.region, score=float(row.score),
                             contrast_score=None if not np.isfinite(contrast) else float(contrast),
                             direction=row.direction, confidence=row.confidence, expert_status=status,
                             rank=rank, effect=float(row.effect), control=row.control,
                             rank_score=float(row.rank_score), in_region=row.in_region,
                             region_effect=_r(row.region_effect))

    def _provenance(self, finer: Any, seconds: float, contrast_ref: Any, target_ref: Any, table: PhraseTable) -> dict:
        card = getattr(self.classifier, "card", {}) or {}
        return {
            "package_version": __version__, "method": "finer-cam", "cam_method": finer.method,
            "gamma": self.gamma, "cam_layers": list(finer.layers), "scorer": self.scorer.spec,
            "model_dir": str(self.model_dir) if self.model_dir else None,
            "classifier": {"kind": card.get("kind"), "backbone": (card.get("backbone") or {}).get("name")},
            "taxon_group": self.group, "ranking": table.method if len(table) else None,
            "n_candidates": table.n_real,
            "n_contrast_references": 0 if contrast_ref is None else int(len(contrast_ref)),
            "n_target_references": 0 if target_ref is None else int(len(target_ref)),
            "torch_version": torch.__version__, "seconds": round(seconds, 3),
            "time": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        }

    def describe_pair(self, images_a: Sequence[Any], images_b: Sequence[Any], species_a: Any, species_b: Any,
                      top_k: int = 5, side: str | None = None) -> DescribeResult:
        """How species A differs from species B over two sets of photos (VisDiff: per-phrase AUROC of A vs B).
        side: the side of the organism every photo shows, when known (as in describe)."""
        t0 = time.perf_counter()
        side = normalise_side(side)
        clf = self.classifier
        a_idx, b_idx = clf.index(species_a), clf.index(species_b)
        if a_idx == b_idx:
            raise ConflictingOptionsError(f"Both sets are labelled {clf.label(a_idx)}.", "Pass two different species.")
        if not images_a or not images_b:
            raise MissingValueError("describe_pair needs at least one photo of each species.", "Pass two non-empty lists.")
        a, b = clf.class_names[a_idx], clf.class_names[b_idx]
        names = [a, b, clf.common_names[a_idx] or "", clf.common_names[b_idx] or ""]
        photos_a, photos_b = [load_image(im) for im in images_a], [load_image(im) for im in images_b]
        # One photo without colour would make either side look "less red": leave colour out for the pair.
        colour = not any(is_achromatic(im) for im in photos_a + photos_b)
        cands, lists = self._candidates(a, b, names, colour=colour)
        phrases = [c.phrase for c in cands]
        profile_a, profile_b = self._profile_fn(cands, a_idx), self._profile_fn(cands, b_idx)
        scores_a = np.concatenate([profile_a(photos_a[i:i + 16], phrases) for i in range(0, len(photos_a), 16)])
        scores_b = np.concatenate([profile_b(photos_b[i:i + 16], phrases) for i in range(0, len(photos_b), 16)])
        table = set_statistics(cands, scores_a, scores_b)
        parts = PartRelations(self.group, self.parts.parts if self.parts else None)
        chosen = select_diverse(table, top_k, related=parts.related, min_effect=0.0, finer=parts.finer)
        if any(r.confidence != "weak" for r in chosen):
            chosen = chosen.where(lambda r: r.confidence != "weak")
        words = self._words(table, chosen, lists, (a, b), lambda r: r.auroc,
                            (f"{clf.label(a_idx)} (over {len(images_a)} photos)",
                             f"{clf.label(b_idx)} (over {len(images_b)} photos)"), side=side)
        provenance = {"method": "visdiff-auroc", "scorer": self.scorer.spec, "taxon_group": self.group, "side": side,
                      "n_a": len(images_a), "n_b": len(images_b), "seconds": round(time.perf_counter() - t0, 3),
                      "auroc": {r.phrase: round(float(r.auroc), 4) for r in chosen},
                      "time": datetime.now(timezone.utc).isoformat(timespec="seconds")}
        return DescribeResult(text=words.text, traits=words.traits, regions=[], maps={}, provenance=provenance,
                              target_species=a, contrast_species=b, target_probability=float("nan"),
                              uncertain=False, controls=words.controls,
                              warnings=([] if colour else [NO_COLOUR_WARNING])
                              + expert_coverage_warnings(self.expert, [a, b]))


_DEFAULT: dict[tuple, Pipeline] = {}


def describe(image: Any, contrast_species: Any, model: str | Path | Pipeline | None = None,
             target_species: Any = None, top_k: int = 5, expert: Any = None, scorer: str = "color",
             taxon_group: str | None = None, side: str | None = None) -> DescribeResult:
    """Describe how the species in `image` differs from `contrast_species`.

    model: a model folder (from `finer-traits train`) or a Pipeline; default: the FINER_TRAITS_MODEL setting.
    taxon_group: 'butterfly', 'bird', ... (`finer-traits groups`); default the model card's group.
    side: 'upper' / 'under' (above, dorsal / below, ventral) when the photo's side is known (Pipeline.describe).
    The loaded pipeline is kept for the next call with the same model, scorer and expert source.
    """
    if isinstance(model, Pipeline):
        return model.describe(image, contrast_species, target_species=target_species, top_k=top_k, side=side)
    model = model or os.environ.get(MODEL_ENV)
    if not model:
        raise MissingValueError(
            "No model is configured for describe().",
            f"Train one with `finer-traits train DATA --out MODEL_DIR` (or run `make demo` for a synthetic one) and "
            f"pass model=MODEL_DIR, or set the environment variable {MODEL_ENV}=MODEL_DIR.")
    key = (str(Path(model).resolve()), str(scorer), expert if isinstance(expert, (str, Path, type(None))) else id(expert),
           taxon_group)
    if key not in _DEFAULT:
        _DEFAULT.clear()  # keep one pipeline: models are large
        _DEFAULT[key] = Pipeline.load(model, scorer=scorer, expert=expert, taxon_group=taxon_group)
    return _DEFAULT[key].describe(image, contrast_species, target_species=target_species, top_k=top_k, side=side)
