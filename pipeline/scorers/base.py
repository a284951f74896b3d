"""The Scorer interface: how strongly each crop shows each phrase, as one [n_crops, n_phrases] tensor."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image

from traits.errors import UnknownChoiceError

# Background for RGBA crops (alpha = organism mask) when a model needs plain RGB: mid grey is neutral for CLIP.
NEUTRAL_GREY = (124, 116, 104)
MIN_CROP_SIDE = 16
# Side crops grow a layout piece's box by this share on each side by default (pipeline.scoring.square_crop).
SIDE_CROP_PAD = 0.5


@dataclass(frozen=True)
class CropPolicy:
    """How describe() cuts a scorer's crops and reads its scores; each scorer declares one (see Scorer.crop_policy).

    batch_crops: score all part crops in one call (much cheaper than one by one for embedding models).
    context_crops: part boxes with surrounding context instead of alpha-masked cut-outs.
    side_crops: one square crop with context per layout piece (left band, right band), scores averaged.
    crop_pads: the framings (box growth shares) of each side crop; several average out where a part falls.
    value_scores: 'prob' / 'logprob': each phrase's (log-)softmax among the other values of its part and
        attribute; None: the scorer's raw scores (see pipeline.scoring.value_alternatives).
    logit_scale: the softmax temperature of value scores (CLIP: 100 after training).
    shown_at: for raw scores that are shares of the organism (pixel scorers), the share from which a value counts
        as shown on a side; None: no such floor (value-score scorers get theirs from their probabilities).
    """

    batch_crops: bool = False
    context_crops: bool = False
    side_crops: bool = False
    crop_pads: tuple[float, ...] = (SIDE_CROP_PAD,)
    value_scores: str | None = None
    logit_scale: float = 100.0
    shown_at: float | None = None


class Scorer(ABC):
    """Scores phrases on image crops. Crops are PIL images; RGBA crops mark the organism with their alpha channel.

    Scores are only comparable within one scorer and one phrase (describe always uses them relatively:
    a region against the whole organism, the target against the contrast species).
    """

    name = "base"
    # Masked cut-outs scored one part at a time, raw scores: what a pixel scorer needs. Scorers set their own.
    crop_policy: CropPolicy = CropPolicy()

    @property
    def spec(self) -> str:
        """The string that recreates this scorer with create_scorer (recorded in provenance and caches)."""
        return self.name

    @property
    def cache_id(self) -> str:
        """spec plus every setting that changes scores (e.g. prompt templates): the key of cached reference scores."""
        return self.spec

    def supports(self, phrase: str) -> bool:
        """True when this scorer can judge the phrase at all (ColorScorer only judges colours and patterns)."""
        return True

    def supports_part(self, part: str) -> bool:
        """True when this scorer can judge phrases about this part (a model trained on a closed trait vocabulary
        declares its parts; every other scorer judges every part)."""
        return True

    def supports_trait(self, part: str, attribute: str) -> bool:
        """True when this scorer can judge this attribute of this part (by default: whenever it judges the part)."""
        return self.supports_part(part)

    def for_group(self, group: str) -> Scorer:
        """This scorer as used for a taxon group. Scorers that name pixel colours read them in the group's palette
        (ColorScorer); the others take the group's words from the phrases, so by default it is the same scorer."""
        return self

    @classmethod
    def from_spec(cls, arg: str, device: str | torch.device = "auto") -> Scorer:
        """The scorer for the part of a spec after 'NAME:' (create_scorer calls this); by default it takes none."""
        if arg:
            raise UnknownChoiceError(f"The {cls.name!r} scorer takes no argument (got {cls.name}:{arg}).",
                                     f"Use --scorer {cls.name}.")
        return cls()

    @abstractmethod
    def score(self, crops: Sequence[Image.Image], phrases: Sequence[str]) -> torch.Tensor:
        """Float tensor [n_crops, n_phrases]; unsupported phrases score NaN."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.spec!r})"


def flatten_rgba(crop: Image.Image, background: tuple[int, int, int] = NEUTRAL_GREY) -> Image.Image:
    """An RGB version of a crop: RGBA crops are composited on a neutral background."""
    if crop.mode == "RGBA":
        out = Image.new("RGB", crop.size, background)
        out.paste(crop, mask=crop.getchannel("A"))
    else:
        out = crop.convert("RGB")
    if min(out.size) < MIN_CROP_SIDE:
        # Slivers of a part (a few pixels) are still valid evidence; models and image loaders need a real size.
        scale = MIN_CROP_SIDE / max(1, min(out.size))
        out = out.resize((max(MIN_CROP_SIDE, round(out.size[0] * scale)), max(MIN_CROP_SIDE, round(out.size[1] * scale))),
                         Image.NEAREST)
    return out


def crop_arrays(crop: Image.Image, max_side: int = 96) -> tuple[np.ndarray, np.ndarray]:
    """(rgb float [h, w, 3] in [0, 1], foreground bool [h, w]) at most max_side px: enough for colour statistics."""
    img = crop if crop.mode in ("RGB", "RGBA") else crop.convert("RGB")
    scale = max_side / max(img.size)
    if scale < 1:
        img = img.resize((max(1, round(img.size[0] * scale)), max(1, round(img.size[1] * scale))), Image.NEAREST)
    arr = np.asarray(img)
    rgb = arr[..., :3].astype(np.float32) / 255.0
    fg = arr[..., 3] > 127 if arr.shape[-1] == 4 else np.ones(arr.shape[:2], dtype=bool)
    return rgb, fg


# name (and alias) -> scorer class; filled by @register_scorer when the scorer modules are imported.
SCORERS: dict[str, type[Scorer]] = {}


def register_scorer(*aliases: str) -> Callable[[type[Scorer]], type[Scorer]]:
    """Class decorator: create_scorer('NAME[:ARG]') builds this scorer (NAME = its `name` or one of the aliases)."""

    def register(cls: type[Scorer]) -> type[Scorer]:
        for key in (cls.name, *aliases):
            key = key.lower()
            if key in SCORERS and SCORERS[key] is not cls:
                raise ValueError(f"scorer name {key!r} is taken by {SCORERS[key].__name__}")
            SCORERS[key] = cls
        return cls

    return register


def list_scorers() -> list[str]:
    """The registered scorer names (without aliases), sorted."""
    return sorted({cls.name for cls in SCORERS.values()})
