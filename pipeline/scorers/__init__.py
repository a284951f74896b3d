"""Scorers: how strongly image crops show trait phrases, behind one interface and one factory.

A new scorer is one class and one decorator: subclass Scorer, give it a `name`, decorate it with
`@register_scorer()` (extra arguments are aliases) and, when its spec takes an argument ('NAME:ARG'), override
`from_spec`. Importing its module registers it; `create_scorer('NAME:ARG')` then builds it. How describe() cuts
its crops and reads its scores is the class's `crop_policy` (a CropPolicy: side crops, framings, value softmax).
"""

from __future__ import annotations

import torch

# Importing the scorer modules registers their classes (@register_scorer).
from pipeline.scorers.base import SCORERS, CropPolicy, Scorer, list_scorers, register_scorer
from pipeline.scorers.color import ColorScorer
from pipeline.scorers.hf_clip import TransformersClipScorer
from pipeline.scorers.openclip import OpenClipScorer
from traits.errors import UnknownChoiceError

SCORER_SPECS = "'color', 'openclip:<hub id, folder, ARCH@CHECKPOINT or random:ARCH>' or 'hf:<folder or cached hub id>'"


def create_scorer(spec: str | Scorer = "color", device: str | torch.device = "auto") -> Scorer:
    """A scorer from a spec string 'NAME[:ARG]': 'color', 'openclip:<id or path>' ('openclip' alone: BioCLIP),
    'hf:<id or path>', or any other registered name (list_scorers())."""
    if isinstance(spec, Scorer):
        return spec
    text = str(spec or "").strip()
    kind, _, arg = text.partition(":")
    cls = SCORERS.get(kind.lower())
    if cls is None:
        raise UnknownChoiceError(f"Unknown scorer {text!r}.", f"Use {SCORER_SPECS}.")
    return cls.from_spec(arg, device=device)


__all__ = ["ColorScorer", "CropPolicy", "OpenClipScorer", "SCORERS", "SCORER_SPECS", "Scorer", "TransformersClipScorer",
           "create_scorer", "list_scorers", "register_scorer"]
