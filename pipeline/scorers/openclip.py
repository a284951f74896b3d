"""OpenClipScorer: cosine similarity of crops and prompt-ensembled trait phrases with any open_clip model."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import torch
from PIL import Image

from pipeline.device import resolve_device
from pipeline.models.openclip import BIOCLIP, load_open_clip
from pipeline.scorers.base import register_scorer
from pipeline.scorers.clip import ClipScorer
from prompts.templates import TRAIT_TEMPLATES
from traits.errors import PathError

# A model trained on a closed trait vocabulary (e.g. evaluation.synthetic.train_tiny_clip) lists in this file of
# its folder the parts its captions named, optionally which attributes of each ("traits": [[part, attribute], ...]),
# and the prompt templates it was trained with: {"parts": [...], "templates": ["{phrase}"]}; hub models such as
# BioCLIP have none.
TRAINED_VOCABULARY = "trained_vocabulary.json"


def trained_vocabulary(model_id: str) -> dict | None:
    """What a local open_clip folder declares in TRAINED_VOCABULARY ({"parts": [...], "traits": [[part, attribute],
    ...] or None, "templates": [...]}), or None when it declares nothing (hub models: every part and attribute, the
    default prompt templates)."""
    path = Path(model_id) / TRAINED_VOCABULARY
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
        parts = [str(p) for p in data["parts"]]
        traits = None if data.get("traits") is None else frozenset((str(p), str(a)) for p, a in data["traits"])
        templates = [str(t) for t in data.get("templates") or []]
        if any("{phrase}" not in t for t in templates):
            raise ValueError("every template must contain {phrase}")
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise PathError(f"{path} is not a readable trained-vocabulary file ({exc}).",
                        'It must be JSON like {"parts": ["forewing band", ...], "templates": ["{phrase}"]}; '
                        "fix or delete it.") from exc
    return {"parts": frozenset(parts), "traits": traits, "templates": templates}


@register_scorer("open_clip", "clip", "bioclip")
class OpenClipScorer(ClipScorer):
    """Scores phrases with an open_clip model (default BioCLIP); text embeddings are cached per phrase."""

    name = "openclip"

    def __init__(self, model: str = BIOCLIP, device: str | torch.device = "auto", templates: Sequence[str] | None = None,
                 batch_size: int = 32) -> None:
        self.model_id = str(model)
        self.device = resolve_device(device)
        self.bundle = load_open_clip(self.model_id, device=self.device)
        vocab = trained_vocabulary(self.model_id)
        # A model trained on bare captions is asked in its own words; templates passed here still win.
        self.templates = list(templates or (vocab and vocab["templates"]) or TRAIT_TEMPLATES)
        self.batch_size = batch_size
        self._use_model_scale(getattr(self.bundle.model, "logit_scale", None))
        self.trained_parts = None if vocab is None else vocab["parts"]
        self.trained_traits = None if vocab is None else vocab["traits"]

    @classmethod
    def from_spec(cls, arg: str, device: str | torch.device = "auto") -> OpenClipScorer:
        """'openclip:<hub id, folder, ARCH@CHECKPOINT or random:ARCH>'; a bare 'openclip' means BioCLIP."""
        return cls(arg or BIOCLIP, device=device)

    def supports_part(self, part: str) -> bool:
        """Every part, unless the model folder declares the parts it was trained on (TRAINED_VOCABULARY): a phrase
        about a part the model never saw ('hindwing band') would get a similarity that means nothing."""
        return self.trained_parts is None or part in self.trained_parts

    def supports_trait(self, part: str, attribute: str) -> bool:
        """supports_part, and when the folder lists the attributes it was trained on per part, only those: a
        model never asked whether a band is there scores 'forewing band' vs 'no forewing band' at random."""
        if not self.supports_part(part):
            return False
        return self.trained_traits is None or (part, attribute) in self.trained_traits

    @property
    def spec(self) -> str:
        return f"openclip:{self.model_id}"

    def encode_prompts(self, prompts: list[str]) -> torch.Tensor:
        """open_clip text features of the prompts."""
        return self.bundle.model.encode_text(self.bundle.tokenizer(prompts).to(self.device))

    def encode_images(self, images: list[Image.Image]) -> torch.Tensor:
        """open_clip image features, with the model's own preprocessing."""
        return self.bundle.model.encode_image(self.bundle.preprocess(images).to(self.device))
