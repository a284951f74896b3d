"""Model directories: the trained head as safetensors plus a JSON card; load_classifier restores them exactly."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from pipeline.device import resolve_device
from pipeline.models.backbones import create_backbone
from pipeline.models.classifier import Classifier, LinearProbeClassifier, ZeroShotClassifier
from pipeline.models.openclip import load_open_clip
from pipeline.models.preprocess import Preprocess
from traits.errors import CheckpointError
from traits.io import atomic_write, make_folder, strict_json, write_json_atomic
from traits.version import __version__

CARD = "card.json"
HEAD = "head.safetensors"
CARD_FORMAT = 1


def save_classifier(classifier: Classifier, model_dir: str | Path, card: dict | None = None) -> Path:
    """Save a classifier to MODEL_DIR (head.safetensors + card.json) and return the folder."""
    out = make_folder(model_dir, "model folder")
    full = {**classifier.card, **(card or {})}
    full.update(format=CARD_FORMAT, kind=classifier.kind, class_names=classifier.class_names,
                common_names=classifier.common_names, preprocess=classifier.preprocess.to_dict(),
                package_version=__version__)
    if isinstance(classifier, LinearProbeClassifier):
        tensors = {"weight": classifier.head.weight.detach().cpu().contiguous(),
                   "bias": classifier.head.bias.detach().cpu().contiguous()}
    elif isinstance(classifier, ZeroShotClassifier):
        tensors = {"text_weights": classifier.text_weights.detach().cpu().contiguous()}
        full.update(model_id=classifier.model_id, templates=classifier.templates)
    else:
        raise TypeError(f"cannot save a {type(classifier).__name__}")
    atomic_write(out / HEAD, lambda tmp: save_file(tensors, str(tmp)))
    write_json_atomic(out / CARD, strict_json(full))  # strict JSON: NaN accuracies become null
    classifier.card = full
    return out


def read_card(model_dir: str | Path) -> dict:
    """The JSON card of a model directory, with a clear error when it is not one."""
    path = Path(model_dir)
    if not path.is_dir():
        raise CheckpointError(f"Model directory {path} does not exist.",
                              "Train one with `finer-traits train DATA --out MODEL_DIR`, or check the path.")
    if not (path / CARD).is_file() or not (path / HEAD).is_file():
        raise CheckpointError(f"{path} is not a finer-traits model directory (needs {CARD} and {HEAD}).",
                              "Pass the --out folder of `finer-traits train`.")
    try:
        card = json.loads((path / CARD).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{path / CARD} cannot be read ({exc}).", "Re-train or restore the model folder.") from exc
    if not isinstance(card, dict):
        raise CheckpointError(f"{path / CARD} holds a JSON {type(card).__name__}, not a model card object.",
                              "Re-train or restore the model folder.")
    for key in ("kind", "class_names", "preprocess"):
        if key not in card:
            raise CheckpointError(f"{path / CARD} lacks the field {key!r}.", "Re-train or restore the model folder.")
    _check_card_types(card, path / CARD)
    return card


def _check_card_types(card: dict, where: Path) -> None:
    """A hand-edited card must fail here, naming the field, rather than deep inside torch or timm."""
    def bad(field: str, expected: str) -> CheckpointError:
        return CheckpointError(f"{where}: the field {field!r} should be {expected}, not {card_value(field)!r}.",
                               "Restore card.json from the model folder's backup, or re-train the model.")

    def card_value(field: str) -> object:
        value: object = card
        for part in field.split("."):
            value = value.get(part) if isinstance(value, dict) else None
        text = repr(value)
        return text if len(text) < 80 else text[:77] + "..."

    names = card["class_names"]
    if not isinstance(card["kind"], str):
        raise bad("kind", "a string")
    if not isinstance(names, list) or not names or not all(isinstance(n, str) and n.strip() for n in names):
        raise bad("class_names", "a non-empty list of species names")
    if len(set(names)) != len(names):
        raise bad("class_names", "a list of distinct species names")
    commons = card.get("common_names")
    if commons is not None and (not isinstance(commons, list) or len(commons) != len(names)
                                or not all(c is None or isinstance(c, str) for c in commons)):
        raise bad("common_names", f"a list of {len(names)} names (or nulls)")
    if not isinstance(card["preprocess"], dict):
        raise bad("preprocess", "an object (size, mean, std, interpolation)")
    backbone = card.get("backbone")
    if backbone is not None:
        if not isinstance(backbone, dict):
            raise bad("backbone", "an object")
        for key in ("name", "weights"):
            if key in backbone and not isinstance(backbone[key], str):
                raise bad(f"backbone.{key}", "a string")
        size = backbone.get("image_size")
        if size is not None and (isinstance(size, bool) or not isinstance(size, int)):
            raise bad("backbone.image_size", "a whole number or null")
    if "model_id" in card and not isinstance(card["model_id"], str):
        raise bad("model_id", "a string")
    templates = card.get("templates")
    if templates is not None and (not isinstance(templates, list) or not all(isinstance(t, str) for t in templates)):
        raise bad("templates", "a list of strings")


def load_classifier(model_dir: str | Path, device: str | torch.device = "auto") -> Classifier:
    """Restore a classifier saved by save_classifier (identical logits)."""
    path = Path(model_dir)
    card = read_card(path)
    try:
        tensors = load_file(str(path / HEAD))
    except Exception as exc:  # safetensors reports damaged files as SafetensorError, OSError or ValueError
        raise CheckpointError(f"{path / HEAD} is damaged ({exc}).", "Re-train or restore the model folder.") from exc
    dev = resolve_device(device)
    try:
        preprocess = Preprocess.from_dict(card["preprocess"])
    except (KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(f"{path / CARD}: the field 'preprocess' is not valid ({type(exc).__name__}: {exc}).",
                              "Restore card.json from a backup, or re-train the model.") from exc
    n = len(card["class_names"])
    if card["kind"] == LinearProbeClassifier.kind:
        bcard = card.get("backbone", {})
        backbone = create_backbone(bcard.get("name", "efficientnet_lite0"), weights=bcard.get("weights", "default"),
                                   image_size=bcard.get("image_size"))
        hcard = card.get("head") or {}
        taps, channels = list(hcard.get("taps") or []), list(hcard.get("tap_channels") or [])
        dim = sum(channels) if taps else backbone.num_features
        weight, bias = tensors.get("weight"), tensors.get("bias")
        if (weight is None or bias is None or weight.shape != (n, dim) or bias.shape != (n,)
                or len(taps) != len(channels)):
            got = tuple(weight.shape) if weight is not None else None
            raise CheckpointError(f"Head in {path} has shape {got}; expected ({n}, {dim}) for "
                                  f"backbone {bcard.get('name')!r}, taps {taps} and {n} species.",
                                  "The card and the weights do not belong together: re-train the model.")
        head = nn.Linear(weight.shape[1], n)
        with torch.no_grad():
            head.weight.copy_(weight)
            head.bias.copy_(bias)
        clf: Classifier = LinearProbeClassifier(backbone.model, head, card["class_names"], card.get("common_names"),
                                                preprocess, taps, channels)
    elif card["kind"] == ZeroShotClassifier.kind:
        bundle = load_open_clip(card["model_id"], device="cpu")
        clf = ZeroShotClassifier(bundle.model, bundle.tokenizer, card["class_names"], card.get("common_names"),
                                 preprocess, templates=card.get("templates"), model_id=card["model_id"])
        if "text_weights" in tensors and tensors["text_weights"].shape == clf.text_weights.shape:
            clf.text_weights = tensors["text_weights"]
    else:
        raise CheckpointError(f"Unknown classifier kind {card['kind']!r} in {path / CARD}.",
                              "This model folder was written by a newer finer-traits; upgrade the package.")
    clf.card = card
    clf.model_dir = path
    return clf.to(dev).eval()
