"""Public entry points for classifiers: explain (one map per image) and explain_many (several, shared passes)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from pipeline.cam.engine import CamRequest, CamResult, parse_method, run
from pipeline.models.classifier import Classifier
from traits.errors import ConflictingOptionsError, MissingValueError

FALLBACK_METHOD = "finer"  # models trained before the card recorded a measured default (pooled heads)


def default_method(classifier: Classifier) -> str:
    """The Finer method this model's card names as its measured default (`cam.method`), else plain Finer-CAM."""
    return str((getattr(classifier, "card", None) or {}).get("cam", {}).get("method") or FALLBACK_METHOD)


def plain_method(method: str) -> str:
    """The plain method a Finer method contrasts with ('finer' -> 'gradcam', 'finer-X' -> 'X')."""
    name = parse_method(method)[0]
    return "gradcam" if name == "finer" else name.removeprefix("finer-")


def _check(classifier) -> None:
    if not isinstance(classifier, Classifier):
        raise ConflictingOptionsError(f"explain needs a finer-traits Classifier, got {type(classifier).__name__}.",
                          "Load one with pipeline.models.load_classifier(MODEL_DIR).")


def explain_many(classifier: Classifier, images, requests: Sequence[CamRequest | Mapping],
                 layer: str | Sequence[str] | None = None, fast: bool | None = None,
                 keep: Sequence[str] = ()) -> list[CamResult]:
    """Several maps per image (e.g. Grad-CAM, Finer A-vs-B, Finer B-vs-A) from one forward pass and at most
    one batched backward pass. requests: CamRequest objects or dicts of explain()'s keyword arguments; keep:
    layers whose activation grids the results also carry (CamResult.activations)."""
    _check(classifier)
    reqs = [r if isinstance(r, CamRequest) else CamRequest(**dict(r)) for r in requests]
    if not reqs:
        raise MissingValueError("No CAM requests were given.", "Pass at least one CamRequest.")
    if layer is not None:
        reqs = [r if r.layer is not None else CamRequest(**{**r.__dict__, "layer": layer}) for r in reqs]
    x = classifier.prepare(images)
    return run(classifier, x, reqs, classifier.index, classifier.default_cam_layer, fast=fast, keep=keep)


def explain(classifier: Classifier, images, target=None, contrast=None, method: str = "finer",
            gamma: float = 0.6, references: int = 3, weighting: str = "uniform",
            layer: str | Sequence[str] | None = None, fast: bool | None = None, seed: int | None = None) -> CamResult:
    """Class activation maps for a batch of images (paths, PIL images or a normalised tensor batch).

    target / contrast: class index, species name, or one per image; target None = the predicted class,
    contrast None = the `references` top-ranked classes after the target. fast=False forces the gradient path."""
    req = CamRequest(method=method, target=target, contrast=contrast, gamma=gamma, references=references,
                     weighting=weighting, layer=layer, seed=seed)
    return explain_many(classifier, images, [req], fast=fast)[0]

