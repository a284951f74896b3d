"""ColorScorer: named colours (CIELAB) and simple patterns (spots, bands) measured in a crop, with no model weights.

A phrase such as 'red forewing band' is parsed into colours ({red}) and a pattern (bands); the score is the share
of the crop's organism pixels that have that colour, or, with a pattern, that belong to small compact blobs
(spots) or elongated stripes (bands) of that colour. Scores are shares in [0, 1]; describe compares them between
a region and the whole organism and between species, never on their own.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from functools import lru_cache

import numpy as np
import torch
from PIL import Image
from scipy import ndimage
from skimage.color import deltaE_ciede2000, rgb2lab

from pipeline.scorers.base import CropPolicy, Scorer, crop_arrays, register_scorer
from traits.vocab import load_vocab

# The palette (base colours, their sRGB anchors and the colour words folded onto them) is the vocabulary's
# traits/vocab/colours.json, or a taxon group's palette laid over it (traits/vocab/groups/<group>.json): one
# palette for phrases, scores and expert lists. `group` None below is the shared palette.
BASE_COLOURS = load_vocab().base_colours
PATTERN_WORDS = {
    "spot": "spots", "spots": "spots", "spotted": "spots", "dot": "spots", "dots": "spots", "dotted": "spots",
    "eyespot": "spots", "eyespots": "spots", "speckled": "spots", "blotch": "spots", "blotches": "spots",
    "band": "bands", "bands": "bands", "banded": "bands", "bar": "bands", "bars": "bands", "stripe": "bands",
    "stripes": "bands", "striped": "bands", "line": "bands", "lines": "bands", "barred": "bands",
}


def base_colours(group: str | None = None) -> tuple[str, ...]:
    """The base colours pixels are sorted into: the shared palette, or a taxon group's."""
    return load_vocab().for_group(group).base_colours


@lru_cache(maxsize=8)
def colour_vocabulary(group: str | None = None) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """(base colour -> Lab anchors [k, 3], colour word -> base colour), from the traits/ colour vocabulary."""
    vocab = load_vocab().for_group(group)
    synonyms = {word: base for word, base in vocab.colour_words.items() if base in vocab.colour_anchors}
    lab = {name: rgb2lab(np.array([cols], dtype=np.float64) / 255.0)[0] for name, cols in vocab.colour_anchors.items()}
    return lab, synonyms


# Wing words that turn a following 'band' / 'spot' into a part name: 'orange forewing band' is the colour of the
# band part (a colour share on that part's crop), not a band-shaped blob that the part's crop may cut in two.
PART_HEADS = {"wing", "wings", "forewing", "forewings", "hindwing", "hindwings", "fw", "hw"}


def parse_phrase(phrase: str, group: str | None = None) -> tuple[set[str], str | None]:
    """(base colours named in the phrase, pattern 'spots'/'bands' or None).

    'white spots', 'banded hindwing' name patterns; in 'red forewing band' the band is the part whose colour is
    named; a bare 'hindwing eyespot' is looked for as spots."""
    _, synonyms = colour_vocabulary(group)
    palette = base_colours(group)
    colours: set[str] = set()
    pattern = part_pattern = None
    previous = ""
    for tok in re.split(r"[\s\-/,]+", phrase.lower()):
        tok = tok.strip(".;:()'\"")
        if tok in palette:
            colours.add(tok)
        elif tok.endswith("ish") and tok[:-3] in palette:
            colours.add(tok[:-3])
        elif tok in synonyms:
            colours.add(synonyms[tok])
        if tok in PATTERN_WORDS:
            if previous in PART_HEADS:
                part_pattern = PATTERN_WORDS[tok]
            else:
                pattern = PATTERN_WORDS[tok]
        previous = tok
    # A bare part ('hindwing eyespot') is still looked for as its pattern: spots that stand out from the wing.
    return colours, pattern or (None if colours else part_pattern)


LUT_BITS = 5  # 32 levels per channel: finer than any colour name needs


def classify_colours(rgb: np.ndarray, group: str | None = None) -> np.ndarray:
    """Base-colour index (into base_colours(group)) of each pixel of an [h, w, 3] float RGB array, by CIEDE2000.

    Pixels are looked up in a 32x32x32 table computed once, so a crop costs microseconds, not a distance per pixel.
    """
    q = np.clip((rgb * (2**LUT_BITS)).astype(np.int64), 0, 2**LUT_BITS - 1)
    return _colour_lut(group)[q[..., 0], q[..., 1], q[..., 2]]


@lru_cache(maxsize=8)
def _colour_lut(group: str | None = None) -> np.ndarray:
    """Nearest base colour (CIEDE2000 to the closest anchor) of each RGB bin centre."""
    n = 2**LUT_BITS
    centres = (np.arange(n) + 0.5) / n
    grid = np.stack(np.meshgrid(centres, centres, centres, indexing="ij"), axis=-1).reshape(-1, 1, 3)
    lab = rgb2lab(grid).reshape(-1, 1, 3)
    anchors, owners = _anchor_table(group)
    dist = deltaE_ciede2000(lab, anchors[None, :, :])
    return owners[dist.argmin(axis=1)].reshape(n, n, n)


@lru_cache(maxsize=8)
def _anchor_table(group: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """All Lab anchors stacked [k, 3] with the base-colour index owning each."""
    anchors, _ = colour_vocabulary(group)
    rows, owners = [], []
    for i, name in enumerate(base_colours(group)):
        rows.append(anchors[name])
        owners += [i] * len(anchors[name])
    return np.concatenate(rows), np.array(owners)


def _pattern_share(member: np.ndarray, fg: np.ndarray, pattern: str) -> float:
    """Share of the organism covered by spot-like (compact, small) or band-like (elongated) blobs of `member`."""
    n_fg = int(fg.sum())
    if n_fg == 0:
        return 0.0
    labels, n = ndimage.label(member & fg)
    if n == 0:
        return 0.0
    covered = 0
    for i, sl in enumerate(ndimage.find_objects(labels), start=1):
        comp = labels[sl] == i
        size = int(comp.sum())
        if size < max(3, 0.002 * n_fg):
            continue  # single noisy pixels are neither spots nor bands
        ys, xs = np.nonzero(comp)
        if size >= 5:
            cov = np.cov(np.stack([xs, ys]).astype(np.float64))
            ev = np.sort(np.linalg.eigvalsh(cov + 1e-6 * np.eye(2)))
            elong = float(np.sqrt(ev[1] / ev[0]))
        else:
            elong = 1.0
        if pattern == "spots" and size <= 0.12 * n_fg and elong < 2.5:
            covered += size
        elif pattern == "bands" and elong >= 2.5:
            covered += size
    return covered / n_fg


@register_scorer("colour")
class ColorScorer(Scorer):
    """Offline scorer for colour and pattern phrases: shares of named CIELAB colours and of spot/band blobs."""

    name = "color"
    # Pixel statistics: alpha-masked cut-outs scored one part at a time, raw colour shares (no softmax).
    # A colour on less than 5 % of a part is a few stray pixels (shadows, JPEG fringes), not a colour the part
    # shows: a difference needs the side that has more of it to show it on at least that share.
    crop_policy = CropPolicy(batch_crops=False, context_crops=False, side_crops=False, value_scores=None,
                             shown_at=0.05)

    # Bumped whenever the same phrase would get another score (2: a band or spot after a wing word is a part).
    version = 2

    def __init__(self, max_side: int = 96, group: str | None = None) -> None:
        self.max_side = max_side
        # The taxon group whose palette pixels are named in; None: the shared palette (groups without their own).
        self.group = group if group is not None and load_vocab().group(group).palette else None

    @property
    def cache_id(self) -> str:
        """spec, version, crop size (and a group's own palette): the key of cached reference scores."""
        palette = f"|palette={self.group}" if self.group else ""
        return f"{self.spec}|v={self.version}|max_side={self.max_side}{palette}"

    def for_group(self, group: str) -> ColorScorer:
        """A ColorScorer that names pixel colours in the group's palette (birds: CUB's rufous, buff, olive ...)."""
        return ColorScorer(self.max_side, group)

    def supports(self, phrase: str) -> bool:
        """Phrases that name a colour or a spot/band pattern."""
        colours, pattern = parse_phrase(phrase, self.group)
        return bool(colours) or pattern is not None

    def colour_shares(self, crop: Image.Image) -> dict[str, float]:
        """Share of the crop's organism pixels per base colour."""
        palette = base_colours(self.group)
        rgb, fg = crop_arrays(crop, self.max_side)
        if not fg.any():
            return {c: 0.0 for c in palette}
        cls = classify_colours(rgb, self.group)[fg]
        counts = np.bincount(cls, minlength=len(palette)) / cls.size
        return dict(zip(palette, counts.tolist(), strict=False))

    def score(self, crops: Sequence[Image.Image], phrases: Sequence[str]) -> torch.Tensor:
        """[n_crops, n_phrases] shares in [0, 1]; NaN for phrases with neither colour nor pattern."""
        parsed = [parse_phrase(p, self.group) for p in phrases]
        palette = base_colours(self.group)
        out = torch.full((len(crops), len(phrases)), float("nan"))
        for i, crop in enumerate(crops):
            rgb, fg = crop_arrays(crop, self.max_side)
            if not fg.any():
                out[i] = torch.where(torch.tensor([bool(c) or p is not None for c, p in parsed]), 0.0, float("nan"))
                continue
            cls = classify_colours(rgb, self.group)
            n_fg = fg.sum()
            dominant = np.bincount(cls[fg], minlength=len(palette)).argmax()
            for j, (colours, pattern) in enumerate(parsed):
                if not colours and pattern is None:
                    continue
                if colours:
                    member = np.isin(cls, [palette.index(c) for c in colours])
                else:
                    member = cls != dominant  # 'spotted wing': anything that stands out from the main colour
                if pattern is None:
                    out[i, j] = float((member & fg).sum() / n_fg)
                else:
                    out[i, j] = _pattern_share(member, fg, pattern)
        return out
