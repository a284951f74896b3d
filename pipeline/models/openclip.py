"""open_clip models from one string: a hub id, a local folder, an architecture plus a checkpoint, or random init.

Accepted specs (resolved here and nowhere else):
  hf-hub:imageomics/bioclip       hub id (needs the network or a warm Hugging Face cache)
  /path/to/folder                 a folder with open_clip_config.json and open_clip_model.safetensors / .bin
  ViT-B-16@/path/to/weights.pt    an open_clip architecture name and a local checkpoint file
  ViT-B-16/openai                 an architecture with an open_clip pretrained tag (downloads)
  random:ViT-B-16                 random weights (tests, timing, smoke runs only)
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from pipeline.models.backbones import refused_pickle
from pipeline.models.preprocess import Preprocess
from traits.errors import (
    CheckpointError,
    ConfigError,
    MissingValueError,
    ModelUnavailableError,
    PathError,
    UnknownChoiceError,
)

BIOCLIP = "hf-hub:imageomics/bioclip"


@dataclass
class OpenClipBundle:
    """An open_clip model with its tokenizer, preprocessing and the spec it came from."""

    model: nn.Module
    tokenizer: object
    preprocess: Preprocess
    model_id: str


def _offline_fix(spec: str) -> str:
    repo = spec.removeprefix("hf-hub:")
    return ("On a connected machine run `huggingface-cli download " + repo + " --local-dir DIR`, copy DIR here and "
            "pass that folder instead of the hub id (e.g. --scorer openclip:DIR). Offline, the 'color' scorer "
            "needs no weights.")


def load_open_clip(spec: str, device: torch.device | str = "cpu") -> OpenClipBundle:
    """Create an open_clip model, tokenizer and preprocessing from a spec (see module docstring)."""
    import open_clip  # heavy: only when a CLIP model is used

    spec = str(spec).strip()
    if not spec:
        raise MissingValueError("Empty open_clip model spec.", f"Pass a hub id such as {BIOCLIP} or a local folder.")
    try:
        if spec.startswith("random:"):
            arch = spec.removeprefix("random:")
            model = open_clip.create_model(arch, pretrained=None, device=device, pretrained_text=False)
            tokenizer = open_clip.get_tokenizer(arch)
        elif spec.startswith("hf-hub:"):
            model = open_clip.create_model(spec, device=device)
            tokenizer = open_clip.get_tokenizer(spec)
        elif Path(spec).is_dir():
            local = f"local-dir:{Path(spec).resolve()}"
            model = open_clip.create_model(local, device=device)
            tokenizer = open_clip.get_tokenizer(local)
        elif "@" in spec:
            arch, weights = spec.split("@", 1)
            if not Path(weights).is_file():
                raise ModelUnavailableError(f"Checkpoint {weights} does not exist.", "Check the path after '@'.")
            model = open_clip.create_model(arch, pretrained=weights, device=device, pretrained_text=False)
            tokenizer = open_clip.get_tokenizer(arch)
        elif "/" in spec and spec.split("/", 1)[0] in open_clip.list_models():
            arch, tag = spec.split("/", 1)
            model = open_clip.create_model(arch, pretrained=tag, device=device)
            tokenizer = open_clip.get_tokenizer(arch)
        elif Path(spec).exists():
            raise PathError(f"{spec} is a file; open_clip needs to know its architecture.",
                              f"Pass ARCH@{spec} (e.g. ViT-B-16@{spec}) or a folder with open_clip_config.json.")
        else:
            raise PathError(f"Cannot resolve open_clip model {spec!r}.",
                              f"Pass a hub id ({BIOCLIP}), a local folder, ARCH@CHECKPOINT or random:ARCH.")
    except (ConfigError, ModelUnavailableError):
        raise
    except Exception as exc:  # noqa: BLE001 - sorted below: refused pickles, unknown names, offline hubs
        _raise_load_error(spec, exc)
    model.eval()
    return OpenClipBundle(model=model, tokenizer=tokenizer, preprocess=preprocess_of(model), model_id=spec)


def _is_local(spec: str) -> bool:
    """True when the spec names files on this machine (a folder or ARCH@FILE): a download is no fix for those."""
    return Path(spec).exists() or ("@" in spec and Path(spec.split("@", 1)[1]).exists())


def _raise_load_error(spec: str, exc: Exception) -> None:
    refused = refused_pickle(spec.split("@", 1)[1] if "@" in spec else spec, exc)
    if refused is not None:
        raise refused from exc
    if _is_local(spec) and not (isinstance(exc, RuntimeError) and "Model config for" in str(exc)):
        raise CheckpointError(f"Could not load the open_clip model in {spec} ({type(exc).__name__}: "
                              f"{str(exc)[:300]}).",
                              "Check that the folder holds open_clip_config.json and its weights, or that the "
                              "architecture before '@' matches the checkpoint file.") from exc
    if isinstance(exc, RuntimeError) and ("Model config for" in str(exc) or "not found" in str(exc).lower()):
        raise UnknownChoiceError(f"Unknown open_clip architecture in {spec!r} ({exc}).",
                                 "See open_clip.list_models() for the names.") from exc
    # Hub and network errors come in many types.
    raise ModelUnavailableError(f"Could not load open_clip model {spec!r} ({type(exc).__name__}: {str(exc)[:300]}).",
                                _offline_fix(spec)) from exc


def preprocess_of(model: nn.Module) -> Preprocess:
    """The model's own preprocessing: image size, mean, std, interpolation from its preprocess_cfg."""
    cfg = getattr(getattr(model, "visual", model), "preprocess_cfg", {}) or {}
    size = cfg.get("size", getattr(model.visual, "image_size", 224))
    if isinstance(size, int):
        size = (size, size)
    return Preprocess(size=tuple(size), mean=tuple(cfg.get("mean", (0.48145466, 0.4578275, 0.40821073))),
                      std=tuple(cfg.get("std", (0.26862954, 0.26130258, 0.27577711))),
                      interpolation=cfg.get("interpolation", "bicubic"))
