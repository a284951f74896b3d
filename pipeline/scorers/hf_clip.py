"""TransformersClipScorer: CLIP / SigLIP models through transformers (AutoModel + AutoProcessor), offline only."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
from PIL import Image

from pipeline.device import resolve_device
from pipeline.scorers.base import register_scorer
from pipeline.scorers.clip import ClipScorer
from prompts.templates import TRAIT_TEMPLATES
from traits.errors import MissingValueError, ModelUnavailableError


def _features(out: object) -> torch.Tensor:
    """get_*_features returns a tensor in most versions and an output object in some: take the embedding."""
    if isinstance(out, torch.Tensor):
        return out
    for name in ("image_embeds", "text_embeds", "pooler_output"):
        value = getattr(out, name, None)
        if isinstance(value, torch.Tensor):
            return value
    return out[0]  # type: ignore[index]


@register_scorer("transformers")
class TransformersClipScorer(ClipScorer):
    """Scores phrases with a transformers CLIP-family model from a local folder or a cached hub id."""

    name = "hf"

    def __init__(self, model: str, device: str | torch.device = "auto", templates: Sequence[str] | None = None,
                 batch_size: int = 32) -> None:
        from transformers import AutoModel, AutoProcessor  # heavy (seconds): only for the 'hf' scorer

        self.model_id = str(model)
        self.device = resolve_device(device)
        local = Path(self.model_id).is_dir()
        try:
            # local_files_only: a scorer never downloads; hub ids work only from a warm cache.
            self.processor = AutoProcessor.from_pretrained(self.model_id, local_files_only=True)
            self.model = AutoModel.from_pretrained(self.model_id, local_files_only=True).to(self.device).eval()
        except Exception as exc:  # missing files, unknown architectures and cache misses come in many types
            where = f"folder {self.model_id}" if local else f"hub id {self.model_id!r} (not in the local cache)"
            raise ModelUnavailableError(
                f"Could not load a transformers CLIP/SigLIP model from {where} ({type(exc).__name__}: {str(exc)[:200]}).",
                "Pass a folder written by model.save_pretrained() and processor.save_pretrained(), e.g. "
                "--scorer hf:/path/to/clip; offline, --scorer color needs no weights.") from exc
        if not hasattr(self.model, "get_image_features") or not hasattr(self.model, "get_text_features"):
            raise ModelUnavailableError(f"{self.model_id} is a {type(self.model).__name__}, not a CLIP-style model.",
                                        "Use a CLIP or SigLIP checkpoint (it needs image and text towers).")
        self.templates = list(templates or TRAIT_TEMPLATES)
        self.batch_size = batch_size
        self._siglip = "siglip" in type(self.model).__name__.lower()
        self._use_model_scale(getattr(self.model, "logit_scale", None))

    @classmethod
    def from_spec(cls, arg: str, device: str | torch.device = "auto") -> TransformersClipScorer:
        """'hf:<folder or cached hub id>': the model is required."""
        if not arg:
            raise MissingValueError("The 'hf' scorer needs a model: 'hf:<folder or hub id>'.",
                                    "Pass e.g. --scorer hf:/path/to/clip-folder.")
        return cls(arg, device=device)

    @property
    def spec(self) -> str:
        return f"hf:{self.model_id}"

    def encode_prompts(self, prompts: list[str]) -> torch.Tensor:
        """Text features; SigLIP was trained on max_length padding, CLIP on padding to the longest prompt."""
        inputs = self.processor(text=prompts, return_tensors="pt", truncation=True,
                                padding="max_length" if self._siglip else True)
        return _features(self.model.get_text_features(**{k: v.to(self.device) for k, v in inputs.items()}))

    def encode_images(self, images: list[Image.Image]) -> torch.Tensor:
        """Image features, with the model's own processor."""
        pixels = self.processor(images=images, return_tensors="pt")["pixel_values"].to(self.device)
        return _features(self.model.get_image_features(pixel_values=pixels))
