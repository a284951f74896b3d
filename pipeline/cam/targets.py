"""What a map explains: the target class, its references, and the Finer score y = z_c - gamma * mean_t z_{d_t}."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch

from traits.errors import BadValueError, ConflictingOptionsError, UnknownChoiceError

WEIGHTINGS = ("uniform", "softmax")


def _is_scalar(spec) -> bool:
    return spec is None or isinstance(spec, (int, str)) or (hasattr(spec, "__index__") and not isinstance(spec, bool)
                                                             and not isinstance(spec, torch.Tensor)) or (
        isinstance(spec, torch.Tensor) and spec.ndim == 0)


def per_image(spec, n: int, what: str, allow_shared_list: bool) -> list:
    """Expand a target/contrast spec to one entry per image.

    A list as long as the batch is per image; for contrasts any other list is one reference set shared by all."""
    if isinstance(spec, torch.Tensor) and spec.ndim > 0:
        spec = spec.tolist()
    if _is_scalar(spec):
        return [spec.item() if isinstance(spec, torch.Tensor) else spec] * n
    spec = list(spec)
    if len(spec) == n:
        return spec
    if allow_shared_list:
        return [spec] * n
    raise BadValueError(f"{what} lists {len(spec)} entries for {n} images.",
                      f"Pass one {what} for all images or exactly one per image.")


def resolve(logits: torch.Tensor, index: Callable[[int | str], int], target, contrast, references: int,
            finer: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """(target_idx [N], reference_idx [N, T] padded with -1) from user specs and the logits."""
    n, c = logits.shape
    if isinstance(references, bool) or not isinstance(references, int) or references < 0:
        raise BadValueError(f"references must be a whole number >= 0, got {references!r}.", "Pass e.g. references=3.")
    targets = per_image(target, n, "target", allow_shared_list=False)
    pred = logits.argmax(-1).tolist()
    tgt = [pred[i] if t is None else index(t) for i, t in enumerate(targets)]
    target_idx = torch.tensor(tgt, dtype=torch.long)
    if not finer:
        return target_idx, torch.empty(n, 0, dtype=torch.long)
    contrasts = per_image(contrast, n, "contrast", allow_shared_list=True)
    k = min(references, c - 1)
    auto = None
    if any(s is None for s in contrasts) and k > 0:
        masked = logits.detach().float().cpu().scatter(1, target_idx[:, None], -math.inf)
        auto = masked.topk(k, dim=1).indices.tolist()
    refs: list[list[int]] = []
    for i, spec in enumerate(contrasts):
        if spec is None:
            row = auto[i] if auto is not None else []
        else:
            row = [index(s) for s in (spec if isinstance(spec, (list, tuple)) else [spec])]
            if tgt[i] in row:
                raise ConflictingOptionsError(f"The contrast species equals the target ({tgt[i]}) for image {i}.",
                                  "Name a different, similar species as the contrast.")
        refs.append(list(dict.fromkeys(row)))
    width = max((len(r) for r in refs), default=0)
    reference_idx = torch.full((n, width), -1, dtype=torch.long)
    for i, row in enumerate(refs):
        reference_idx[i, :len(row)] = torch.tensor(row, dtype=torch.long)
    return target_idx, reference_idx


def scores(logits: torch.Tensor, target_idx: torch.Tensor, reference_idx: torch.Tensor, gamma: float,
           weighting: str) -> torch.Tensor:
    """Finer score per image on raw logits [N, ..., C] -> [N, ...]; no references (or gamma 0) gives z_c.

    'uniform': mean over references (the paper). 'softmax': references weighted by their softmax probability,
    sum_i p_i (z_c - gamma z_i) / sum_i p_i (the authors' repository); p_i / sum p_j is a softmax over the
    reference logits, which stays finite when the probabilities underflow."""
    n, t = reference_idx.shape
    lead = logits.shape[:-1]
    extra = (1,) * (logits.ndim - 2)
    tgt = target_idx.to(logits.device).view(n, *extra, 1).expand(*lead, 1)
    zc = logits.gather(-1, tgt).squeeze(-1)
    if t == 0 or gamma == 0:
        return zc
    ref = reference_idx.to(logits.device)
    mask = (ref >= 0).view(n, *extra, t).expand(*lead, t)
    zr = logits.gather(-1, ref.clamp_min(0).view(n, *extra, t).expand(*lead, t))
    if weighting == "softmax":
        w = torch.softmax(zr.masked_fill(~mask, -math.inf), dim=-1).nan_to_num(0.0)
    else:
        w = mask.to(logits.dtype) / mask.sum(-1, keepdim=True).clamp_min(1)
    return zc - gamma * (w * zr).sum(-1)


def coefficients(logits: torch.Tensor, target_idx: torch.Tensor, reference_idx: torch.Tensor, gamma: float,
                 weighting: str) -> torch.Tensor:
    """d y / d logits [N, C]: the score's gradient is this combination of per-class gradients."""
    with torch.enable_grad():
        z = logits.detach().float().requires_grad_(True)
        (v,) = torch.autograd.grad(scores(z, target_idx, reference_idx, gamma, weighting).sum(), z)
    return v


def check_gamma(gamma: float, weighting: str) -> float:
    """Validate gamma and weighting; returns gamma as float."""
    if weighting not in WEIGHTINGS:
        raise UnknownChoiceError(f"Unknown weighting {weighting!r}.", f"Use one of: {', '.join(WEIGHTINGS)}.")
    try:
        g = float(gamma)
    except (TypeError, ValueError):
        g = math.nan
    if not math.isfinite(g) or g < 0:
        raise BadValueError(f"gamma must be a finite number >= 0, got {gamma!r}.",
                          "Use 0.6 (paper default), 0 for plain Grad-CAM, or 1.0 for the authors' demo setting.")
    return g


__all__: Sequence[str] = ["WEIGHTINGS", "coefficients", "check_gamma", "per_image", "resolve", "scores"]
