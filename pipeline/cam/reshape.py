"""Turning a layer's output into a channel-first feature grid [N, K, h, w] (ViT tokens included)."""

from __future__ import annotations

import math

import torch
from torch import nn

from traits.errors import LayerError


def token_layout(model: nn.Module, layer_name: str) -> tuple[int | None, tuple[int, int] | None]:
    """(num_prefix_tokens, patch size) of the transformer that holds layer_name, when it declares them."""
    modules = dict(model.named_modules())
    parts = layer_name.split(".")
    for cut in range(len(parts) - 1, -1, -1):
        owner = modules.get(".".join(parts[:cut]))
        if owner is None:
            continue
        prefix = getattr(owner, "num_prefix_tokens", None)
        patch = getattr(getattr(owner, "patch_embed", None), "patch_size", None) or getattr(owner, "patch_size", None)
        if prefix is not None or patch is not None:
            if isinstance(patch, int):
                patch = (patch, patch)
            return (int(prefix) if prefix is not None else None), (tuple(int(p) for p in patch) if patch else None)
    return None, None


def _grid_for(n_tokens: int, image_hw: tuple[int, int], num_prefix: int | None,
              patch: tuple[int, int] | None) -> tuple[int, int, int]:
    """(prefix, gh, gw) such that prefix + gh * gw == n_tokens, preferring the input's aspect ratio."""
    H, W = image_hw
    if patch is not None:
        gh, gw = H // patch[0], W // patch[1]
        prefix = n_tokens - gh * gw
        if prefix >= 0 and (num_prefix is None or prefix == num_prefix):
            return prefix, gh, gw
    prefixes = [num_prefix] if num_prefix is not None else range(0, min(n_tokens, 9))
    for prefix in prefixes:
        n = n_tokens - prefix
        best = None
        for gh in range(1, math.isqrt(n) + 1):
            if n % gh:
                continue
            for a, b in ((gh, n // gh), (n // gh, gh)):
                err = abs(math.log(a / b) - math.log(H / W))
                if best is None or err < best[0]:
                    best = (err, a, b)
        # A declared prefix allows patch-size rounding (aspect within 1.5x); a guessed one must fit exactly.
        if best is not None and best[0] < (0.41 if num_prefix is not None else 1e-6):
            return prefix, best[1], best[2]
    raise LayerError(f"Cannot lay {n_tokens} tokens out on a patch grid for a {H}x{W} input.",
                      "Pick a CAM layer that outputs a feature map [N, C, h, w] or patch tokens [N, L, D].")


def to_grid(t: torch.Tensor, batch: int, image_hw: tuple[int, int], num_prefix: int | None = None,
            patch: tuple[int, int] | None = None) -> torch.Tensor:
    """Layer output -> [N, K, h, w]: feature maps pass through; tokens [N, L, D] (or [L, N, D]) drop
    their prefix (class / register) tokens and fold onto the patch grid, square or not."""
    if t.ndim == 4:
        return t
    if t.ndim != 3:
        raise LayerError(f"The CAM layer outputs a {t.ndim}-D tensor {tuple(t.shape)}.",
                          "Pick a layer whose output is a feature map [N, C, h, w] or tokens [N, L, D].")
    if t.shape[0] != batch and t.shape[1] == batch:
        t = t.transpose(0, 1)  # sequence-first transformers
    prefix, gh, gw = _grid_for(t.shape[1], image_hw, num_prefix, patch)
    return t[:, prefix:].reshape(t.shape[0], gh, gw, t.shape[2]).permute(0, 3, 1, 2)


class GridReshape:
    """Callable reshape transform for one layer (also usable as pytorch-grad-cam's reshape_transform)."""

    def __init__(self, image_hw: tuple[int, int], num_prefix: int | None = None,
                 patch: tuple[int, int] | None = None) -> None:
        self.image_hw, self.num_prefix, self.patch = tuple(image_hw), num_prefix, patch

    def __call__(self, t: torch.Tensor) -> torch.Tensor:
        return to_grid(t, t.shape[0], self.image_hw, self.num_prefix, self.patch)
