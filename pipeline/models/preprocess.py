"""One preprocessing per model: resize (no crop) and normalise, shared by training, inference and CAMs."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
import torch
import torchvision.transforms.v2.functional as TF
from PIL import Image
from torchvision.transforms import InterpolationMode

from pipeline.images import ImageSource, load_image
from traits.errors import BadImageError

_INTERPOLATIONS = {
    "bilinear": InterpolationMode.BILINEAR,
    "bicubic": InterpolationMode.BICUBIC,
    "nearest": InterpolationMode.NEAREST,
    "lanczos": InterpolationMode.LANCZOS,
}


@dataclass(frozen=True)
class Preprocess:
    """Resize to (height, width) without cropping, scale to [0, 1], normalise by mean/std.

    No centre crop on purpose: cropping would cut wing tips and tails out of the very maps we explain.
    """

    size: tuple[int, int] = (224, 224)
    mean: tuple[float, float, float] = (0.485, 0.456, 0.406)
    std: tuple[float, float, float] = (0.229, 0.224, 0.225)
    interpolation: str = "bicubic"

    def __post_init__(self) -> None:
        size = self.size if isinstance(self.size, (tuple, list)) else (self.size, self.size)
        object.__setattr__(self, "size", (int(size[0]), int(size[1])))
        object.__setattr__(self, "mean", tuple(float(m) for m in self.mean))
        object.__setattr__(self, "std", tuple(float(s) for s in self.std))
        if self.interpolation not in _INTERPOLATIONS:
            raise ValueError(f"interpolation must be one of {sorted(_INTERPOLATIONS)}")
        if not all(1 <= s <= 8192 for s in self.size):
            raise ValueError(f"size must be 1 to 8192 px per side, not {self.size}")
        if len(self.mean) != 3 or len(self.std) != 3 or not all(s > 0 for s in self.std):
            raise ValueError("mean and std need three values each (R, G, B), std above 0")

    def to_dict(self) -> dict:
        """Plain JSON-able dict (stored in model cards)."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, d: dict) -> Preprocess:
        """Inverse of to_dict."""
        return cls(size=tuple(d["size"]), mean=tuple(d["mean"]), std=tuple(d["std"]),
                   interpolation=d.get("interpolation", "bicubic"))

    @classmethod
    def from_timm(cls, model: torch.nn.Module, size: int | tuple[int, int] | None = None) -> Preprocess:
        """Read input size, mean, std and interpolation from a timm model's pretrained_cfg."""
        import timm.data  # heavy: only for timm models, never at CLI start

        cfg = timm.data.resolve_data_config({}, model=model)
        _, h, w = cfg["input_size"]
        return cls(size=size or (h, w), mean=cfg["mean"], std=cfg["std"],
                   interpolation=cfg.get("interpolation", "bicubic") or "bicubic")

    def image_to_tensor(self, image: ImageSource) -> torch.Tensor:
        """One image -> normalised float tensor [3, H, W]."""
        img = load_image(image)
        x = TF.pil_to_tensor(img)
        x = TF.resize(x, list(self.size), interpolation=_INTERPOLATIONS[self.interpolation], antialias=True)
        x = x.float().div_(255.0)
        return TF.normalize(x, list(self.mean), list(self.std))

    def __call__(self, images: ImageSource | Sequence[ImageSource]) -> torch.Tensor:
        """Images (one or a list) -> batch tensor [N, 3, H, W]."""
        if isinstance(images, (str, Image.Image, np.ndarray)) or not isinstance(images, Sequence):
            images = [images]
        if len(images) == 0:
            raise BadImageError("No images were given (an empty list).", "Pass at least one photo.")
        return torch.stack([self.image_to_tensor(im) for im in images])

    def denormalize(self, x: torch.Tensor) -> torch.Tensor:
        """Normalised [.., 3, H, W] -> [0, 1] RGB for display."""
        mean = torch.tensor(self.mean, device=x.device).view(3, 1, 1)
        std = torch.tensor(self.std, device=x.device).view(3, 1, 1)
        return (x * std + mean).clamp(0, 1)
