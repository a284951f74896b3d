"""Choosing the torch device from a user string such as 'auto', 'cpu' or 'cuda:1'."""

from __future__ import annotations

import torch

from traits.errors import MissingDependencyError, UnknownChoiceError


def resolve_device(device: str | torch.device | None = "auto") -> torch.device:
    """Return a torch.device; 'auto' picks CUDA, then Apple MPS, then the CPU."""
    if isinstance(device, torch.device):
        return device
    name = (device or "auto").strip().lower()
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        dev = torch.device(name)
    except RuntimeError as exc:
        raise UnknownChoiceError(f"Unknown device {device!r}.", "Use 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps'.") from exc
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise MissingDependencyError(f"Device {device!r} was requested but no CUDA GPU is available.",
                          "Use --device auto or --device cpu.")
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        raise MissingDependencyError(f"Device {device!r} does not exist ({torch.cuda.device_count()} GPU(s) present).",
                          "Pick an index below the GPU count, or use --device auto.")
    return dev
