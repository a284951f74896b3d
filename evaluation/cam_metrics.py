"""Faithfulness and localisation metrics for class activation maps, batched in torch.

Conventions (METHODS.md sections 1 and 2, "Our choice"):
- images are *normalised* batches [N, 3, H, W]; maps are [N, H, W] in [0, 1] (resized to the image if needed);
- a removed ("masked") pixel is set to 0 in normalised space, i.e. to the normalisation mean, except in ROAD,
  which imputes removed pixels from their neighbours;
- model outputs are softmax probabilities (never logits) everywhere, so every score is on a [0, 1]-based scale;
- pixels are ranked by the map with ties broken by one seeded random permutation, so a constant map removes
  pixels in random order instead of row by row from the top of the image;
- every metric returns one value per image (a float tensor [N]); averaging is the caller's choice.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from scipy import sparse
from scipy.sparse.linalg import spsolve
from scipy.stats import rankdata

from traits.errors import BadValueError

Indices = int | Sequence[int] | torch.Tensor | np.ndarray
ROAD_PERCENTAGES = (20, 40, 60, 80)
# ROAD's noisy linear imputation weights (Rong et al. 2022): direct neighbours 1/6, diagonal ones 1/12.
_NEIGHBOURS = ((-1, 0, 1 / 6), (1, 0, 1 / 6), (0, -1, 1 / 6), (0, 1, 1 / 6),
               (-1, -1, 1 / 12), (-1, 1, 1 / 12), (1, -1, 1 / 12), (1, 1, 1 / 12))


# ----------------------------------------------------------------------------------------------------------
# Shared helpers
# ----------------------------------------------------------------------------------------------------------

def as_indices(idx: Indices | None, n: int, name: str = "target") -> torch.Tensor | None:
    """Class indices as a long tensor [N] (or [N, T] for several references); an int is broadcast to N."""
    if idx is None:
        return None
    t = torch.as_tensor(np.asarray(idx) if not isinstance(idx, torch.Tensor) else idx).long().cpu()
    if t.ndim == 0:
        t = t.expand(n)
    if t.shape[0] != n or t.ndim > 2:
        raise BadValueError(f"{name} has shape {tuple(t.shape)} for {n} images.",
                          f"Pass one {name} index per image (or a single int for all).")
    return t


def check_maps(images: torch.Tensor, maps: torch.Tensor) -> torch.Tensor:
    """Maps as float [N, H, W] on the images' device and at the images' size (bilinear resize if needed)."""
    if images.ndim != 4:
        raise BadValueError(f"images have shape {tuple(images.shape)}; expected [N, 3, H, W].",
                          "Pass a normalised batch (Classifier.prepare gives one).")
    maps = maps.detach().float().to(images.device)
    if maps.ndim == 4 and maps.shape[1] == 1:
        maps = maps[:, 0]
    if maps.ndim != 3 or maps.shape[0] != images.shape[0]:
        raise BadValueError(f"maps have shape {tuple(maps.shape)} for images {tuple(images.shape)}.",
                          "Pass one [H, W] map per image.")
    if maps.shape[-2:] != images.shape[-2:]:
        maps = F.interpolate(maps[:, None], size=images.shape[-2:], mode="bilinear", align_corners=False)[:, 0]
    return maps


@torch.no_grad()
def probabilities(classifier: Callable, images: torch.Tensor, batch_size: int = 32) -> torch.Tensor:
    """Softmax probabilities [N, C] of a classifier (anything with `.logits(x)`, or a plain callable)."""
    fn = getattr(classifier, "logits", classifier)
    out = [fn(images[i:i + batch_size]).float().softmax(-1).cpu() for i in range(0, len(images), batch_size)]
    return torch.cat(out) if out else torch.empty(0)


def _pick(probs: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """p[n, idx[n]], or the mean over the T references when idx is [N, T]."""
    if idx.ndim == 1:
        return probs.gather(1, idx[:, None])[:, 0]
    return probs.gather(1, idx).mean(1)


def default_references(probs: torch.Tensor, target: torch.Tensor, count: int = 3) -> torch.Tensor:
    """The `count` most probable classes other than the target, per image: [N, T]."""
    masked = probs.clone()
    masked.scatter_(1, target[:, None], -1.0)
    return masked.topk(min(count, probs.shape[1] - 1), dim=1).indices


def pixel_ranks(maps: torch.Tensor, seed: int = 0) -> torch.Tensor:
    """Rank of each pixel by map value, 0 = most relevant: long [N, H, W]; ties broken by a seeded permutation."""
    n, h, w = maps.shape
    flat = maps.reshape(n, -1)
    g = torch.Generator().manual_seed(seed)
    perm = torch.randperm(h * w, generator=g).to(maps.device)
    order = perm[flat[:, perm].argsort(dim=1, descending=True, stable=True)]
    ranks = torch.empty_like(order)
    ranks.scatter_(1, order, torch.arange(h * w, device=maps.device).expand(n, -1).contiguous())
    return ranks.view(n, h, w)


def removal_mask(ranks: torch.Tensor, fraction: float, most_relevant: bool = True) -> torch.Tensor:
    """Boolean [N, H, W]: the top (or bottom) `fraction` of pixels by rank; round(fraction * H * W) pixels."""
    hw = ranks.shape[-1] * ranks.shape[-2]
    k = int(round(float(fraction) * hw))
    return ranks < k if most_relevant else ranks >= hw - k


def apply_removal(images: torch.Tensor, remove: torch.Tensor) -> torch.Tensor:
    """Set removed pixels to 0 in normalised space (= the normalisation mean)."""
    return images * (~remove)[:, None].to(images.dtype)


def harmonic_mean3(a: torch.Tensor, b: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    """3 / (1/a + 1/b + 1/c) with each term clipped to [0, 1]; 0 wherever a term is 0 (its limit)."""
    a, b, c = (t.float().clamp(0.0, 1.0) for t in (a, b, c))
    zero = (a <= 0) | (b <= 0) | (c <= 0)
    safe = [torch.where(zero, torch.ones_like(t), t) for t in (a, b, c)]
    h = 3.0 / (1.0 / safe[0] + 1.0 / safe[1] + 1.0 / safe[2])
    return torch.where(zero, torch.zeros_like(h), h).clamp(0.0, 1.0)


# ----------------------------------------------------------------------------------------------------------
# Ground-truth-free metrics
# ----------------------------------------------------------------------------------------------------------

@torch.no_grad()
def relative_drop(classifier: Callable, images: torch.Tensor, maps: torch.Tensor, target: Indices,
                  contrast: Indices | None = None, fractions: Sequence[float] = (0.05, 0.10),
                  references: int = 3, batch_size: int = 32, seed: int = 0,
                  before: torch.Tensor | None = None) -> dict[float, torch.Tensor]:
    """Finer-CAM's relative confidence drop, one tensor [N] per fraction r.

    RD@r = (p_c - p*_c) - (p_d - p*_d): p softmax probabilities before, p* after setting the top-r fraction of
    pixels (ranked by the map) to 0 in normalised space; c the target, d the contrast class. With several
    references ([N, T] indices) p_d is their mean; with contrast=None the `references` most probable other
    classes of the unmasked image are used. Higher = the removed pixels mattered to c much more than to d.
    `before` (softmax of the unmasked batch) may be passed to save a forward pass.
    """
    maps = check_maps(images, maps)
    n = images.shape[0]
    tgt = as_indices(target, n)
    before = probabilities(classifier, images, batch_size) if before is None else before.cpu()
    ctr = as_indices(contrast, n, "contrast")
    if ctr is None:
        ctr = default_references(before, tgt, references)
    ranks = pixel_ranks(maps, seed)
    out = {}
    for r in fractions:
        after = probabilities(classifier, apply_removal(images, removal_mask(ranks, r)), batch_size)
        out[float(r)] = (_pick(before, tgt) - _pick(after, tgt)) - (_pick(before, ctr) - _pick(after, ctr))
    return out


@torch.no_grad()
def deletion_insertion_auc(classifier: Callable, images: torch.Tensor, maps: torch.Tensor, target: Indices,
                           steps: int = 20, batch_size: int = 32, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """(deletion AUC [N], insertion AUC [N]) of the target softmax probability (RISE, Petsiuk et al. 2018).

    Deletion: pixels are set to 0 (normalised space) from most to least relevant in `steps` equal steps;
    AUC = trapezoid area under p_c(fraction removed) over fraction in [0, 1]; lower is better.
    Insertion: start from the all-zero (mean) image and restore pixels from most to least relevant;
    AUC under p_c(fraction restored); higher is better. The canvas is the mean image, not a blurred copy,
    to keep one masking convention across all metrics.
    """
    maps = check_maps(images, maps)
    tgt = as_indices(target, images.shape[0])
    ranks = pixel_ranks(maps, seed)
    fracs = torch.linspace(0, 1, steps + 1)
    dele, ins = [], []
    for f in fracs.tolist():
        keep_top = removal_mask(ranks, f)
        dele.append(_pick(probabilities(classifier, apply_removal(images, keep_top), batch_size), tgt))
        ins.append(_pick(probabilities(classifier, apply_removal(images, ~keep_top), batch_size), tgt))
    return (torch.trapezoid(torch.stack(dele, 1), fracs, dim=1),
            torch.trapezoid(torch.stack(ins, 1), fracs, dim=1))


def deletion_auc(classifier: Callable, images: torch.Tensor, maps: torch.Tensor, target: Indices,
                 steps: int = 20, batch_size: int = 32, seed: int = 0) -> torch.Tensor:
    """Deletion AUC [N]: area under p_c while removing the most relevant pixels first (lower is better)."""
    return deletion_insertion_auc(classifier, images, maps, target, steps, batch_size, seed)[0]


def insertion_auc(classifier: Callable, images: torch.Tensor, maps: torch.Tensor, target: Indices,
                  steps: int = 20, batch_size: int = 32, seed: int = 0) -> torch.Tensor:
    """Insertion AUC [N]: area under p_c while restoring the most relevant pixels first (higher is better)."""
    return deletion_insertion_auc(classifier, images, maps, target, steps, batch_size, seed)[1]


def noisy_linear_impute(images: torch.Tensor, remove: torch.Tensor, noise: float = 0.01,
                        seed: int = 0) -> torch.Tensor:
    """ROAD's noisy linear imputation: each removed pixel becomes the weighted mean of its 8 neighbours.

    For removed pixel i with in-image neighbours j (weights 1/6 direct, 1/12 diagonal):
    (sum_j w_ij) x_i - sum_{j removed} w_ij x_j = sum_{j kept} w_ij v_j, one sparse linear system per image
    (shared by the colour channels, solved with scipy.sparse); then Gaussian noise of std `noise` (normalised
    units) is added to the imputed values. Hand-written because no library ships it outside grad-cam's ROAD.
    """
    rng = np.random.default_rng(seed)
    x = images.detach().cpu().double().numpy().copy()
    rem = remove.detach().cpu().numpy().astype(bool)
    for n in range(x.shape[0]):
        x[n] = _impute_one(x[n], rem[n], noise, rng)
    return torch.from_numpy(x).to(images.device, images.dtype)


def _impute_one(img: np.ndarray, remove: np.ndarray, noise: float, rng: np.random.Generator) -> np.ndarray:
    c, h, w = img.shape
    flat = img.reshape(c, -1)
    idx = np.flatnonzero(remove)
    m = idx.size
    if m == 0:
        return img
    if m == h * w:  # nothing left to impute from: the mean image
        out = np.zeros_like(flat)
    else:
        pos = np.full(h * w, -1, dtype=np.int64)
        pos[idx] = np.arange(m)
        ys, xs = np.divmod(idx, w)
        diag = np.zeros(m)
        rhs = np.zeros((m, c))
        rows, cols, vals = [], [], []
        rem_flat = remove.reshape(-1)
        for dy, dx, wt in _NEIGHBOURS:
            ny, nx = ys + dy, xs + dx
            valid = (ny >= 0) & (ny < h) & (nx >= 0) & (nx < w)
            src = np.flatnonzero(valid)
            nb = ny[valid] * w + nx[valid]
            diag[src] += wt
            unknown = rem_flat[nb]
            rows.append(src[unknown])
            cols.append(pos[nb[unknown]])
            vals.append(np.full(int(unknown.sum()), -wt))
            np.add.at(rhs, src[~unknown], wt * flat[:, nb[~unknown]].T)
        a = sparse.csc_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(m, m))
        a = a + sparse.diags(diag, format="csc")
        sol = spsolve(a, rhs)
        out = flat.copy()
        out[:, idx] = np.asarray(sol).reshape(m, c).T
    if noise > 0:
        out[:, idx] += noise * rng.standard_normal((c, m))
    return out.reshape(c, h, w)


@torch.no_grad()
def road(classifier: Callable, images: torch.Tensor, maps: torch.Tensor, target: Indices,
         percentages: Sequence[int] = ROAD_PERCENTAGES, noise: float = 0.01, batch_size: int = 32,
         seed: int = 0) -> dict[str, torch.Tensor]:
    """ROAD (Rong et al. 2022) with noisy linear imputation; returns per-image tensors [N].

    MoRF(p) / LeRF(p) = target softmax probability after imputing the most / least relevant p% of pixels.
    Keys: 'morf', 'lerf' (means over p in `percentages`, default 20/40/60/80) and
    'road' = (mean_p LeRF(p) - mean_p MoRF(p)) / 2, in [-0.5, 0.5], higher is better.
    """
    maps = check_maps(images, maps)
    tgt = as_indices(target, images.shape[0])
    ranks = pixel_ranks(maps, seed)
    morf, lerf = [], []
    for i, p in enumerate(percentages):
        for most, acc in ((True, morf), (False, lerf)):
            rem = removal_mask(ranks, p / 100.0, most_relevant=most)
            imputed = noisy_linear_impute(images, rem, noise, seed=seed + 2 * i + int(most))
            acc.append(_pick(probabilities(classifier, imputed, batch_size), tgt))
    mo, le = torch.stack(morf, 1).mean(1), torch.stack(lerf, 1).mean(1)
    return {"morf": mo, "lerf": le, "road": (le - mo) / 2}


@torch.no_grad()
def average_drop_increase(classifier: Callable, images: torch.Tensor, maps: torch.Tensor, target: Indices,
                          batch_size: int = 32, before: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(Average Drop [N], Increase in Confidence [N]) from Grad-CAM++ (Chattopadhay et al. 2018).

    With y = p_c(x) and o = p_c(x * M) (the normalised image scaled by its map, i.e. blended towards the mean):
    drop = max(0, y - o) / y in [0, 1] (lower is better); increase = 1[o > y] (higher is better).
    Means over images give the usual dataset-level numbers (times 100 for percent). `before` as in relative_drop.
    """
    maps = check_maps(images, maps)
    tgt = as_indices(target, images.shape[0])
    y = _pick(probabilities(classifier, images, batch_size) if before is None else before.cpu(), tgt)
    o = _pick(probabilities(classifier, images * maps[:, None], batch_size), tgt)
    drop = (y - o).clamp(min=0) / y.clamp(min=1e-12)
    return drop, (o > y).float()


def pearson(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Pearson correlation over pixels per image [N]; 1 when both maps are flat, 0 when only one is."""
    a, b = a.flatten(1).double(), b.flatten(1).double()
    a, b = a - a.mean(1, keepdim=True), b - b.mean(1, keepdim=True)
    na, nb = a.norm(dim=1), b.norm(dim=1)
    eps = 1e-9
    r = (a * b).sum(1) / (na * nb).clamp(min=eps)
    flat_a, flat_b = na < eps, nb < eps
    r = torch.where(flat_a & flat_b, torch.ones_like(r), torch.where(flat_a | flat_b, torch.zeros_like(r), r))
    return r.clamp(-1, 1).float()


def coherency(maps: torch.Tensor, maps_of_masked: torch.Tensor) -> torch.Tensor:
    """Coherency [N] = (PCC(CAM(x * M), M) + 1) / 2 in [0, 1] (Poppi et al. 2021).

    `maps_of_masked` is the map the same method gives for the input multiplied by its own map M.
    Flat maps have no defined correlation: two flat maps count as identical (1), one flat map as unrelated (0.5).
    """
    if maps_of_masked.shape[-2:] != maps.shape[-2:]:
        maps_of_masked = F.interpolate(maps_of_masked[:, None].float(), size=maps.shape[-2:], mode="bilinear",
                                       align_corners=False)[:, 0]
    return (pearson(maps_of_masked.to(maps.device), maps) + 1) / 2


def coherency_of(explain_fn: Callable[[torch.Tensor], torch.Tensor], images: torch.Tensor,
                 maps: torch.Tensor) -> torch.Tensor:
    """Coherency [N], recomputing the map with `explain_fn` (same method, same target) on images * maps."""
    maps = check_maps(images, maps)
    again = explain_fn(images * maps[:, None])
    return coherency(maps, check_maps(images, torch.as_tensor(again)))


def complexity(maps: torch.Tensor) -> torch.Tensor:
    """Complexity [N] = mean |M| over pixels (L1 / (H W)); lower is better, ARCC/ADCC use 1 - Complexity."""
    return maps.detach().float().abs().flatten(1).mean(1)


def adcc(coh: torch.Tensor, compl: torch.Tensor, avg_drop: torch.Tensor) -> torch.Tensor:
    """ADCC [N] = 3 / (1/Coherency + 1/(1 - Complexity) + 1/(1 - AverageDrop)) (Poppi et al. 2021), in [0, 1]."""
    return harmonic_mean3(coh, 1 - compl, 1 - avg_drop)


def arcc(coh: torch.Tensor, compl: torch.Tensor, road_score: torch.Tensor) -> torch.Tensor:
    """ARCC [N] = 3 / (1/Coherency + 1/(1 - Complexity) + 1/clip(2 ROAD, 0, 1)) (Domeniconi et al. 2026).

    Every term is clipped to [0, 1] and a zero term gives 0 (the limit of the harmonic mean), so ARCC is in [0, 1].
    """
    return harmonic_mean3(coh, 1 - compl, (2 * road_score).clamp(0, 1))


# ----------------------------------------------------------------------------------------------------------
# Metrics against ground-truth masks
# ----------------------------------------------------------------------------------------------------------

def _gt(maps: torch.Tensor, masks: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    masks = torch.as_tensor(masks)
    if masks.ndim == 4 and masks.shape[1] == 1:
        masks = masks[:, 0]
    if masks.shape[0] != maps.shape[0]:
        raise BadValueError(f"{masks.shape[0]} masks for {maps.shape[0]} maps.", "Pass one mask per map.")
    maps = maps.detach().float()
    masks = masks.to(maps.device)
    if masks.shape[-2:] != maps.shape[-2:]:
        masks = F.interpolate(masks[:, None].float(), size=maps.shape[-2:], mode="nearest")[:, 0]
    return maps, masks.float() > 0.5


def mass_iou(maps: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """Mass-IoU [N] = sum(M G) / sum(M): the share of map mass inside the mask (energy pointing game); 0 for an empty map."""
    maps, g = _gt(maps, masks)
    m = maps.clamp(min=0).flatten(1)
    total = m.sum(1)
    inside = (m * g.flatten(1)).sum(1)
    return torch.where(total > 0, inside / total.clamp(min=1e-12), torch.zeros_like(total))


def pointing_game(maps: torch.Tensor, masks: torch.Tensor, tolerance: int = 0) -> torch.Tensor:
    """Pointing game [N]: 1 when the map's maximum lies inside the mask (dilated by `tolerance` pixels).

    Ties for the maximum give the share of tied pixels inside the mask (the expected hit under random
    tie-breaking), so a flat map scores the mask's area fraction instead of whatever pixel comes first.
    """
    maps, g = _gt(maps, masks)
    if tolerance > 0:
        g = F.max_pool2d(g[:, None].float(), 2 * tolerance + 1, stride=1, padding=tolerance)[:, 0] > 0.5
    flat = maps.flatten(1)
    top = flat >= flat.max(1, keepdim=True).values - 1e-7
    return (top & g.flatten(1)).sum(1).float() / top.sum(1).float()


def pixel_roc_auc(maps: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """Pixel ROC-AUC [N] of the map as a score for mask membership (Mann-Whitney U with tied ranks averaged).

    AUC = (sum of ranks of mask pixels - P (P + 1) / 2) / (P Q) for P mask and Q background pixels;
    NaN when the mask is empty or covers the whole image.
    """
    maps, g = _gt(maps, masks)
    scores = maps.flatten(1).cpu().double().numpy()
    pos = g.flatten(1).cpu().numpy()
    ranks = rankdata(scores, method="average", axis=1)
    p = pos.sum(1).astype(np.float64)
    q = pos.shape[1] - p
    with np.errstate(invalid="ignore", divide="ignore"):
        auc = ((ranks * pos).sum(1) - p * (p + 1) / 2) / (p * q)
    auc[(p == 0) | (q == 0)] = np.nan
    return torch.from_numpy(auc).float()


__all__ = ["ROAD_PERCENTAGES", "adcc", "apply_removal", "arcc", "as_indices", "average_drop_increase",
           "check_maps", "coherency", "coherency_of", "complexity", "default_references", "deletion_auc",
           "deletion_insertion_auc", "harmonic_mean3", "insertion_auc", "mass_iou", "noisy_linear_impute",
           "pearson", "pixel_ranks", "pixel_roc_auc", "pointing_game", "probabilities", "relative_drop",
           "removal_mask", "road"]
