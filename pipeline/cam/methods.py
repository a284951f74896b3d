"""Maps from activations A [N, K, h, w] and target gradients G [R, N, K, h, w] (one R per request).

Grad-CAM (Selvaraju et al. 2017), Grad-CAM++ (Chattopadhay et al. 2018, eq. 19 with the exponential score),
Layer-CAM (Jiang et al. 2021) and Score-CAM (Wang et al. 2020), written from the papers / METHODS.md.
All return the signed map before the ReLU at the feature grid."""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

GRADIENT_METHODS = ("gradcam", "gradcam++", "layercam")
# Relative size below which a map's positive part counts as numerical noise, not a highlight.
NOISE_RTOL = 1e-5


def gradcam(acts: torch.Tensor, grads: torch.Tensor) -> torch.Tensor:
    """sum_k mean_ij(G_k) A_k."""
    alpha = grads.mean(dim=(-2, -1))
    return torch.einsum("rnk,nkhw->rnhw", alpha, acts)


def gradcam_pp(acts: torch.Tensor, grads: torch.Tensor) -> torch.Tensor:
    """sum_k (sum_ij a_kij ReLU(G_kij)) A_k with a = G^2 / (2 G^2 + sum_ij(A_k) G^3)."""
    g2 = grads * grads
    denom = 2 * g2 + acts.sum(dim=(-2, -1), keepdim=True) * g2 * grads + 1e-6
    a = torch.where(grads != 0, g2 / denom, torch.zeros_like(g2))
    alpha = (a * grads.clamp_min(0)).sum(dim=(-2, -1))
    return torch.einsum("rnk,nkhw->rnhw", alpha, acts)


def layercam(acts: torch.Tensor, grads: torch.Tensor) -> torch.Tensor:
    """sum_k ReLU(G_k) * A_k, element-wise."""
    return (grads.clamp_min(0) * acts).sum(dim=2)


GRADIENT_FUNCS: dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = {
    "gradcam": gradcam, "gradcam++": gradcam_pp, "layercam": layercam}


def channel_masks(acts: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Score-CAM masks: each channel upsampled to the input (corner-aligned) and min-maxed to [0, 1]."""
    up = F.interpolate(acts, size=size, mode="bilinear", align_corners=True)
    lo = up.amin(dim=(-2, -1), keepdim=True)
    span = up.amax(dim=(-2, -1), keepdim=True) - lo
    return torch.where(span > 0, (up - lo) / span.clamp_min(1e-30), torch.zeros_like(up))


@torch.no_grad()
def masked_logits(model: Callable[[torch.Tensor], torch.Tensor], images: torch.Tensor, acts: torch.Tensor,
                  batch_size: int = 32) -> torch.Tensor:
    """Logits [N, K, C] of every image multiplied by every one of its K channel masks (Score-CAM's passes)."""
    n, k = acts.shape[:2]
    out = []
    # Masks are built chunk by chunk so memory stays at batch_size images, whatever K is.
    pairs = [(i, j) for i in range(n) for j in range(0, k, batch_size)]
    for i, j in tqdm(pairs, desc="Score-CAM", leave=False, disable=None if len(pairs) > 8 else True):
        masks = channel_masks(acts[i:i + 1, j:j + batch_size], images.shape[-2:])[0]
        out.append(model(images[i:i + 1] * masks[:, None]).float())
    return torch.cat(out).view(n, k, -1)


def scorecam(acts: torch.Tensor, target_scores: torch.Tensor) -> torch.Tensor:
    """sum_k softmax_k(score of the image masked by channel k) A_k; target_scores [N, K]."""
    return torch.einsum("nk,nkhw->nhw", torch.softmax(target_scores, dim=-1), acts)


def minmax_scale(m: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """Each map [..., H, W] scaled to [0, 1]; maps whose range is noise next to `scale` become all zeros."""
    lo = m.amin(dim=(-2, -1), keepdim=True)
    span = m.amax(dim=(-2, -1), keepdim=True) - lo
    ok = span > NOISE_RTOL * scale
    return torch.where(ok, (m - lo) / span.clamp_min(1e-30), torch.zeros_like(m))


def normalise(raw: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """ReLU, per-image min-max, bilinear upsampling to the input, min-max again -> [N, H, W] in [0, 1].

    A map with no positive part (or only float noise) stays all-zero instead of being stretched to [0, 1]."""
    raw = raw.float()
    scale = raw.abs().amax(dim=(-2, -1), keepdim=True).clamp_min(1e-30)
    m = minmax_scale(raw.clamp_min(0), scale)
    up = F.interpolate(m[:, None], size=tuple(size), mode="bilinear", align_corners=False)[:, 0]
    return minmax_scale(up, torch.ones_like(scale))


def random_maps(n: int, grid: tuple[int, int], seed: int | None, device: torch.device) -> torch.Tensor:
    """Uniform noise in [-1, 1] at the feature grid: the sanity baseline every real map must beat."""
    gen = torch.Generator(device="cpu")
    if seed is None:
        gen.seed()
    else:
        gen.manual_seed(seed)
    return (torch.rand(n, *grid, generator=gen) * 2 - 1).to(device)
