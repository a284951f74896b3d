"""What every CLIP-style scorer shares: prompt-ensembled, cached text embeddings, batched image embeddings, cosine
scores, and the settings describe() reads to cut and compare crops (side crops at several framings, scores as
log-probabilities among the values of a part)."""

from __future__ import annotations

import hashlib
from abc import abstractmethod
from collections.abc import Sequence
from dataclasses import replace

import torch
import torch.nn.functional as F
from PIL import Image

from pipeline.scorers.base import CropPolicy, Scorer, flatten_rgba
from prompts.templates import trait_prompts

# describe() cuts one square crop per layout piece (left / right wing) at each of these paddings (share of the
# piece's box added around it) and averages the scores: one framing decides where in the crop a small structure
# (a hindwing's tail) falls, three framings average that out. Measured on the synthetic tail pair with the tiny
# CLIP: tail-vs-no-tail separation d' 2.5 -> 3.0 (seed 0) and 2.3 -> 3.2 (seed 1) over the single 0.5 framing.
CROP_PADS = (0.1, 0.3, 0.5)


class ClipScorer(Scorer):
    """Base of the embedding scorers: subclasses encode prompts and images; this class ensembles, caches, scores."""

    # Embedding models learned from plain photos: square side crops with context, batched, scored as each phrase's
    # log-softmax among its part's values; subclasses replace logit_scale with their model's own.
    crop_policy = CropPolicy(batch_crops=True, context_crops=False, side_crops=True, crop_pads=CROP_PADS,
                             value_scores="logprob", logit_scale=100.0)
    templates: list[str]
    batch_size = 32

    @abstractmethod
    def encode_prompts(self, prompts: list[str]) -> torch.Tensor:
        """Text features [n_prompts, D] (not yet normalised)."""

    @abstractmethod
    def encode_images(self, images: list[Image.Image]) -> torch.Tensor:
        """Image features [n_images, D] of RGB images (not yet normalised)."""

    @property
    def cache_id(self) -> str:
        templates = hashlib.sha1("|".join(self.templates).encode()).hexdigest()[:10]
        policy = self.crop_policy
        pads = ",".join(f"{p:g}" for p in policy.crop_pads)
        return (f"{self.spec}|context={policy.context_crops}|sides={policy.side_crops}|pads={pads}"
                f"|values={policy.value_scores}|templates={templates}")

    @property
    def value_scores(self) -> str | None:
        """The crop policy's value_scores ('logprob'): how describe() reads this scorer's scores."""
        return self.crop_policy.value_scores

    @property
    def crop_pads(self) -> tuple[float, ...]:
        """The crop policy's side-crop framings."""
        return self.crop_policy.crop_pads

    @property
    def logit_scale(self) -> float:
        """The crop policy's softmax temperature (the model's own where it has one)."""
        return self.crop_policy.logit_scale

    def _use_model_scale(self, scale: object) -> None:
        """Take the model's learned temperature (a log-scale tensor) into the crop policy when it has one."""
        if isinstance(scale, torch.Tensor):
            self.crop_policy = replace(self.crop_policy, logit_scale=float(scale.detach().exp()))

    @torch.no_grad()
    def text_embeddings(self, phrases: Sequence[str]) -> torch.Tensor:
        """L2-normalised mean embedding over the templates, [n_phrases, D]; computed once per phrase."""
        # Per instance, created on first use: subclasses load their models in their own __init__.
        cache: dict[str, torch.Tensor] = self.__dict__.setdefault("_text_cache", {})
        missing = [p for p in dict.fromkeys(phrases) if p not in cache]
        if missing:
            prompts = [t for p in missing for t in trait_prompts(p, self.templates)]
            emb = F.normalize(self.encode_prompts(prompts).float(), dim=-1)
            emb = F.normalize(emb.view(len(missing), len(self.templates), -1).mean(1), dim=-1).cpu()
            cache.update(zip(missing, emb, strict=True))
        return torch.stack([cache[p] for p in phrases])

    @torch.no_grad()
    def image_embeddings(self, crops: Sequence[Image.Image]) -> torch.Tensor:
        """L2-normalised image embeddings [n_crops, D], in batches of batch_size."""
        rows = [F.normalize(self.encode_images([flatten_rgba(c) for c in crops[i:i + self.batch_size]]).float(),
                            dim=-1).cpu() for i in range(0, len(crops), self.batch_size)]
        return torch.cat(rows) if rows else torch.zeros(0, 1)

    def score(self, crops: Sequence[Image.Image], phrases: Sequence[str]) -> torch.Tensor:
        """Cosine similarities [n_crops, n_phrases]."""
        if not crops or not phrases:
            return torch.zeros(len(crops), len(phrases))
        return self.image_embeddings(crops) @ self.text_embeddings(phrases).t()
