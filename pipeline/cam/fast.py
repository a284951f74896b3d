"""Fast path: when a layer reaches the logits only through global average pooling and one linear layer,
d z_c / d A_k[i,j] = W[c, k] / (h w) everywhere, so the gradients come from the head weights, no backward pass.
That holds for the final feature map of a pooled linear probe and for the deepest tap of a multi-layer probe;
a shallower tap also feeds the deeper ones, so its true gradient needs the backward pass."""

from __future__ import annotations

import torch
from torch import nn

from pipeline.models.classifier import LinearProbeClassifier

# (timm class name, layer relative to the backbone): the last feature map, followed in forward_head by
# average pooling, flatten, dropout and nothing else when the backbone was built with num_classes=0.
SAFE_LAYERS = {("EfficientNet", "bn2"), ("ResNet", "layer4")}


def head_weight(model: nn.Module, layer: str) -> torch.Tensor | None:
    """The head's weight [C, K] when this (classifier, layer) pair is a known GAP + linear combination."""
    if type(model) is not LinearProbeClassifier or not isinstance(model.head, nn.Linear):
        return None
    if model.taps:
        return model.tap_weights()[layer] if layer == model.default_cam_layer() else None
    bb = model.backbone
    if not layer.startswith("backbone.") or (type(bb).__name__, layer.removeprefix("backbone.")) not in SAFE_LAYERS:
        return None
    pool = getattr(bb, "global_pool", None)
    head = getattr(bb, "classifier", getattr(bb, "fc", None))
    if getattr(pool, "pool_type", None) != "avg" or not isinstance(head, nn.Identity):
        return None
    return model.head.weight


def check_layers(model: nn.Module, layer: str) -> list[str]:
    """The layers whose activations consistent() needs: every tap of a multi-layer probe, else the layer."""
    return list(model.tap_weights()) if getattr(model, "taps", None) else [layer]


def consistent(model: LinearProbeClassifier, grids: dict[str, torch.Tensor], layer: str,
               logits: torch.Tensor) -> bool:
    """Check on the actual numbers that logits == head(mean-pooled acts); guards the shortcut."""
    with torch.no_grad():
        pooled = torch.cat([grids[ly].float().mean(dim=(-2, -1)) for ly in check_layers(model, layer)], dim=1)
        again = model.head(pooled)
    tol = 1e-4 * (1.0 + logits.abs().amax())
    return bool((again - logits).abs().amax() <= tol)


def fast_grads(weight: torch.Tensor, vectors: torch.Tensor, acts: torch.Tensor) -> torch.Tensor:
    """Gradients [R, N, K, h, w] of the scores vectors [R, N, C] . logits, as a broadcast view (no copy)."""
    h, w = acts.shape[-2:]
    g = torch.einsum("rnc,ck->rnk", vectors.to(weight.dtype), weight) / (h * w)
    return g[..., None, None].expand(*g.shape, h, w)
