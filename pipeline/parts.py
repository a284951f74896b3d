"""Parts located on photos in any pose, without hand-drawn boxes: Deep Feature Factorization (DFF).

Collins, Achanta and Suesstrunk (ECCV 2018): non-negative matrix factorisation of a CNN's spatial activations over
many photos gives k "concepts", each a direction in feature space; on a new photo every feature cell is explained
as a non-negative mix of them, and the concept that explains a cell best labels it. A concept is meant to fall on
the same structure whatever the pose, because the features are what is shared (how far that holds for CUB's
parts: docs/benchmarks.md, "Bird parts by part concepts").

Concepts have no names. They are named here by agreement with per-species part colours (CUB's attribute
percentages): for each part, the colour measured on a concept's region of each training photo is compared with what
annotators saw on that part of that species, against the same comparison for the whole organism. A part takes the
concept (or pair of concepts) specific to its branch of the part hierarchy that agrees clearly better than the
whole organism on photos it was not chosen on (name_concepts); other parts stay unlocated and their traits are
measured on, and named after, the whole organism.

No part-location annotations are needed, which is why this is the method: the CUB photos shipped here have none, so
a keypoint head could not be trained. Stored as parts.safetensors (the concepts) + parts.json (names, agreement,
provenance) in the model folder; never pickle.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from safetensors import SafetensorError
from safetensors.numpy import load_file, save_file

from pipeline.errors import CheckpointError
from pipeline.images import load_image
from pipeline.models.classifier import tap_maps
from pipeline.scorers.color import base_colours, classify_colours
from traits.errors import BadValueError, MissingValueError, UnknownSpeciesError
from traits.io import atomic_write, write_json_atomic
from traits.version import __version__
from traits.vocab import taxon_group

PARTS_WEIGHTS = "parts.safetensors"
PARTS_CARD = "parts.json"
PARTS_FORMAT = 1
DEFAULT_TAP = "blocks.4"  # stride 16: measured against strides 8 and 32 in docs/benchmarks.md (bird parts)
DEFAULT_K = 10
WORK_SIDE = 128  # colours for naming are counted on the photo shrunk to this longest side (enough for shares)
AGREEMENT_Z = 1.96  # a part is located when its best region beats the whole organism by this many standard errors
# Parts derived from others in the expert source: CUB gives upper and under tail colours, the vocabulary says tail.
DERIVED_PARTS = {"tail": ("upper tail", "under tail")}
NMF_MAX_ITER = 400
TRANSFORM_MAX_ITER = 200


@dataclass(frozen=True)
class PartLocator:
    """Fitted DFF concepts and the parts they were named after.

    components: [k, 2C] the concepts in the tap's feature space (positive and negative halves of C channels, since
    the tapped block output is signed and NMF needs non-negative data). scale: [k] each concept's mean weight over
    the training cells, so no concept wins cells by its energy alone. parts: part -> the concept indices whose
    union is that part (one or two). info: naming table and provenance, as stored in parts.json.
    """

    tap: str
    components: np.ndarray
    scale: np.ndarray
    parts: dict[str, tuple[int, ...]]
    size: int | None = None  # input side the backbone sees (None: the classifier's own): finer grids, smaller parts
    info: dict = field(default_factory=dict, repr=False)

    @property
    def k(self) -> int:
        """The number of concepts."""
        return int(self.components.shape[0])

    def concept_weights(self, activations: np.ndarray) -> np.ndarray:
        """Per-cell concept weights [k, h, w] (divided by each concept's scale) of one photo's tap output [2C, h, w]."""
        c, h, w = activations.shape
        if c != self.components.shape[1]:
            raise CheckpointError(f"The part concepts expect {self.components.shape[1]} features at {self.tap}, "
                                  f"the classifier gives {c}.",
                                  "Refit the parts for this model: finer-traits parts fit MODEL_DIR --expert ...")
        weights = nnls_weights(activations.reshape(c, -1).T, self.components)
        return (weights / self.scale[None, :]).T.reshape(self.k, h, w)

    def labels(self, image: Image.Image, organism: np.ndarray, classifier: torch.nn.Module) -> np.ndarray:
        """Concept index of each organism pixel (int [H, W]; -1 off the organism)."""
        acts = tap_activations(classifier, [image], self.tap, self.size)[0]
        return concept_labels(self.concept_weights(acts), organism)

    def locate(self, image: Image.Image, organism: np.ndarray | None,
               classifier: torch.nn.Module) -> dict[str, np.ndarray]:
        """Bool masks [H, W] of the located parts on this photo (a part whose concepts miss the photo is left out,
        as is everything without an organism outline: those traits are measured on the whole organism)."""
        if organism is None or not organism.any() or not self.parts:
            return {}
        labels = self.labels(load_image(image), organism, classifier)
        out = {}
        for part, concepts in self.parts.items():
            mask = np.isin(labels, concepts)
            if mask.any():
                out[part] = mask
        return out

    @property
    def cache_id(self) -> str:
        """What reference scores measured with these parts depend on (the fit's time and shape)."""
        return (f"dff:{self.tap}:k={self.k}:size={self.size}:{self.info.get('fitted', '')}:"
                f"{','.join(sorted(self.parts))}")

    def save(self, model_dir: str | Path) -> Path:
        """Write parts.safetensors and parts.json into the model folder; returns the JSON path."""
        out = Path(model_dir)
        if not out.is_dir():
            raise MissingValueError(f"Model folder {out} does not exist.", "Train a model there first.")
        tensors = {"components": np.ascontiguousarray(self.components, dtype=np.float32),
                   "scale": np.ascontiguousarray(self.scale, dtype=np.float32)}
        atomic_write(out / PARTS_WEIGHTS, lambda tmp: save_file(tensors, str(tmp)))
        card = {**self.info, "format": PARTS_FORMAT, "method": "dff", "tap": self.tap, "k": self.k,
                "input_size": self.size,
                "parts": {p: list(c) for p, c in sorted(self.parts.items())}}
        return write_json_atomic(out / PARTS_CARD, card)

    @classmethod
    def load(cls, model_dir: str | Path | None) -> PartLocator | None:
        """The locator stored in a model folder, or None when the folder has none (parts were never fitted)."""
        if model_dir is None:
            return None
        folder = Path(model_dir)
        if not (folder / PARTS_CARD).is_file() or not (folder / PARTS_WEIGHTS).is_file():
            return None
        fix = "Refit them: finer-traits parts fit MODEL_DIR --expert EXPERT (or delete parts.json and parts.safetensors)."
        try:
            card = json.loads((folder / PARTS_CARD).read_text(encoding="utf-8"))
            tensors = load_file(str(folder / PARTS_WEIGHTS))
            components, scale = tensors["components"], tensors["scale"]
            parts = {str(p): tuple(int(i) for i in c) for p, c in card["parts"].items()}
            tap = str(card["tap"])
            size = None if card.get("input_size") is None else int(card["input_size"])
        except (OSError, ValueError, KeyError, TypeError, AttributeError, SafetensorError) as exc:
            raise CheckpointError(f"The part concepts in {folder} cannot be read ({exc}).", fix) from exc
        if card.get("format") != PARTS_FORMAT or components.ndim != 2 or scale.shape != (components.shape[0],) \
                or any(not 0 <= i < components.shape[0] for c in parts.values() for i in c):
            raise CheckpointError(f"The part concepts in {folder} are damaged or of another format.", fix)
        return cls(tap=tap, components=components, scale=scale, parts=parts, size=size, info=card)


def nnls_weights(x: np.ndarray, components: np.ndarray) -> np.ndarray:
    """Non-negative weights W [n, k] with x ~ W @ components, the concepts held fixed (NMF's transform step)."""
    from sklearn.decomposition import non_negative_factorization

    w, _, _ = non_negative_factorization(np.asarray(x, dtype=np.float64), H=components.astype(np.float64),
                                         n_components=components.shape[0], update_H=False, solver="cd",
                                         max_iter=TRANSFORM_MAX_ITER)
    return w


def tap_activations(classifier: torch.nn.Module, images: Sequence[Image.Image], tap: str,
                    size: int | None = None) -> np.ndarray:
    """The tapped block's output for a batch of photos, split into its positive and negative halves [N, 2C, h, w]
    (the block ends in a linear projection, so its output is signed; NMF needs non-negative features). size: the
    input side (default the classifier's own); the backbone is convolutional, so a larger input gives a finer grid."""
    backbone = getattr(classifier, "backbone", None)
    if backbone is None or not hasattr(backbone, "forward_features"):
        raise BadValueError("Parts can only be located with a convolutional backbone classifier.",
                            "Use a model trained with `finer-traits train` (efficientnet_lite0 or another timm CNN).")
    with torch.no_grad():
        if size:
            x = replace(classifier.preprocess, size=(size, size))(list(images)).to(classifier.device)
        else:
            x = classifier.prepare(list(images))
        out = tap_maps(backbone, [tap], x)[tap].float().cpu()
    return torch.cat([out.clamp(min=0), (-out).clamp(min=0)], dim=1).numpy()


def _resize(maps: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Bilinear resize of [k, h, w] maps to (width, height) = size."""
    w, h = size
    return np.stack([np.asarray(Image.fromarray(m.astype(np.float32), mode="F").resize((w, h), Image.BILINEAR))
                     for m in maps])


def concept_labels(weights: np.ndarray, organism: np.ndarray) -> np.ndarray:
    """The strongest concept at each organism pixel (int [H, W]; -1 off the organism), from weights [k, h, w]."""
    h, w = organism.shape
    labels = _resize(weights, (w, h)).argmax(0)
    return np.where(organism, labels, -1)


# ---------------------------------------------------------------------------------------------------------------
# Fitting: photos prepared once (work size, organism outline), concepts by NMF, names by colour agreement.

@dataclass
class PhotoSet:
    """Photos prepared for fitting or measuring parts: RGB at WORK_SIDE, organism outlines, species names."""

    images: list[Image.Image]
    organisms: list[np.ndarray | None]
    species: list[str]


def prepare_photos(classifier: torch.nn.Module, paths: Sequence[str | Path], species: Sequence[str],
                   batch: int = 16, progress: bool = False) -> PhotoSet:
    """Load photos at WORK_SIDE with their organism outlines (Grad-CAM of their own species as saliency, as
    describe does for reference photos)."""
    from pipeline.cam import explain
    from pipeline.regions import organism_mask

    images, organisms = [], []
    for start in range(0, len(paths), batch):
        chunk = [work_image(load_image(p)) for p in paths[start:start + batch]]
        targets = [_class_or_none(classifier, s) for s in species[start:start + batch]]
        known = [i for i, t in enumerate(targets) if t is not None]
        saliency: list[np.ndarray | None] = [None] * len(chunk)
        if known:
            maps = explain(classifier, [chunk[i] for i in known], target=[targets[i] for i in known],
                           method="gradcam").maps.numpy()
            for i, m in zip(known, maps, strict=True):
                saliency[i] = m
        organisms += [organism_mask(im, saliency=s) for im, s in zip(chunk, saliency, strict=True)]
        images += chunk
        if progress:
            print(f"  prepared {len(images)}/{len(paths)} photos", flush=True)
    return PhotoSet(images, organisms, list(species))


def work_image(image: Image.Image) -> Image.Image:
    """The photo shrunk for fitting and measuring (outlines at twice WORK_SIDE, colours at WORK_SIDE)."""
    scale = WORK_SIDE * 2 / max(image.size)  # outlines want a little more than the colour counts
    if scale >= 1:
        return image
    return image.resize((max(1, round(image.size[0] * scale)), max(1, round(image.size[1] * scale))), Image.BILINEAR)


def _class_or_none(classifier: torch.nn.Module, name: str) -> int | None:
    try:
        return classifier.index(name)
    except UnknownSpeciesError:  # a species the classifier lacks: its predicted class gives the saliency
        return None


def photo_activations(classifier: torch.nn.Module, photos: PhotoSet, tap: str, size: int | None = None,
                      batch: int = 32) -> list[np.ndarray]:
    """Tap outputs [2C, h, w] of every photo."""
    out: list[np.ndarray] = []
    for start in range(0, len(photos.images), batch):
        out += list(tap_activations(classifier, photos.images[start:start + batch], tap, size))
    return out


def _organism_cells(organism: np.ndarray | None, shape: tuple[int, int]) -> np.ndarray:
    """Feature cells [h, w] that lie mostly on the organism."""
    if organism is None:
        return np.zeros(shape, dtype=bool)
    small = Image.fromarray(organism.astype(np.float32), mode="F").resize((shape[1], shape[0]), Image.BOX)
    return np.asarray(small) >= 0.5


def fit_concepts(activations: Sequence[np.ndarray], organisms: Sequence[np.ndarray | None], k: int,
                 seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(components [k, 2C], scale [k]): NMF of the organism cells of all photos (cells off the organism are left out,
    so the concepts split the organism rather than organism from background)."""
    from sklearn.decomposition import NMF

    rows = [a.reshape(a.shape[0], -1).T[_organism_cells(o, a.shape[1:]).ravel()]
            for a, o in zip(activations, organisms, strict=True)]
    x = np.concatenate(rows) if rows else np.zeros((0, 1))
    if len(x) < 2 * k:
        raise MissingValueError(f"Only {len(x)} feature cells lie on organisms, too few for {k} part concepts.",
                                "Fit on more photos (the training split of a real data set) or use a smaller --k.")
    model = NMF(n_components=k, init="nndsvda", max_iter=NMF_MAX_ITER, random_state=seed)
    w = model.fit_transform(x.astype(np.float64))
    components = model.components_.astype(np.float32)
    # Concepts compared by their share of the cells they explain, not by raw weight (scale = mean weight).
    scale = np.maximum(w.mean(0), 1e-8).astype(np.float32)
    return components, scale


def colour_counts(image: Image.Image, labels: np.ndarray, k: int, group: str) -> np.ndarray:
    """Pixels of each palette colour per concept [k + 1, n_colours] (row k: the whole organism) at WORK_SIDE."""
    palette = base_colours(group)
    scale = min(1.0, WORK_SIDE / max(image.size))
    size = (max(1, round(image.size[0] * scale)), max(1, round(image.size[1] * scale)))
    rgb = np.asarray(image.convert("RGB").resize(size, Image.BILINEAR), dtype=np.float32) / 255.0
    lab = np.asarray(Image.fromarray((labels + 1).astype(np.int32), mode="I").resize(size, Image.NEAREST)) - 1
    cls = classify_colours(rgb, group)
    counts = np.zeros((k + 1, len(palette)))
    on = lab >= 0
    np.add.at(counts, (lab[on], cls[on]), 1)
    counts[k] = counts[:k].sum(0)
    return counts


@dataclass
class Measured:
    """Colour counts per photo and concept [N, k + 1, n_colours] (last row: whole organism) and concept labels."""

    counts: np.ndarray
    labels: list[np.ndarray | None]


def measure_concepts(locator: PartLocator, photos: PhotoSet, activations: Sequence[np.ndarray],
                     group: str) -> Measured:
    """Each photo's concept labels and the palette colours counted on every concept's pixels."""
    n_colours = len(base_colours(group))
    counts = np.zeros((len(photos.images), locator.k + 1, n_colours))
    labels: list[np.ndarray | None] = []
    for i, (im, org, act) in enumerate(zip(photos.images, photos.organisms, activations, strict=True)):
        if org is None or not org.any():
            labels.append(None)
            continue
        lab = concept_labels(locator.concept_weights(act), org)
        labels.append(lab)
        counts[i] = colour_counts(im, lab, locator.k, group)
    return Measured(counts, labels)


def expert_colours(part_colours: Mapping[str, Mapping[str, Mapping[str, float]]], species: Sequence[str],
                   part: str, palette: Sequence[str]) -> np.ndarray:
    """[N, n_colours] share (0..1) of each species' photos whose `part` shows each colour; NaN rows where the
    source lacks the species or the part (a derived part averages its sources)."""
    from traits.names import normalise_name

    by_name = {normalise_name(k): v for k, v in part_colours.items()}
    out = np.full((len(species), len(palette)), np.nan)
    for i, s in enumerate(species):
        table = by_name.get(normalise_name(s))
        if table is None:
            continue
        sources = [table[p] for p in DERIVED_PARTS.get(part, (part,)) if p in table]
        if not sources and part in table:
            sources = [table[part]]
        if sources:
            out[i] = np.mean([[float(src.get(c, 0.0)) for c in palette] for src in sources], axis=0) / 100.0
    return out


def agreement(shares: np.ndarray, expected: np.ndarray) -> np.ndarray:
    """Per photo: measured colour shares [N, n_colours] times the species' part colours beyond their mean over the
    photos [N, n_colours]; high when the region shows the colours this species has there more than others do."""
    centred = expected - np.nanmean(expected, axis=0, keepdims=True)
    return (shares * centred).sum(1)


def _shares(counts: np.ndarray) -> np.ndarray:
    total = counts.sum(-1, keepdims=True)
    return np.divide(counts, total, out=np.zeros_like(counts), where=total > 0)


def candidate_regions(k: int) -> list[tuple[int, ...]]:
    """Every concept alone and every pair of concepts."""
    return [(j,) for j in range(k)] + [(a, b) for a in range(k) for b in range(a + 1, k)]


def region_shares(counts: np.ndarray, region: tuple[int, ...]) -> np.ndarray:
    """[N, n_colours] colour shares on a union of concepts; the whole organism's where the region misses a photo
    (what describe measures then)."""
    part = counts[:, list(region)].sum(1)
    empty = part.sum(1) == 0
    part[empty] = counts[empty, -1]
    return _shares(part)


def name_concepts(measured: Measured, species: Sequence[str],
                  part_colours: Mapping[str, Mapping[str, Mapping[str, float]]], parts: Sequence[str], group: str,
                  z: float = AGREEMENT_Z) -> tuple[dict[str, tuple[int, ...]], dict[str, dict]]:
    """(part -> concepts, per-part naming table): each part takes the concept or concept pair whose colours agree
    best with the expert's for that part, among the regions that are specific to its branch of the part hierarchy,
    when that beats the whole organism by z standard errors.

    Specific: a region's gain over the whole organism is largest, relative to its mean gain over all parts, for a
    part of the same branch (breast, belly and underparts; crown, nape and throat under head). A region that is
    merely a cleaner whole bird (without the perch its outline kept) gains a little on every part and names none;
    one region never names a breast and a wing at once. The region is chosen on half of the photos (even positions)
    and its gain confirmed on the other half: with 55 candidate regions (k = 10) the best one beats the whole
    organism on the photos it was picked on by chance alone."""
    palette = base_colours(group)
    regions = candidate_regions(measured.counts.shape[1] - 1)
    ok_photo = measured.counts[:, -1].sum(1) > 0
    confirm_fold = np.arange(len(species)) % 2 == 1
    whole = _shares(measured.counts[:, -1])
    gains: dict[str, tuple[np.ndarray, np.ndarray]] = {}  # part -> (gain over the whole [R, n], confirm flags [n])
    table: dict[str, dict] = {}
    for part in parts:
        expected = expert_colours(part_colours, species, part, palette)
        rows = ok_photo & np.isfinite(expected).all(1)
        if rows.sum() < 10:
            table[part] = {"located": False, "reason": f"only {int(rows.sum())} photos with expert colours"}
            continue
        base = agreement(whole[rows], expected[rows])
        gains[part] = (np.stack([agreement(region_shares(measured.counts[rows], r), expected[rows]) - base
                                 for r in regions]), confirm_fold[rows])
    if not gains:
        return {}, table
    names = list(gains)
    chosen_fold = np.stack([g[:, ~f].mean(1) for g, f in gains.values()])  # [parts, R]
    top = (chosen_fold - chosen_fold.mean(0, keepdims=True)).argmax(0)  # each region's most specific part
    branch = _branches(names, group)
    chosen: dict[str, tuple[int, ...]] = {}
    for i, part in enumerate(names):
        eligible = np.array([bool(branch[part] & branch[names[t]]) for t in top]) & (chosen_fold[i] > 0)
        if not eligible.any():
            table[part] = {"located": False, "reason": "no region specific to this part beats the whole organism"}
            continue
        best = int(np.argmax(np.where(eligible, chosen_fold[i], -np.inf)))
        check = gains[part][0][best, gains[part][1]]
        mean, se = float(check.mean()), float(check.std(ddof=1) / np.sqrt(len(check)))
        located = mean > 0 and mean > z * se
        table[part] = {"located": bool(located), "concepts": list(regions[best]), "gain": round(mean, 5),
                       "gain_se": round(se, 5), "specific_to": names[int(top[best])], "n_confirm": len(check)}
        if located:
            chosen[part] = regions[best]
    return chosen, table


def _branches(parts: Sequence[str], group: str) -> dict[str, set[str]]:
    """Each part with its coarser parts, the whole organism left out: parts that share one are in one branch."""
    spec = taxon_group(group)
    return {p: ({p} | spec.parts.ancestors(p)) - {spec.whole_part} for p in parts}


def fit_parts(classifier: torch.nn.Module, photos: PhotoSet,
              part_colours: Mapping[str, Mapping[str, Mapping[str, float]]], parts: Sequence[str], group: str,
              k: int = DEFAULT_K, tap: str = DEFAULT_TAP, size: int | None = None, seed: int = 0,
              activations: Sequence[np.ndarray] | None = None, provenance: Mapping | None = None) -> PartLocator:
    """Fit k DFF concepts on the photos at `tap` (input side `size`) and name them after `parts` by the expert's
    part colours (activations: the photos' tap outputs when the caller has them, see photo_activations)."""
    if not isinstance(k, int) or not 2 <= k <= 64:
        raise BadValueError(f"k must be a whole number from 2 to 64 (got {k!r}).", "Use e.g. --k 10.")
    if not photos.images:
        raise MissingValueError("No photos to fit part concepts on.", "Give the model's training photos.")
    t0 = time.perf_counter()
    acts = list(activations) if activations is not None else photo_activations(classifier, photos, tap, size)
    components, scale = fit_concepts(acts, photos.organisms, k, seed)
    bare = PartLocator(tap=tap, components=components, scale=scale, parts={}, size=size)
    measured = measure_concepts(bare, photos, acts, group)
    chosen, table = name_concepts(measured, photos.species, part_colours, parts, group)
    info = {"taxon_group": group, "seed": seed, "n_photos": len(photos.images),
            "n_outlined": int(sum(o is not None for o in photos.organisms)), "naming": table,
            "agreement_z": AGREEMENT_Z, "package_version": __version__, "seconds": round(time.perf_counter() - t0, 1),
            "fitted": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), **dict(provenance or {})}
    return PartLocator(tap=tap, components=components, scale=scale, parts=chosen, size=size, info=info)


def expert_part_colours(source: str | Path, group: str) -> dict[str, dict[str, dict[str, float]]]:
    """species -> part -> colour -> percent of photos, from a CUB attribute folder (its percentages) or any expert
    trait source (traits.load_expert: a listed colour counts as 100 %)."""
    from traits.cub import load_cub
    from traits.expert import load_expert

    path = Path(source)
    if path.is_dir() and (path / "attributes.txt").is_file():
        cub = load_cub(path, group=group)
        return {c: cub.part_colours(c) for c in cub.classes}
    out: dict[str, dict[str, dict[str, float]]] = {}
    for taxon, traits in load_expert(source, group=group).items():
        for t in traits:
            if t.attribute == "colour" and t.part:
                out.setdefault(taxon, {}).setdefault(t.part, {})[t.value] = 100.0
    return out


def fit_model_parts(model_dir: str | Path, expert: str | Path, data: str | Path | None = None,
                    k: int | None = None, tap: str | None = None, device: str = "cpu",
                    progress: bool = False) -> PartLocator:
    """Fit and name part concepts on a model's training photos (the card's data unless `data` is given), save them
    into the model folder (parts.safetensors, parts.json) and return the locator."""
    from pipeline.datasets import read_dataset
    from pipeline.models import load_classifier
    from pipeline.models.io import read_card

    card = read_card(model_dir)
    source = data or (card.get("training") or {}).get("data")
    if not source:
        raise MissingValueError(f"The model card in {model_dir} does not say which photos it was trained on.",
                                "Pass the training photos with --data (ImageFolder tree or manifest CSV).")
    group = card.get("taxon_group") or "butterfly"
    spec = taxon_group(group)
    k = int(k if k is not None else spec.locate_options.get("k", DEFAULT_K))
    tap = str(tap or spec.locate_options.get("tap", DEFAULT_TAP))
    colours = expert_part_colours(expert, group)
    if not colours:
        raise MissingValueError(f"The expert source {expert} names no part colours.",
                                "Give a CUB attribute folder or a trait list with colour traits of parts.")
    train = read_dataset(source, seed=int((card.get("training") or {}).get("seed", 0))).split("train")
    classifier = load_classifier(model_dir, device=device)
    photos = prepare_photos(classifier, list(train["path"]), list(train["species"]), progress=progress)
    expert_parts = {p for table in colours.values() for p in table}
    parts = [p for p in dict.fromkeys([*spec.candidates.get("colour", ()), *sorted(expert_parts), *DERIVED_PARTS])
             if p != spec.whole_part and (p in expert_parts or set(DERIVED_PARTS.get(p, ())) & expert_parts)]
    locator = fit_parts(classifier, photos, colours, parts, group, k=k, tap=tap,
                        provenance={"model_dir": str(Path(model_dir).resolve()), "data": str(source),
                                    "expert": str(Path(expert).resolve())})
    locator.save(model_dir)
    return locator
