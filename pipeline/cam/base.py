"""Capturing layer outputs during one forward pass, and their gradients in one batched backward pass."""

from __future__ import annotations

import difflib
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import torch
from torch import nn

from traits.errors import LayerError


def find_layer(model: nn.Module, name: str) -> nn.Module:
    """The sub-module called name (dotted, relative to model), or a ConfigError with close names."""
    modules = dict(model.named_modules())
    if isinstance(name, str) and name in modules and name != "":
        return modules[name]
    close = difflib.get_close_matches(str(name), list(modules), n=4, cutoff=0.6)
    raise LayerError(f"The model has no layer {name!r}.",
                      f"Pass a module name from model.named_modules(){', e.g. ' + ', '.join(close) if close else ''}.")


@contextmanager
def capture(model: nn.Module, names: Sequence[str], with_grad: bool) -> Iterator[dict[str, torch.Tensor]]:
    """Record the outputs of the named layers during the forward passes run inside this block.

    With with_grad, the first captured layer to run switches autograd on and replaces its output by a fresh
    leaf: everything before it runs without a graph (as cheap as inference), everything after it builds the
    small graph that the backward pass needs. The caller runs the forward under torch.no_grad(), whose exit
    restores the caller's grad mode; hooks are removed on exit even when the forward fails."""
    outputs: dict[str, torch.Tensor] = {}

    def hook(name: str):
        def fn(module, args, out):
            if not isinstance(out, torch.Tensor):
                raise LayerError(f"Layer {name!r} returns a {type(out).__name__}, not a tensor.",
                                  "Pick a layer whose output is one feature map or token tensor.")
            if name in outputs:
                raise LayerError(f"Layer {name!r} runs more than once per forward pass.",
                                  "Pick a layer that is used once (e.g. a block's norm, not a shared activation).")
            if with_grad and not outputs:
                torch.set_grad_enabled(True)
                out = out.detach().requires_grad_(True)
            outputs[name] = out
            return out
        return fn

    handles = [find_layer(model, n).register_forward_hook(hook(n)) for n in dict.fromkeys(names)]
    try:
        yield outputs
    finally:
        for h in handles:
            h.remove()


def batched_vjp(logits: torch.Tensor, layers: list[torch.Tensor], vectors: torch.Tensor) -> list[torch.Tensor]:
    """Gradients of <vectors[k], logits> for every k with respect to each layer output: [K, *layer.shape].

    One backward pass, vectorised over K (autograd's is_grads_batched); the graph is freed afterwards."""
    if not logits.requires_grad:
        raise LayerError("The chosen CAM layer does not feed the logits.",
                          "Pick a layer inside the image branch that the prediction depends on.")
    vectors = vectors.to(logits.dtype)
    if vectors.shape[0] == 1:
        grads = torch.autograd.grad(logits, layers, vectors[0], allow_unused=True)
        grads = tuple(None if g is None else g[None] for g in grads)
    else:
        try:
            grads = torch.autograd.grad(logits, layers, vectors, is_grads_batched=True, allow_unused=True,
                                        retain_graph=True)
        except RuntimeError:  # an op without a vmap rule for its backward: same numbers, one pass per vector
            per = [torch.autograd.grad(logits, layers, v, allow_unused=True, retain_graph=True) for v in vectors]
            grads = tuple(None if parts[0] is None else torch.stack(parts) for parts in zip(*per, strict=True))
    out = []
    for g, a in zip(grads, layers, strict=True):
        out.append(torch.zeros((vectors.shape[0], *a.shape), dtype=a.dtype, device=a.device) if g is None else g)
    return out


@contextmanager
def eval_mode(model: nn.Module) -> Iterator[None]:
    """Put every sub-module in eval mode for the block, then restore each one's own training flag."""
    flags = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        yield
    finally:
        for m, flag in flags:
            m.training = flag
