"""Scorers: how strongly image crops show trait phrases, behind one interface and one factory."""

from __future__ import annotations

import torch

from pipeline.models.openclip import BIOCLIP
from pipeline.scorers.base import Scorer
from pipeline.scorers.color import ColorScorer
from pipeline.scorers.hf_clip import TransformersClipScorer
from pipeline.scorers.openclip import OpenClipScorer
from traits.errors import ConfigError

SCORER_SPECS = "'color', 'openclip:<hub id, folder, ARCH@CHECKPOINT or random:ARCH>' or 'hf:<folder or cached hub id>'"


def create_scorer(spec: str | Scorer = "color", device: str | torch.device = "auto") -> Scorer:
    """A scorer from a spec string: 'color', 'openclip:<id or path>' ('openclip' alone: BioCLIP), 'hf:<id or path>'."""
    if isinstance(spec, Scorer):
        return spec
    text = str(spec or "").strip()
    kind, _, arg = text.partition(":")
    kind = kind.lower()
    if kind in ("color", "colour") and not arg:
        return ColorScorer()
    if kind in ("openclip", "open_clip", "clip", "bioclip"):
        return OpenClipScorer(arg or BIOCLIP, device=device)
    if kind in ("hf", "transformers"):
        if not arg:
            raise ConfigError("The 'hf' scorer needs a model: 'hf:<folder or hub id>'.",
                              "Pass e.g. --scorer hf:/path/to/clip-folder.")
        return TransformersClipScorer(arg, device=device)
    raise ConfigError(f"Unknown scorer {text!r}.", f"Use {SCORER_SPECS}.")


__all__ = ["ColorScorer", "SCORER_SPECS", "Scorer", "create_scorer"]
