"""Multimodal Finer-CAM: text embeddings act as head rows, so a prompt is explained against a generic prompt."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from pipeline.cam.engine import CamRequest, CamResult, run
from pipeline.cam.targets import per_image
from pipeline.models.classifier import ZeroShotClassifier
from traits.errors import BadValueError, ConflictingOptionsError


class PromptHead(nn.Module):
    """A zero-shot classifier whose classes are the given prompts: logits = scale * cos(image, text)."""

    def __init__(self, classifier: ZeroShotClassifier, prompts: Sequence[str]) -> None:
        super().__init__()
        self.clf = classifier
        self.prompts = list(prompts)
        self.register_buffer("weights", classifier.encode_text(self.prompts), persistent=False)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.clf.logit_scale * self.clf.image_embeddings(images) @ self.weights.t()


def explain_text(classifier: ZeroShotClassifier, images, prompt: str | Sequence[str],
                 contrast_prompt: str = "a photo of an organism", gamma: float = 0.6, method: str = "finer",
                 layer: str | None = None) -> CamResult:
    """Where the image matches `prompt` more than `contrast_prompt` (one prompt, or one per image).

    target_idx / reference_idx index the list [unique prompts..., contrast_prompt]."""
    if not isinstance(classifier, ZeroShotClassifier):
        raise ConflictingOptionsError(f"explain_text needs a zero-shot (CLIP-style) classifier, got {type(classifier).__name__}.",
                          "Load an open_clip model, e.g. load_classifier on a zero-shot model folder.")
    x = classifier.prepare(images)
    prompts = per_image(prompt, x.shape[0], "prompt", allow_shared_list=False)
    if not all(isinstance(p, str) and p.strip() for p in prompts + [contrast_prompt]):
        raise BadValueError("Prompts must be non-empty strings.", "Pass e.g. prompt='orange band on the forewing'.")
    vocab = list(dict.fromkeys(prompts + [contrast_prompt]))
    if contrast_prompt in prompts:
        raise ConflictingOptionsError(f"The prompt equals the contrast prompt {contrast_prompt!r}.", "Use a different prompt.")
    head = PromptHead(classifier, vocab)
    req = CamRequest(method=method, target=[vocab.index(p) for p in prompts], contrast=vocab.index(contrast_prompt),
                     gamma=gamma, references=1, layer=layer or f"clf.{classifier.default_cam_layer()}")
    return run(head, x, [req], int, lambda: f"clf.{classifier.default_cam_layer()}")[0]
