"""Image backbones by name: timm models with packaged, local-file or hub weights (one factory, timm-style)."""

from __future__ import annotations

import difflib
import pickle
import re
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import load_file
from torch import nn

from pipeline.models import efficientnet_lite0
from pipeline.models.preprocess import Preprocess
from traits.errors import BadValueError, CheckpointError, ModelUnavailableError, UnknownChoiceError

DEFAULT_BACKBONE = "efficientnet_lite0"
# Friendly names -> (timm architecture, default weights source).
ALIASES = {
    "efficientnet_lite0": (efficientnet_lite0.TIMM_NAME, efficientnet_lite0.WEIGHTS_ID),
    "tf_efficientnet_lite0": (efficientnet_lite0.TIMM_NAME, efficientnet_lite0.WEIGHTS_ID),
}


@dataclass
class Backbone:
    """A headless timm model that returns pooled features, with its preprocessing and provenance."""

    model: nn.Module
    preprocess: Preprocess
    name: str
    arch: str
    weights: str
    num_features: int


def create_backbone(name: str = DEFAULT_BACKBONE, weights: str | Path | None = "default",
                    image_size: int | None = None) -> Backbone:
    """Create a headless timm backbone.

    weights: 'default' (packaged weights for efficientnet_lite0, else the hub), 'hub', 'random' / None,
    or a local file (.safetensors, .pth, .pt, .bin).
    """
    import timm  # heavy (about 1 s): only when a backbone is built, never at CLI start

    arch, default_weights = ALIASES.get(name, (name, "hub"))
    _check_image_size(image_size)
    if weights == "default":
        weights = default_weights
    if weights is None:
        weights = "random"
    kwargs: dict = {"num_classes": 0}
    if image_size is not None and "vit" in arch:
        kwargs["img_size"] = image_size
    if not timm.is_model(arch):
        close = difflib.get_close_matches(arch, timm.list_models(), n=5, cutoff=0.6)
        raise UnknownChoiceError(f"Unknown backbone {name!r}.",
                          f"Use a timm model name, e.g. {', '.join(close) or 'efficientnet_lite0, resnet50, vit_base_patch16_224'}.")
    model = _create_from_hub(arch, kwargs) if weights == "hub" else timm.create_model(arch, pretrained=False, **kwargs)
    if image_size is not None:
        _check_fits(model, name, image_size)
    if weights == efficientnet_lite0.WEIGHTS_ID:
        efficientnet_lite0.load_packaged_weights(model)
    elif weights not in ("hub", "random"):
        load_weights_file(model, Path(weights))
        weights = str(Path(weights).resolve())
    model.eval()
    preprocess = Preprocess.from_timm(model, size=image_size)
    return Backbone(model=model, preprocess=preprocess, name=name, arch=arch, weights=str(weights),
                    num_features=int(model.num_features))


MAX_IMAGE_SIZE = 4096  # beyond this one photo's activations no longer fit in a typical GPU or laptop


def _check_image_size(image_size: object) -> None:
    if image_size is None:
        return
    if isinstance(image_size, bool) or not isinstance(image_size, int) or not 1 <= image_size <= MAX_IMAGE_SIZE:
        raise BadValueError(f"--image-size must be a whole number of pixels from 1 to {MAX_IMAGE_SIZE}, not "
                          f"{image_size!r}.", "Leave it out to use the backbone's own size (224 px for most).")


def _check_fits(model: nn.Module, name: str, image_size: int) -> None:
    """Refuse input sizes that leave the backbone less than one cell of its last feature map (or a ViT patch)."""
    patch = getattr(getattr(model, "patch_embed", None), "patch_size", None)
    if patch is not None:
        step = max(patch) if isinstance(patch, (tuple, list)) else int(patch)
        if image_size < step or image_size % step:
            raise BadValueError(f"--image-size {image_size} does not fit backbone {name!r} (patches of {step} px).",
                              f"Use a multiple of {step} px, e.g. {max(step, round(image_size / step) * step)}.")
        return
    info = getattr(model, "feature_info", None)
    try:
        step = int(info[-1]["reduction"]) if info else 32
    except (TypeError, KeyError, IndexError):
        step = 32
    if image_size < step:
        raise BadValueError(f"--image-size {image_size} is below what backbone {name!r} needs: it shrinks a photo "
                          f"{step} times, so {image_size} px leaves no feature map to train on or explain.",
                          f"Use at least {step} px; {2 * step} px or more gives maps with detail (default: the "
                          "backbone's own size).")


def _create_from_hub(arch: str, kwargs: dict) -> nn.Module:
    import timm  # heavy (about 1 s): only when a backbone is built, never at CLI start

    try:
        return timm.create_model(arch, pretrained=True, **kwargs)
    except Exception as exc:  # network, hub and cache errors come in many types
        raise ModelUnavailableError(
            f"Pretrained weights for {arch!r} could not be downloaded ({type(exc).__name__}: {str(exc)[:200]}).",
            "Download the weights on a connected machine (e.g. `huggingface-cli download timm/<name>`) and pass "
            "the file with --weights PATH (.safetensors or .pth), or use the offline default backbone "
            "'efficientnet_lite0'.",
        ) from exc


def refused_pickle(path: str | Path, exc: BaseException) -> CheckpointError | None:
    """The error for a checkpoint that torch.load(weights_only=True) refused, keeping PyTorch's own warning.

    None when exc is not such a refusal. The fix never suggests a download: the file is already here.
    """
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(exc))  # PyTorch bolds part of its message for terminals
    if not isinstance(exc, pickle.UnpicklingError) and "Weights only load failed" not in text:
        return None
    lines = [line.strip() for line in text.splitlines()]
    why = next((line for line in lines if line.startswith("WeightsUnpickler error")), lines[0] if lines else "")
    why = why.split(" Please use")[0].rstrip(".")  # its allow-listing advice is the unsafe road
    warning = next((line[line.index("Re-running"):] for line in lines if "arbitrary code execution" in line
                    and "Re-running" in line), "Loading it with weights_only=False can result in arbitrary code "
                                                 "execution. Do it only if you got the file from a trusted source.")
    return CheckpointError(
        f"{path} holds pickled Python objects besides tensors, so it was not loaded ({why[:300]}). PyTorch warns: "
        f"{warning}",
        "On a machine where you trust the file, load it and save only the tensors, e.g. "
        "`torch.save(torch.load(f, weights_only=False).state_dict(), 'weights.pth')` or with safetensors' "
        "save_file; then pass that file (pickled code is refused, never run).")


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """Read a state dict safely (safetensors, or torch.load with weights_only=True)."""
    if not path.exists():
        raise ModelUnavailableError(f"Weights file {path} does not exist.", "Check the path passed as weights.")
    if not path.is_file():  # a folder, or a named pipe that would block torch.load forever
        raise CheckpointError(f"Weights {path} is not a regular file.", "Pass a .safetensors or .pth file.")
    try:
        if path.suffix == ".safetensors":
            return load_file(str(path))
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # foreign or damaged files fail inside zip, pickle or torch with many error types
        refused = refused_pickle(path, exc)
        if refused is not None:
            raise refused from exc
        raise CheckpointError(f"Could not read weights from {path} ({type(exc).__name__}: {str(exc)[:200]}).",
                              "Pass a .safetensors file or a plain PyTorch state dict (pickled code is refused).") from exc
    for key in ("state_dict", "model", "model_state_dict"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"{path} does not hold a state dict of tensors.", "Save weights with model.state_dict().")
    return {k.removeprefix("module."): v for k, v in state.items()}


def load_weights_file(model: nn.Module, path: Path) -> None:
    """Load backbone weights from a file, ignoring classifier-head tensors; mismatches raise CheckpointError."""
    state = read_state_dict(path)
    own = model.state_dict()
    usable = {k: v for k, v in state.items() if k in own}
    shape_errors = [k for k, v in usable.items() if tuple(v.shape) != tuple(own[k].shape)]
    missing = [k for k in own if k not in state and not k.endswith("num_batches_tracked")]
    if shape_errors or missing:
        detail = f"shape mismatches: {shape_errors[:3]}" if shape_errors else f"missing tensors: {missing[:3]}"
        raise CheckpointError(f"Weights in {path} do not fit backbone {type(model).__name__} ({detail}).",
                              "Pass the weights that belong to this --backbone, or pick the matching backbone name.")
    model.load_state_dict(usable, strict=False)


TAP_STRIDES = (8, 16, 32)  # stage outputs a multi-layer head reads: 28, 14 and 7 px grids at 224 px


def default_taps(model: nn.Module) -> list[str]:
    """Stage outputs at strides 8, 16 and 32 (timm feature_info), shallow to deep; [] when the model has no
    convolutional stages to tap (transformers), where the head reads the pooled final features."""
    info = getattr(model, "feature_info", None)
    if hasattr(model, "num_prefix_tokens") or not isinstance(info, list):
        return []
    by_stride: dict[int, str] = {}
    for f in info:
        if isinstance(f, dict) and int(f.get("reduction", 0)) in TAP_STRIDES:
            by_stride[int(f["reduction"])] = f["module"]  # the last module at each stride
    return [by_stride[s] for s in sorted(by_stride)] if len(by_stride) > 1 else []
