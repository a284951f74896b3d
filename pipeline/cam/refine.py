"""RefineCAM (Domeniconi et al. 2026): a soft AND of base maps from several layers, deep to shallow."""

from __future__ import annotations

import torch
from torch import nn

from pipeline.cam.methods import minmax_scale


def default_layers(model: nn.Module, deepest: str) -> list[str]:
    """The CAM layer plus up to three shallower stage outputs at halving strides (timm feature_info);
    for transformers, whose blocks share one resolution, norms at 3/4, 1/2 and 1/4 of the depth.
    A multi-layer probe names its own: the layers its head reads, whose maps are its decision."""
    if getattr(model, "taps", None) and model.cam_layers()[0] == deepest:
        return model.cam_layers()
    owner_name = deepest.split(".")[0] if "." in deepest else ""
    owner = dict(model.named_modules()).get(owner_name) if owner_name else model
    info = getattr(owner, "feature_info", None)
    layers = [deepest]
    if isinstance(info, list) and info and all(isinstance(f, dict) for f in info):
        by_stride: dict[int, str] = {}
        for f in info:
            by_stride[int(f["reduction"])] = f["module"]
        strides = sorted(by_stride, reverse=True)
        if len(strides) > 1:
            layers += [f"{owner_name}.{by_stride[s]}" for s in strides[1:4]]
            return layers
    parts = deepest.split(".")
    # '<...>.blocks.<i>.norm1' or '<...>.resblocks.<i>.ln_1': same sub-layer in earlier blocks.
    for pos in range(len(parts) - 1, 0, -1):
        if parts[pos].isdigit():
            depth = int(parts[pos]) + 1
            for frac in (0.75, 0.5, 0.25):
                i = max(0, round(depth * frac) - 1)
                name = ".".join(parts[:pos] + [str(i)] + parts[pos + 1:])
                if name not in layers:
                    layers.append(name)
            break
    return layers


def combine(maps: list[torch.Tensor]) -> torch.Tensor:
    """Element-wise product of per-layer maps already in [0, 1] at the input size, then min-max."""
    prod = maps[0]
    for m in maps[1:]:
        prod = prod * m
    return minmax_scale(prod, torch.ones_like(prod[:, :1, :1]))
