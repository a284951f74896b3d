"""explain / explain_many: every requested map from one forward pass and at most one batched backward pass."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
from torch import nn

from pipeline.cam import fast as fastpath
from pipeline.cam import methods as M
from pipeline.cam import refine as R
from pipeline.cam import targets as T
from pipeline.cam.base import batched_vjp, capture, eval_mode
from pipeline.cam.reshape import to_grid, token_layout
from traits.errors import BadValueError, LayerError, UnknownChoiceError

BASES = ("gradcam", "gradcam++", "layercam", "scorecam")
# RefineCAM combines one base method over several layers: 'refinecam' uses Grad-CAM++ (the paper's default),
# 'refine-<base>' names another base ('refine-layercam' is the multi-layer probe's measured default).
REFINE_BASES = ("gradcam", "gradcam++", "layercam")
METHOD_NAMES = ("gradcam", "gradcam++", "layercam", "scorecam", "finer", "finer-gradcam", "finer-gradcam++",
                "finer-layercam", "finer-scorecam", "refinecam", "finer-refinecam",
                *(f"{f}refine-{b}" for f in ("", "finer-") for b in REFINE_BASES), "random")
_ALIASES = {"grad-cam": "gradcam", "grad-cam++": "gradcam++", "gradcampp": "gradcam++", "layer-cam": "layercam",
            "score-cam": "scorecam", "finercam": "finer", "finer-cam": "finer", "refine-cam": "refinecam"}


@dataclass
class CamResult:
    """Maps for a batch: maps [N, H, W] in [0, 1] at the input size; raw [N, h, w] signed, before ReLU and
    normalisation, at the feature grid (the deepest layer for RefineCAM). Tensors are detached, on the CPU."""

    maps: torch.Tensor
    raw: torch.Tensor
    logits: torch.Tensor
    target_idx: torch.Tensor
    reference_idx: torch.Tensor  # [N, T], -1 pads rows with fewer references; T = 0 for plain methods
    method: str = "finer"
    gamma: float = 0.0
    weighting: str = "uniform"
    layers: list[str] = field(default_factory=list)
    # Activation grids [N, C, h, w] of layers the caller asked to keep (explain_many's keep=): what else needs
    # them (region matching in describe) then costs no second forward pass.
    activations: dict[str, torch.Tensor] = field(default_factory=dict, repr=False)


@dataclass
class CamRequest:
    """One map per image: method, target and contrast specs as in explain()."""

    method: str = "finer"
    target: object = None
    contrast: object = None
    gamma: float = 0.6
    references: int = 3
    weighting: str = "uniform"
    layer: str | Sequence[str] | None = None
    seed: int | None = None


@dataclass
class _Plan:
    req: CamRequest
    name: str
    base: str  # gradcam | gradcam++ | layercam | scorecam | random
    finer: bool
    layers: list[str]
    refine: bool = False


def parse_method(method: str) -> tuple[str, str, bool, bool]:
    """(canonical name, base method, finer?, refine?) from a method name."""
    name = str(method).strip().lower().replace("_", "-")
    name = _ALIASES.get(name, name)
    if name not in METHOD_NAMES:
        raise UnknownChoiceError(f"Unknown CAM method {method!r}.", f"Use one of: {', '.join(METHOD_NAMES)}.")
    finer = name.startswith("finer")
    core = {"finer": "gradcam"}.get(name, name.removeprefix("finer-"))
    if core == "refinecam":
        return name, "gradcam++", finer, True
    if core.startswith("refine-"):
        return name, core.removeprefix("refine-"), finer, True
    return name, core, finer, False


def _plan(model: nn.Module, req: CamRequest, default_layer: Callable[[], str]) -> _Plan:
    name, base, finer, refine = parse_method(req.method)
    T.check_gamma(req.gamma, req.weighting)
    layer = req.layer
    if layer is None:
        layer = default_layer()
        layers = R.default_layers(model, layer) if refine else [layer]
    elif isinstance(layer, str):
        layers = [layer]
    else:
        layers = [str(x) for x in layer]
        if not layers or (len(layers) > 1 and not refine):
            raise BadValueError(f"Method {name!r} takes one layer, got {layers!r}.",
                              "Pass one module name, or use method='refinecam' for several layers.")
    return _Plan(req, name, base, finer, layers, refine)


def run(model: nn.Module, x: torch.Tensor, requests: Sequence[CamRequest], index: Callable[[int | str], int],
        default_layer: Callable[[], str], fast: bool | None = None, keep: Sequence[str] = ()) -> list[CamResult]:
    """Core: normalised batch x on the model's device -> one CamResult per request (each also carrying the
    activation grids of the `keep` layers, from the same forward pass)."""
    plans = [_plan(model, r, default_layer) for r in requests]
    if x.ndim != 4 or x.shape[0] == 0:
        raise BadValueError(f"Expected a non-empty image batch [N, 3, H, W], got shape {tuple(x.shape)}.",
                          "Pass images as paths, PIL images or a normalised batch tensor.")
    with torch.inference_mode(False), eval_mode(model):
        if x.is_inference():
            x = x.clone()
        return _run(model, x, plans, index, fast, tuple(keep))


def _run(model, x, plans: list[_Plan], index, fast: bool | None, keep: tuple[str, ...] = ()) -> list[CamResult]:
    n, size = x.shape[0], tuple(x.shape[-2:])
    all_layers = list(dict.fromkeys([*(ly for p in plans for ly in p.layers), *keep]))
    grad_layers = list(dict.fromkeys(ly for p in plans if p.base in M.GRADIENT_METHODS for ly in p.layers))
    weights = {ly: fastpath.head_weight(model, ly) for ly in grad_layers} if fast is not False else {}
    weights = {ly: w for ly, w in weights.items() if w is not None}
    slow = [ly for ly in grad_layers if ly not in weights]
    # The fast-path check needs every layer the head reads, requested or not.
    all_layers = list(dict.fromkeys(all_layers + [c for ly in weights for c in fastpath.check_layers(model, ly)]))
    with torch.no_grad(), capture(model, all_layers, with_grad=bool(slow)) as outs:
        logits = model(x)
    missing = [ly for ly in all_layers if ly not in outs]
    if missing:
        raise LayerError(f"Layer(s) {missing} did not run during the forward pass.",
                          "Pick layers the model actually uses to compute its prediction.")
    logits_d = logits.detach().float()
    grids = {ly: to_grid(outs[ly].detach(), n, size, *token_layout(model, ly)).float() for ly in all_layers}
    if any(not fastpath.consistent(model, grids, ly, logits_d) for ly in weights):
        if fast:
            raise LayerError("The fast path does not reproduce this model's logits.", "Call with fast=None or False.")
        return _run(model, x, plans, index, False, keep)

    resolved = [T.resolve(logits_d, index, p.req.target, p.req.contrast, p.req.references, p.finer) for p in plans]
    gammas = [float(p.req.gamma) if p.finer else 0.0 for p in plans]
    vecs = {i: T.coefficients(logits_d, *resolved[i], gammas[i], p.req.weighting)
            for i, p in enumerate(plans) if p.base in M.GRADIENT_METHODS}
    grads = _gradients(logits, outs, grids, slow, vecs, n, size, model) if slow else {}
    del outs, logits  # frees the graph before the (possibly long) Score-CAM passes
    for ly, w in weights.items():
        order = list(vecs)
        g = fastpath.fast_grads(w.detach().float(), torch.stack([vecs[i] for i in order]), grids[ly])
        grads[ly] = {i: g[j] for j, i in enumerate(order)}

    kept = {ly: grids[ly].detach().cpu() for ly in keep}
    masked: dict[str, torch.Tensor] = {}
    results = []
    for i, p in enumerate(plans):
        tgt, refs = resolved[i]
        raws, maps = [], []
        for ly in p.layers:
            a = grids[ly]
            if p.base in M.GRADIENT_METHODS:
                raw = M.GRADIENT_FUNCS[p.base](a, grads[ly][i][None])[0]
            elif p.base == "scorecam":
                if ly not in masked:
                    masked[ly] = M.masked_logits(model, x, a)
                raw = M.scorecam(a, T.scores(masked[ly], tgt, refs, gammas[i], p.req.weighting))
            else:
                raw = M.random_maps(n, tuple(a.shape[-2:]), p.req.seed, a.device)
            raws.append(raw)
            maps.append(M.normalise(raw, size))
        final = R.combine(maps) if p.refine else maps[0]
        results.append(CamResult(maps=final.cpu(), raw=raws[0].detach().cpu(), logits=logits_d.cpu(),
                                 target_idx=tgt, reference_idx=refs, method=p.name, gamma=gammas[i],
                                 weighting=p.req.weighting, layers=list(p.layers), activations=kept))
    return results


def _gradients(logits, outs, grids, layers, vecs, n, size, model) -> dict[str, dict[int, torch.Tensor]]:
    """Per-request gradients at each layer from ONE batched backward pass.

    The scores are linear in the logits' gradient, so only the classes they involve need a backward:
    back-propagate one-hot vectors for those classes (K <= number of requests) and recombine."""
    order = list(vecs)
    V = torch.stack([vecs[i] for i in order]).to(logits.device)  # [R, N, C]
    involved = (V != 0).any(0)  # [N, C]
    k = int(involved.sum(1).max())
    if 0 < k < len(order):
        idx = involved.float().argsort(dim=1, descending=True, stable=True)[:, :k]  # [N, k]
        valid = involved.gather(1, idx)
        basis = torch.zeros(k, n, V.shape[-1], device=V.device)
        basis.scatter_(2, idx.t()[:, :, None], valid.t()[:, :, None].float())
        coef = V.gather(2, idx[None].expand(len(order), -1, -1)) * valid  # [R, N, k]
    else:
        basis, coef = V, None
    raw = batched_vjp(logits, [outs[ly] for ly in layers], basis)
    out: dict[str, dict[int, torch.Tensor]] = {}
    for ly, g in zip(layers, raw, strict=True):
        prefix, patch = token_layout(model, ly)
        g = torch.stack([to_grid(gk, n, size, prefix, patch) for gk in g]).float()  # [K, N, C, h, w]
        if coef is not None:
            g = torch.einsum("rnk,kn...->rn...", coef, g)
        out[ly] = {i: g[j] for j, i in enumerate(order)}
    return out
