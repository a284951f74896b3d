"""TransformersClipScorer: CLIP / SigLIP models through transformers (AutoModel + AutoProcessor), offline only."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from PIL import Image

from pipeline.device import resolve_device
from pipeline.errors import ModelUnavailableError
from pipeline.scorers.base import Scorer, flatten_rgba


def _features(out: object) -> torch.Tensor:
    """get_*_features returns a tensor in most versions and an output object in some: take the embedding."""
    if isinstance(out, torch.Tensor):
        return out
    for name in ("image_embeds", "text_embeds", "pooler_output"):
        value = getattr(out, name, None)
        if isinstance(value, torch.Tensor):
            return value
    return out[0]  # type: ignore[index]


class TransformersClipScorer(Scorer):
    """Scores phrases with a transformers CLIP-family model from a local folder or a cached hub id."""

    name = "hf"
    batch_crops = True
    context_crops = False  # True: part boxes with context instead of alpha-masked cut-outs
    # describe() profiles: one square crop with context per layout piece (left / right wing), scores averaged
    side_crops = True

    def __init__(self, model: str, device: str | torch.device = "auto", templates: Sequence[str] | None = None,
                 batch_size: int = 32) -> None:
        from transformers import AutoModel, AutoProcessor

        from prompts.templates import TRAIT_TEMPLATES

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
        self._text_cache: dict[str, torch.Tensor] = {}

    @property
    def spec(self) -> str:
        return f"hf:{self.model_id}"

    @property
    def cache_id(self) -> str:
        import hashlib

        return f"{self.spec}|context={self.context_crops}|sides={self.side_crops}|templates={hashlib.sha1('|'.join(self.templates).encode()).hexdigest()[:10]}"

    @torch.no_grad()
    def text_embeddings(self, phrases: Sequence[str]) -> torch.Tensor:
        """L2-normalised template-averaged text embeddings [n_phrases, D], cached per phrase."""
        from prompts.templates import trait_prompts

        missing = [p for p in dict.fromkeys(phrases) if p not in self._text_cache]
        if missing:
            prompts = [t for p in missing for t in trait_prompts(p, self.templates)]
            # SigLIP was trained on max_length padding; CLIP on padding to the longest prompt.
            inputs = self.processor(text=prompts, return_tensors="pt", truncation=True,
                                    padding="max_length" if self._siglip else True)
            inputs = {k: v.to(self.device) for k, v in inputs.items()}
            emb = F.normalize(_features(self.model.get_text_features(**inputs)).float(), dim=-1)
            emb = F.normalize(emb.view(len(missing), len(self.templates), -1).mean(1), dim=-1).cpu()
            self._text_cache.update(zip(missing, emb, strict=False))
        return torch.stack([self._text_cache[p] for p in phrases])

    @torch.no_grad()
    def image_embeddings(self, crops: Sequence[Image.Image]) -> torch.Tensor:
        """L2-normalised image embeddings [n_crops, D], with the model's own processor."""
        rows = []
        for i in range(0, len(crops), self.batch_size):
            batch = [flatten_rgba(c) for c in crops[i:i + self.batch_size]]
            pixels = self.processor(images=batch, return_tensors="pt")["pixel_values"].to(self.device)
            rows.append(F.normalize(_features(self.model.get_image_features(pixel_values=pixels)).float(), dim=-1).cpu())
        return torch.cat(rows)

    def score(self, crops: Sequence[Image.Image], phrases: Sequence[str]) -> torch.Tensor:
        """Cosine similarities [n_crops, n_phrases]."""
        if not crops or not phrases:
            return torch.zeros(len(crops), len(phrases))
        return self.image_embeddings(crops) @ self.text_embeddings(phrases).t()
