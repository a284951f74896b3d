"""Sanity-baseline maps that any useful CAM, and any useful metric, must rank below real CAMs.

All functions return float maps [N, H, W] in [0, 1]; random ones are deterministic from a seed.
"""

from __future__ import annotations

import torch

from traits.errors import BadValueError, UnknownChoiceError

BASELINES = ("random", "random-smooth", "ones", "constant", "centre")


def random_map(n: int, height: int, width: int, seed: int = 0) -> torch.Tensor:
    """Independent uniform [0, 1) values per pixel (no spatial structure at all)."""
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, height, width, generator=g)


def random_smooth_map(n: int, height: int, width: int, grid: int = 7, seed: int = 0) -> torch.Tensor:
    """Uniform noise on a coarse grid x grid lattice, upsampled bilinearly and min-maxed: blobs like a CAM's,
    placed at random. Separates "the map carries information" from "removing blobs instead of scattered pixels"."""
    g = torch.Generator().manual_seed(seed)
    coarse = torch.rand(n, 1, grid, grid, generator=g)
    up = torch.nn.functional.interpolate(coarse, size=(height, width), mode="bilinear", align_corners=False)[:, 0]
    lo = up.amin(dim=(-2, -1), keepdim=True)
    span = (up.amax(dim=(-2, -1), keepdim=True) - lo).clamp_min(1e-12)
    return (up - lo) / span


def ones_map(n: int, height: int, width: int) -> torch.Tensor:
    """All ones: 'everything matters' (maximal complexity; removal order is pure tie-breaking)."""
    return torch.ones(n, height, width)


def constant_map(n: int, height: int, width: int, value: float = 0.5) -> torch.Tensor:
    """A flat map at `value`: same ranking as all-ones, but half the mass (differs for Complexity, Average Drop)."""
    if not 0.0 <= value <= 1.0:
        raise BadValueError(f"constant map value {value} is outside [0, 1].", "Use a value between 0 and 1.")
    return torch.full((n, height, width), float(value))


def centre_gaussian_map(n: int, height: int, width: int, sigma: float = 0.25) -> torch.Tensor:
    """exp(-d^2 / (2 sigma^2)) with d the distance to the image centre in units of the image side: the centre bias."""
    ys = (torch.arange(height, dtype=torch.float32) + 0.5) / height - 0.5
    xs = (torch.arange(width, dtype=torch.float32) + 0.5) / width - 0.5
    d2 = ys[:, None] ** 2 + xs[None, :] ** 2
    g = torch.exp(-d2 / (2 * sigma**2))
    g = (g - g.min()) / (g.max() - g.min()) if g.max() > g.min() else torch.ones_like(g)
    return g.expand(n, height, width).clone()


def baseline_maps(name: str, n: int, height: int, width: int, seed: int = 0) -> torch.Tensor:
    """Maps [N, H, W] of the named baseline: 'random', 'random-smooth', 'ones', 'constant' or 'centre'."""
    key = name.removeprefix("baseline:").replace("all-ones", "ones").replace("center", "centre")
    if key == "random":
        return random_map(n, height, width, seed)
    if key == "random-smooth":
        return random_smooth_map(n, height, width, seed=seed)
    if key == "ones":
        return ones_map(n, height, width)
    if key == "constant":
        return constant_map(n, height, width)
    if key in ("centre", "centre-gaussian", "gaussian"):
        return centre_gaussian_map(n, height, width)
    raise UnknownChoiceError(f"Unknown baseline map {name!r}.", f"Use one of {', '.join(BASELINES)}.")


def is_baseline(method: str) -> bool:
    """True for names handled here ('random', 'random-smooth', 'ones', 'constant', 'centre', or 'baseline:...')."""
    key = method.removeprefix("baseline:")
    return key in BASELINES or key in ("all-ones", "center", "centre-gaussian", "gaussian")
