"""OpenClipScorer: cosine similarity of crops and prompt-ensembled trait phrases with any open_clip model."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from PIL import Image

from pipeline.device import resolve_device
from pipeline.models.openclip import BIOCLIP, load_open_clip
from pipeline.scorers.base import Scorer, flatten_rgba

# A model trained on a closed trait vocabulary (e.g. evaluation.synthetic.train_tiny_clip) lists in this file of
# its folder the parts its captions named and the prompt templates it was trained with:
# {"parts": [...], "templates": ["{phrase}"]}; hub models such as BioCLIP have none.
TRAINED_VOCABULARY = "trained_vocabulary.json"


def trained_vocabulary(model_id: str) -> dict | None:
    """What a local open_clip folder declares in TRAINED_VOCABULARY ({"parts": [...], "templates": [...]}), or
    None when it declares nothing (hub models: every part, the default prompt templates)."""
    import json
    from pathlib import Path

    path = Path(model_id) / TRAINED_VOCABULARY
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
        parts = [str(p) for p in data["parts"]]
        templates = [str(t) for t in data.get("templates") or []]
        if any("{phrase}" not in t for t in templates):
            raise ValueError("every template must contain {phrase}")
    except (OSError, ValueError, KeyError, TypeError) as exc:
        from pipeline.errors import ConfigError

        raise ConfigError(f"{path} is not a readable trained-vocabulary file ({exc}).",
                          'It must be JSON like {"parts": ["forewing band", ...], "templates": ["{phrase}"]}; '
                          "fix or delete it.") from exc
    return {"parts": frozenset(parts), "templates": templates}


class OpenClipScorer(Scorer):
    """Scores phrases with an open_clip model (default BioCLIP); text embeddings are cached per phrase."""

    name = "openclip"
    batch_crops = True
    context_crops = False  # True: part boxes with context instead of alpha-masked cut-outs
    # describe() profiles: one square crop with context per layout piece (left / right wing), scores averaged
    side_crops = True
    # describe() profiles: each phrase's (log-)softmax among the other values of its part and attribute
    # ('prob' / 'logprob'), None: raw cosine similarities (see pipeline.scoring.value_alternatives).
    value_scores: str | None = "logprob"

    def __init__(self, model: str = BIOCLIP, device: str | torch.device = "auto", templates: Sequence[str] | None = None,
                 batch_size: int = 32) -> None:
        from prompts.templates import TRAIT_TEMPLATES

        self.model_id = str(model)
        self.device = resolve_device(device)
        self.bundle = load_open_clip(self.model_id, device=self.device)
        vocab = trained_vocabulary(self.model_id)
        # A model trained on bare captions is asked in its own words; templates passed here still win.
        self.templates = list(templates or (vocab and vocab["templates"]) or TRAIT_TEMPLATES)
        self.batch_size = batch_size
        self._text_cache: dict[str, torch.Tensor] = {}
        scale = getattr(self.bundle.model, "logit_scale", None)
        # The model's own softmax temperature (CLIP: 100 after training); what value alternatives compete with.
        self.logit_scale = float(scale.detach().exp()) if isinstance(scale, torch.Tensor) else 100.0
        self.trained_parts = None if vocab is None else vocab["parts"]

    def supports_part(self, part: str) -> bool:
        """Every part, unless the model folder declares the parts it was trained on (TRAINED_VOCABULARY): a phrase
        about a part the model never saw ('hindwing band') would get a similarity that means nothing."""
        return self.trained_parts is None or part in self.trained_parts

    @property
    def spec(self) -> str:
        return f"openclip:{self.model_id}"

    @property
    def cache_id(self) -> str:
        import hashlib

        return f"{self.spec}|context={self.context_crops}|sides={self.side_crops}|values={self.value_scores}|templates={hashlib.sha1('|'.join(self.templates).encode()).hexdigest()[:10]}"

    @torch.no_grad()
    def text_embeddings(self, phrases: Sequence[str]) -> torch.Tensor:
        """L2-normalised mean embedding over the templates, [n_phrases, D]; computed once per phrase."""
        from prompts.templates import trait_prompts

        missing = [p for p in dict.fromkeys(phrases) if p not in self._text_cache]
        if missing:
            prompts = [t for p in missing for t in trait_prompts(p, self.templates)]
            tokens = self.bundle.tokenizer(prompts).to(self.device)
            emb = F.normalize(self.bundle.model.encode_text(tokens).float(), dim=-1)
            emb = emb.view(len(missing), len(self.templates), -1).mean(1)
            for p, e in zip(missing, F.normalize(emb, dim=-1).cpu(), strict=False):
                self._text_cache[p] = e
        return torch.stack([self._text_cache[p] for p in phrases])

    @torch.no_grad()
    def image_embeddings(self, crops: Sequence[Image.Image]) -> torch.Tensor:
        """L2-normalised image embeddings [n_crops, D], with the model's own preprocessing."""
        rows = []
        for i in range(0, len(crops), self.batch_size):
            batch = self.bundle.preprocess([flatten_rgba(c) for c in crops[i:i + self.batch_size]]).to(self.device)
            rows.append(F.normalize(self.bundle.model.encode_image(batch).float(), dim=-1).cpu())
        return torch.cat(rows) if rows else torch.zeros(0, 1)

    def score(self, crops: Sequence[Image.Image], phrases: Sequence[str]) -> torch.Tensor:
        """Cosine similarities [n_crops, n_phrases]."""
        if not crops or not phrases:
            return torch.zeros(len(crops), len(phrases))
        return self.image_embeddings(crops) @ self.text_embeddings(phrases).t()
