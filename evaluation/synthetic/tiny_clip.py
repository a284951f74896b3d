"""A tiny open_clip model trained offline on part crops and trait captions of the synthetic species dataset.

No pretrained CLIP weights can be had offline, so this gives the CLIP scoring route a model that really aligns
image regions with trait phrases. The architecture is a plain open_clip `CLIP` built from a config dict (tiny ViT
image tower, tiny text transformer, the standard CLIP BPE tokenizer); the result is saved as a normal open_clip
checkpoint folder (open_clip_config.json with model_cfg + preprocess_cfg, open_clip_model.safetensors) that
`pipeline.models.load_open_clip(folder)` and `open_clip.create_model("local-dir:" + folder)` load.

Training pairs: square crops around each visible part (from the part label maps, with random context padding)
and around the whole organism, each with every caption that is true of it (the species' trait phrases for that
part in several wordings; absence traits such as "hindwing without a tail" go with the host part). The loss is a
multi-positive CLIP loss over the batch crops and the whole caption vocabulary, so duplicate captions within a
batch are never treated as negatives of each other, plus value_loss: a softmax among the values of each part and
attribute on which species differ (tail present vs absent), the question describe() asks.
"""

from __future__ import annotations

import csv
import json
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from safetensors.torch import save_file
from scipy import ndimage
from tqdm.auto import tqdm

from evaluation.synthetic.io import atomic_dataset_dir
from pipeline.device import resolve_device
from pipeline.masks import mask_box
from pipeline.regions import core_box, organism_mask, part_layout
from pipeline.scorers.clip import CROP_PADS
from pipeline.scorers.openclip import TRAINED_VOCABULARY
from pipeline.scoring import crop_part, side_pieces, square_crop
from traits.errors import BadValueError, DatasetError
from traits.io import atomic_write
from traits.vocab import load_vocab

CROP_SIZE = 64
MEAN = (0.48145466, 0.4578275, 0.40821073)
STD = (0.26862954, 0.26130258, 0.27577711)
TINY_CLIP_CONFIG: dict = {
    "embed_dim": 128,
    "vision_cfg": {"image_size": CROP_SIZE, "layers": 4, "width": 128, "head_width": 32, "mlp_ratio": 2.0,
                   "patch_size": 16},
    "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 128, "heads": 4, "layers": 3,
                 "mlp_ratio": 2.0},
}
PREPROCESS_CFG = {"size": CROP_SIZE, "mean": list(MEAN), "std": list(STD), "interpolation": "bicubic",
                  "resize_mode": "shortest", "fill_color": 0}
WHOLE = "whole"  # pseudo part name of whole-organism crops
_COUNT_WORDS = {"1": "one", "2": "two", "3": "three"}
# Traits of a sub-part that are also captions of its whole wing (absence, a count, a length need the wing in view).
_WHOLE_WING_ATTRIBUTES = {"presence", "count", "shape"}


def _split_part(part: str) -> tuple[str, str]:
    """'forewing band' -> ('forewing', 'band'); 'body' -> ('', 'body')."""
    words = part.split(" ", 1)
    return (words[0], words[1]) if len(words) == 2 else ("", part)


def caption_variants(part: str, attribute: str, value: str, text: str) -> list[str]:
    """Several wordings of one trait: the expert phrase plus templated forms ('orange band on the forewing')."""
    host, noun = _split_part(part)
    out = [text]
    if attribute == "colour":
        out += [f"{value} {part}", f"a {value} {part}"]
        if host:
            out.append(f"{value} {noun} on the {host}")
    elif attribute == "presence" and host:
        out += ([f"a {host} with a {noun}", f"{part} present"] if value == "present"
                else [f"a {host} without a {noun}", f"no {noun} on the {host}"])
    elif attribute == "count" and host:
        word = _COUNT_WORDS.get(value, value)
        out += [f"{word} {noun}{'s' if value != '1' else ''} on the {host}"]
    elif attribute == "shape" and host:
        out += [f"a {value} {noun}", f"a {host} with a {value} {noun}"]
    return list(dict.fromkeys(out))


def _read_csv(path: Path) -> list[dict]:
    if not path.is_file():
        raise DatasetError(f"{path} is missing; this is not a synthetic species dataset.",
                           "Make one with `finer-traits synth species OUT` (or evaluation.synthetic.make_species).")
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


@dataclass
class CaptionSet:
    """The caption vocabulary of a dataset and which captions are true of which (species, crop part)."""

    captions: list[str]
    canonical: list[str]  # the expert phrases (traits.csv text) only: the retrieval candidates in evaluation
    positives: dict[tuple[str, str], list[int]]  # (species, part) -> caption ids
    canonical_positives: dict[tuple[str, str], list[int]]  # (species, part) -> ids into `canonical`
    trait_text: dict[tuple[str, str, str], str]  # (species, part, attribute) -> canonical phrase
    # Value groups: for each (part, attribute) on which species differ, the caption ids of each value
    # (e.g. tail present / absent); value_targets[(species, crop part)] = [(group, value index), ...].
    value_groups: list[list[list[int]]] = field(default_factory=list)
    value_targets: dict[tuple[str, str], list[tuple[int, int]]] = field(default_factory=dict)


def colour_hard_negatives(traits: list[dict]) -> list[str]:
    """Captions true of no crop: each coloured part with every palette colour that no species shows on it or on
    a sub-part of it ('blue forewing band'). In the loss they are negatives of every crop, so the text tower must
    tell colours apart on the same part, not only parts apart (describe() scores all palette colours)."""
    shown: dict[str, set[str]] = {}
    for row in traits:
        if row["attribute"] == "colour":
            shown.setdefault(row["part"], set())
    for row in traits:
        if row["attribute"] == "colour":
            for part in shown:
                if row["part"] == part or row["part"].startswith(part + " "):
                    shown[part].add(row["value"])
    out: list[str] = []
    for part, values in shown.items():
        for colour in load_vocab().base_colours:
            if colour not in values:
                out += caption_variants(part, "colour", colour, f"{colour} {part}")
    return list(dict.fromkeys(out))


def build_captions(traits: list[dict], parts: list[str], hard_negatives: bool = True) -> CaptionSet:
    """Caption vocabulary and positives per (species, part) from a traits.csv table; with hard_negatives, plus
    the negative-only colour captions of colour_hard_negatives."""
    captions: dict[str, int] = {}
    canonical: dict[str, int] = {}
    positives: dict[tuple[str, str], set[int]] = {}
    canon_pos: dict[tuple[str, str], set[int]] = {}
    trait_text = {}

    def add(species: str, part: str, texts: list[str], canon: str) -> None:
        ids = [captions.setdefault(t, len(captions)) for t in texts]
        positives.setdefault((species, part), set()).update(ids)
        canon_pos.setdefault((species, part), set()).add(canonical.setdefault(canon, len(canonical)))

    values: dict[tuple[str, str], dict[str, set[int]]] = {}  # (part, attribute) -> value -> caption ids
    shown_on: list[tuple[str, str, str, str, str]] = []  # (species, crop part, part, attribute, value)
    for row in traits:
        sp, part, attr, value, text = row["taxon"], row["part"], row["attribute"], row["value"], row["text"]
        trait_text[(sp, part, attr)] = text
        variants = caption_variants(part, attr, value, text)
        targets = {part} if part in parts else set()
        host, _ = _split_part(part)
        if attr in _WHOLE_WING_ATTRIBUTES and host in parts:
            # Judged on the whole wing too: a hindwing has no tail, two eyespots, a long (vs short) tail.
            targets.add(host)
        for target in targets:
            add(sp, target, variants, text)
            shown_on.append((sp, target, part, attr, value))
        values.setdefault((part, attr), {}).setdefault(value, set()).update(captions[t] for t in variants)
        add(sp, WHOLE, [text], text)
    # Only where species differ: a softmax among one value has nothing to learn.
    group_of = {k: g for g, k in enumerate(k for k, v in values.items() if len(v) > 1)}
    value_groups = [[sorted(ids) for ids in values[k].values()] for k in group_of]
    value_targets: dict[tuple[str, str], list[tuple[int, int]]] = {}
    for sp, target, part, attr, value in shown_on:
        if (part, attr) in group_of:
            value_targets.setdefault((sp, target), []).append((group_of[(part, attr)],
                                                               list(values[(part, attr)]).index(value)))
    for sp in dict.fromkeys(r["taxon"] for r in traits):  # ordered: caption ids must not depend on hashing
        add(sp, WHOLE, [sp, f"a photo of {sp}"], sp)
    if hard_negatives:
        for text in colour_hard_negatives(traits):
            captions.setdefault(text, len(captions))
    return CaptionSet(captions=list(captions), canonical=list(canonical),
                      positives={k: sorted(v) for k, v in positives.items()},
                      canonical_positives={k: sorted(v) for k, v in canon_pos.items()}, trait_text=trait_text,
                      value_groups=value_groups, value_targets=value_targets)


def _crop(rgb: Image.Image, box: tuple[float, float, float, float], pad: float, shift: np.ndarray,
          min_side: float, aspect: float = 1.0) -> np.ndarray:
    """A crop around box (grown by pad, shifted by shift x side, width/height = aspect), resized to CROP_SIZE^2.

    Non-square crops are squashed, as pipeline.models.Preprocess does with region crops (resize, no centre crop).
    """
    x0, y0, x1, y1 = box
    side = max(x1 - x0, y1 - y0, min_side) * (1 + pad)
    cw, ch = side * math.sqrt(aspect), side / math.sqrt(aspect)
    cx, cy = (x0 + x1) / 2 + shift[0] * side, (y0 + y1) / 2 + shift[1] * side
    w, h = rgb.size
    cw, ch = min(cw, w), min(ch, h)
    left = min(max(cx - cw / 2, 0), w - cw)
    top = min(max(cy - ch / 2, 0), h - ch)
    crop = rgb.resize((CROP_SIZE, CROP_SIZE), Image.BICUBIC, box=(left, top, left + cw, top + ch))
    return np.asarray(crop, dtype=np.uint8)


@dataclass
class Crops:
    """Pre-extracted crops: images (N x 3 x S x S uint8) with their species and part."""

    images: torch.Tensor
    species: list[str]
    parts: list[str]


def layout_crops(rgb: Image.Image, labels: np.ndarray, names: list[str],
                 organism: np.ndarray | None = None) -> list[tuple[str, np.ndarray]]:
    """(part, crop) pairs cut exactly as describe() cuts them for CLIP scorers: the group's part layout laid on the
    organism, one square crop with context per side, for every crop key describe() uses (a part's own pieces for
    colours; a host wing with a sub-part's box for presence, e.g. a hindwing with where its tail is), labelled with
    the (host) part. organism: the outline to lay the layout on (default: the true one, labels > 0)."""
    layout = part_layout("butterfly")
    organism = labels > 0 if organism is None else organism
    if not organism.any():
        return []
    box = core_box(organism)
    keys = dict.fromkeys(crop_part(p, a) for p in names if p in layout for a in ("colour", "presence"))
    out, seen = [], set()
    for key in keys:
        for piece in side_pieces(organism, key, "butterfly", box):
            extent = (key[0], *mask_box(piece))
            if extent in seen:  # a sub-part inside its host's pieces (a band) gives the host's crop again
                continue
            seen.add(extent)
            for pad in CROP_PADS:  # every framing describe() scores
                crop = square_crop(rgb, piece, pad=pad).resize((CROP_SIZE, CROP_SIZE), Image.BICUBIC)
                out.append((key[0], np.asarray(crop, dtype=np.uint8)))
    return out


def extract_crops(dataset_dir: Path, split: str, part_names: dict[int, str], variants: int,
                  rng: np.random.Generator, min_pixels: int = 6, jitter: bool = True, layout: bool = False) -> Crops:
    """Crops around each visible part (largest or a random large component) and the whole organism; with jitter,
    random padding, offset and aspect ratio (as CAM regions vary), else square crops with fixed padding. With
    layout, also the crops describe() itself scores (layout_crops), so training sees what inference sees."""
    rows = [r for r in _read_csv(dataset_dir / "manifest.csv") if r["split"] == split]
    if rows and "parts" not in rows[0]:
        raise DatasetError(f"{dataset_dir} has no part label maps (no 'parts' column in manifest.csv).",
                           "Use the synthetic species dataset, not the shapes dataset.")
    images, species, parts = [], [], []
    for row in tqdm(rows, desc=f"crops ({split})", unit="img", leave=False):
        rgb = Image.open(dataset_dir / row["image"]).convert("RGB")
        labels = np.asarray(Image.open(dataset_dir / row["parts"]))
        min_side = 0.18 * min(rgb.size)  # small parts (eyespot, tail) keep some context, as a CAM region would
        regions = []
        for name in part_names.values():
            # A whole wing includes its sub-parts (margin, band, tip, eyespot, tail): "a hindwing without a tail"
            # needs the crop to show where the tail would be.
            ids = [i for i, other in part_names.items() if other == name or other.startswith(name + " ")]
            comp, n = ndimage.label(np.isin(labels, ids))
            if n == 0:
                continue
            sizes = ndimage.sum_labels(np.ones_like(comp), comp, index=np.arange(1, n + 1))
            big = [i + 1 for i, s in enumerate(sizes) if s >= max(min_pixels, 0.5 * sizes.max())]
            regions.append((name, comp, big))
        for _ in range(variants):
            for name, comp, big in regions:
                box = mask_box(comp == big[rng.integers(len(big))])
                if jitter:
                    crop = _crop(rgb, box, rng.uniform(0.2, 0.8), rng.uniform(-0.1, 0.1, 2), min_side,
                                 float(np.exp(rng.uniform(-0.4, 0.4))))
                else:
                    crop = _crop(rgb, box, 0.5, np.zeros(2), min_side)
                images.append(crop)
                species.append(row["species"])
                parts.append(name)
            box = mask_box(labels)
            if box is not None:
                images.append(_crop(rgb, box, rng.uniform(0.0, 0.2) if jitter else 0.1, np.zeros(2), min_side))
                species.append(row["species"])
                parts.append(WHOLE)
        if layout:
            # Laid on the true outline and on the one describe() estimates (pipeline.regions.organism_mask, here
            # without a classifier's saliency): an estimate that takes in a background blob below a hindwing frames
            # the crop as a tail would, and the model must learn that such a frame alone is no tail.
            estimated = organism_mask(rgb)
            outlines = [None] + ([estimated] if estimated is not None else [])
            for name, crop in (c for o in outlines for c in layout_crops(rgb, labels, list(part_names.values()), o)):
                images.append(crop)
                species.append(row["species"])
                parts.append(name)
    if not images:
        raise DatasetError(f"No '{split}' images with visible parts in {dataset_dir}.",
                           "Generate a dataset with at least 2 images per species (one goes to the test split).")
    stacked = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).contiguous()
    return Crops(images=stacked, species=species, parts=parts)


def _normalise(images: torch.Tensor, device: torch.device) -> torch.Tensor:
    x = images.to(device, dtype=torch.float32) / 255.0
    mean = torch.tensor(MEAN, device=device).view(1, 3, 1, 1)
    std = torch.tensor(STD, device=device).view(1, 3, 1, 1)
    return (x - mean) / std


def _positive_matrix(crops: Crops, captions: CaptionSet, canonical: bool = False) -> torch.Tensor:
    table = captions.canonical_positives if canonical else captions.positives
    n_caps = len(captions.canonical if canonical else captions.captions)
    pos = torch.zeros(len(crops.species), n_caps, dtype=torch.bool)
    for i, key in enumerate(zip(crops.species, crops.parts, strict=True)):
        pos[i, table.get(key, [])] = True
    return pos


def multi_positive_clip_loss(img: torch.Tensor, txt: torch.Tensor, pos: torch.Tensor,
                             logit_scale: torch.Tensor) -> torch.Tensor:
    """CLIP loss with several true captions per image: cross-entropy against the uniform distribution over the
    positives, image->text over all captions and text->image over the batch images (captions with a positive)."""
    logits = logit_scale * img @ txt.T
    target = pos.float() / pos.sum(1, keepdim=True).clamp(min=1)
    i2t = -(target * F.log_softmax(logits, dim=1)).sum(1)[pos.any(1)].mean()
    has = pos.any(0)
    target_t = pos[:, has].float().T / pos[:, has].sum(0).float().unsqueeze(1)
    t2i = -(target_t * F.log_softmax(logits[:, has].T, dim=1)).sum(1).mean()
    return (i2t + t2i) / 2


def _value_target_matrix(crops: Crops, captions: CaptionSet) -> torch.Tensor:
    """[n_crops, n_groups] index of the true value of each value group on each crop, -1 where it does not apply."""
    out = torch.full((len(crops.species), len(captions.value_groups)), -1, dtype=torch.long)
    for i, key in enumerate(zip(crops.species, crops.parts, strict=True)):
        for g, v in captions.value_targets.get(key, []):
            out[i, g] = v
    return out


def value_loss(img: torch.Tensor, txt: torch.Tensor, targets: torch.Tensor, groups: list[list[list[int]]],
               logit_scale: torch.Tensor) -> torch.Tensor:
    """Cross-entropy among the values of each part and attribute (tail present vs absent, orange vs red band),
    each value's score the log-mean-exp over its wordings: what describe() asks the model is a softmax among the
    values of one part, which the batch-wide CLIP loss trains only weakly (a hindwing crop has many true captions,
    and the other value's caption is one negative among dozens)."""
    logits = logit_scale * img @ txt.T
    terms = []
    for g, values in enumerate(groups):
        rows = targets[:, g] >= 0
        if not rows.any():
            continue
        sub = logits[rows]
        per_value = torch.stack([torch.logsumexp(sub[:, ids], dim=1) - math.log(len(ids)) for ids in values], dim=1)
        terms.append(F.cross_entropy(per_value, targets[rows, g], reduction="sum"))
    n = int((targets >= 0).sum())
    return torch.stack(terms).sum() / n if terms else logits.new_zeros(())


def _encode_text(model: torch.nn.Module, tokens: torch.Tensor) -> torch.Tensor:
    return F.normalize(model.encode_text(tokens), dim=-1)


@torch.no_grad()
def caption_retrieval(model: torch.nn.Module, tokenizer, crops: Crops, captions: CaptionSet,  # noqa: ANN001
                      pairs: list[dict], device: torch.device) -> dict:
    """Held-out accuracy: top-1/top-3 retrieval of a true expert phrase among all phrases, and for sibling pairs
    how often a crop of the differing part scores its own phrase above the sibling's."""
    model.eval()
    txt = _encode_text(model, tokenizer(captions.canonical).to(device))
    img = torch.cat([F.normalize(model.encode_image(_normalise(b, device)), dim=-1)
                     for b in crops.images.split(256)])
    sims = (img @ txt.T).cpu()
    pos = _positive_matrix(crops, captions, canonical=True)
    rank = sims.argsort(dim=1, descending=True)
    hit1 = pos.gather(1, rank[:, :1]).any(1)
    hit3 = pos.gather(1, rank[:, :3]).any(1)
    is_part = torch.tensor([p != WHOLE for p in crops.parts])
    index = {t: i for i, t in enumerate(captions.canonical)}
    pair_hits: dict[str, list[bool]] = {}
    for row in pairs:
        for own, other in ((row["species_a"], row["species_b"]), (row["species_b"], row["species_a"])):
            key = (row["part"], row["attribute"])
            own_t = captions.trait_text[(own, *key)]
            other_t = captions.trait_text[(other, *key)]
            host, _ = _split_part(row["part"])
            # Judge on crops of the differing part when it is visible, else (absence) and for counts (one crop
            # per spot cannot show how many there are) on crops of its whole wing.
            visible = any(p == row["part"] for s, p in zip(crops.species, crops.parts, strict=True) if s == own)
            wanted = {row["part"]} if visible and row["attribute"] != "count" else {host}
            for i, (s, p) in enumerate(zip(crops.species, crops.parts, strict=True)):
                if s == own and p in wanted:
                    pair_hits.setdefault(f"{own} vs {other}: {row['part']} {row['attribute']}", []).append(
                        bool(sims[i, index[own_t]] > sims[i, index[other_t]]))
    per_pair = {k: float(np.mean(v)) for k, v in pair_hits.items()}
    return dict(n_crops=int(is_part.sum()), n_phrases=len(captions.canonical),
                top1=float(hit1[is_part].float().mean()), top3=float(hit3[is_part].float().mean()),
                whole_top1=float(hit1[~is_part].float().mean()) if (~is_part).any() else float("nan"),
                sibling_accuracy=float(np.mean([x for v in pair_hits.values() for x in v])) if pair_hits else float("nan"),
                sibling_per_pair=per_pair)


def write_trained_vocabulary(folder: Path, traits: list[dict], dataset_dir: Path) -> None:
    """Write TRAINED_VOCABULARY: the parts and (part, attribute) pairs its captions named (OpenClipScorer leaves
    other phrases unscored) and how it was asked: bare captions, no "a photo of ..." template."""
    (Path(folder) / TRAINED_VOCABULARY).write_text(json.dumps(
        {"parts": sorted({r["part"] for r in traits}),
         "traits": sorted({(r["part"], r["attribute"]) for r in traits}), "templates": ["{phrase}"],
         "source": str(Path(dataset_dir).resolve())}, indent=2) + "\n")


def _free_cpu_threads() -> int:
    """CPU threads worth using now: the cores not already busy (1-minute load average), at least 1.

    On a shared machine, torch's default of one thread per core makes small models several times slower
    (threads wait on each other while other processes hold the cores); measured 0.5 s vs 4-7 s per step here.
    """
    try:
        load = os.getloadavg()[0]
    except (OSError, AttributeError):
        return torch.get_num_threads()
    return max(1, min(torch.get_num_threads(), int((os.cpu_count() or 1) - load + 0.5)))


def train_tiny_clip(dataset_dir: str | Path, out_dir: str | Path, minutes: float = 3.0, seed: int = 0,
                    device: str = "auto", max_steps: int | None = None, batch_size: int = 64, lr: float = 1e-3,
                    variants: int = 3, overwrite: bool = False, progress: bool = True,
                    threads: int | None = None, value_weight: float = 1.0) -> Path:
    """Train the tiny CLIP for `minutes` (or `max_steps`) on a synthetic species dataset; return the checkpoint
    folder (open_clip_config.json + open_clip_model.safetensors + training.json with losses and held-out scores).
    With a time budget the number of steps depends on the machine (and its load); pass max_steps for a run that
    is reproducible on one machine. value_weight: weight of value_loss (softmax among the values of a part) next
    to the CLIP loss; 0 trains the CLIP loss alone. Re-running with identical arguments on a finished folder returns it
    without training again. On the CPU,
    threads=None uses only the cores that are free now (see _free_cpu_threads)."""
    if max_steps is None and not minutes > 0:
        raise BadValueError(f"minutes must be positive (got {minutes}).", "Pass e.g. minutes=3 (CLI: --minutes 3).")
    if max_steps is not None and max_steps < 1:
        raise BadValueError(f"max_steps must be at least 1 (got {max_steps}).", "Pass a positive number or None.")
    if batch_size < 2:
        raise BadValueError(f"batch_size must be at least 2 (got {batch_size}).", "Contrastive training needs "
                          "several crops per step; use e.g. 64.")
    if not value_weight >= 0:
        raise BadValueError(f"value_weight must be 0 or more (got {value_weight}).", "Use e.g. 1.0, or 0 to turn it off.")
    dataset_dir = Path(dataset_dir)
    if not dataset_dir.is_dir():
        raise DatasetError(f"Dataset folder {dataset_dir} does not exist.",
                           "Make one with `finer-traits synth species OUT` and pass OUT.")
    part_names = {int(k): v for k, v in json.loads((dataset_dir / "parts.json").read_text()).items()} \
        if (dataset_dir / "parts.json").is_file() else {}
    traits = _read_csv(dataset_dir / "traits.csv")
    pairs = _read_csv(dataset_dir / "pairs.csv")
    dev = resolve_device(device)
    config = dict(dataset=str(dataset_dir.resolve()), minutes=float(minutes), seed=int(seed), max_steps=max_steps,
                  batch_size=int(batch_size), lr=float(lr), variants=int(variants), model_cfg=TINY_CLIP_CONFIG,
                  value_weight=float(value_weight), layout_pads=list(CROP_PADS))
    with atomic_dataset_dir(out_dir, config, overwrite, marker="training.json") as tmp:
        if tmp is None:
            return Path(out_dir)
        torch.manual_seed(seed)
        rng = np.random.default_rng(seed)
        captions = build_captions(traits, list(part_names.values()))
        train = extract_crops(dataset_dir, "train", part_names, variants, rng, layout=True)
        test = extract_crops(dataset_dir, "test", part_names, 1, np.random.default_rng(seed + 1), jitter=False)
        pos = _positive_matrix(train, captions)
        keep = pos.any(1)
        train = Crops(train.images[keep], [s for s, k in zip(train.species, keep, strict=True) if k],
                      [p for p, k in zip(train.parts, keep, strict=True) if k])
        pos = pos[keep]
        values = _value_target_matrix(train, captions)

        old_threads = torch.get_num_threads()
        n_threads = (threads or _free_cpu_threads()) if dev.type == "cpu" else old_threads
        torch.set_num_threads(n_threads)
        try:
            model, losses, step, seconds, metrics = _train(train=train, test=test, pos=pos, values=values,
                                                           captions=captions, pairs=pairs, dev=dev, budget=minutes * 60,
                                                           max_steps=max_steps, batch_size=batch_size, lr=lr,
                                                           value_weight=value_weight,
                                                           rng=rng, progress=progress)
        finally:
            torch.set_num_threads(old_threads)
        state = {k: v.contiguous() for k, v in model.state_dict().items()}
        # atomic_write gives the weights the same permissions as the folder's other files (safetensors makes 0600).
        atomic_write(tmp / "open_clip_model.safetensors", lambda p: save_file(state, str(p)))
        (tmp / "open_clip_config.json").write_text(json.dumps(
            {"model_cfg": TINY_CLIP_CONFIG, "preprocess_cfg": PREPROCESS_CFG}, indent=2) + "\n")
        write_trained_vocabulary(tmp, traits, dataset_dir)
        k = max(1, min(20, len(losses) // 10))
        (tmp / "training.json").write_text(json.dumps(dict(
            config=config, steps=step, seconds=round(seconds, 2), device=str(dev),
            cpu_threads=n_threads,
            loss_first=float(np.mean(losses[:k])) if losses else float("nan"),
            loss_last=float(np.mean(losses[-k:])) if losses else float("nan"),
            losses=[round(x, 4) for x in losses[:: max(1, len(losses) // 200)]],
            n_train_crops=len(train.species), n_captions=len(captions.captions), captions=captions.captions,
            eval=metrics), indent=2) + "\n")
    return Path(out_dir)


def _train(train: Crops, test: Crops, pos: torch.Tensor, values: torch.Tensor, captions: CaptionSet, pairs: list[dict],
           dev: torch.device, budget: float, max_steps: int | None, batch_size: int, lr: float,
           value_weight: float, rng: np.random.Generator, progress: bool) -> tuple:
    """The training loop (time budget in seconds or max_steps); returns (model on CPU, losses, steps, seconds,
    held-out metrics)."""
    import open_clip  # heavy: only when the tiny CLIP is trained

    model = open_clip.CLIP(**TINY_CLIP_CONFIG).to(dev)
    tokenizer = open_clip.get_tokenizer("ViT-B-16", context_length=TINY_CLIP_CONFIG["text_cfg"]["context_length"])
    tokens = tokenizer(captions.captions).to(dev)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.05)
    budget = max(budget, 0.0)
    warmup = max(1, min(30, max_steps // 5)) if max_steps else 30
    losses: list[float] = []
    start = time.perf_counter()
    bar = tqdm(total=max_steps or int(budget), desc="tiny CLIP", unit="step" if max_steps else "s",
               disable=not progress)
    step = 0
    while True:
        elapsed = time.perf_counter() - start
        frac = step / max_steps if max_steps else elapsed / max(budget, 1e-9)
        if frac >= 1.0:
            break
        for group in opt.param_groups:
            group["lr"] = lr * min(1.0, (step + 1) / warmup) * 0.5 * (1 + math.cos(math.pi * frac))
        idx = torch.from_numpy(rng.choice(len(train.species), size=min(batch_size, len(train.species)), replace=False))
        batch = train.images[idx]
        flip = torch.from_numpy(rng.random(len(idx)) < 0.5)
        batch = torch.where(flip.view(-1, 1, 1, 1), batch.flip(-1), batch)
        model.train()
        img = F.normalize(model.encode_image(_normalise(batch, dev)), dim=-1)
        txt = _encode_text(model, tokens)
        scale = model.logit_scale.exp().clamp(max=100)
        loss = multi_positive_clip_loss(img, txt, pos[idx].to(dev), scale)
        loss = loss + value_weight * value_loss(img, txt, values[idx].to(dev), captions.value_groups, scale)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
        step += 1
        if max_steps:
            bar.update(1)
        else:
            bar.n = min(int(time.perf_counter() - start), int(budget))
            bar.refresh()
        bar.set_postfix(loss=f"{losses[-1]:.3f}")
    bar.close()
    seconds = time.perf_counter() - start
    model.eval()
    metrics = caption_retrieval(model, tokenizer, test, captions, pairs, dev)
    return model.cpu(), losses, step, seconds, metrics
