"""Species classifiers with one small interface: logits, class names, name lookup, preprocessing."""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial

import torch
import torch.nn.functional as F
from torch import nn

from pipeline.calibration import card_temperature
from pipeline.images import ImageSource
from pipeline.models.preprocess import Preprocess
from pipeline.species import SpeciesIndex
from prompts.templates import SPECIES_TEMPLATES, species_prompts
from traits.errors import LayerError


class Classifier(nn.Module):
    """Base class: a module mapping normalised images [N, 3, H, W] to species logits [N, C].

    Subclasses define `forward` and `default_cam_layer`; everything else (names, lookup, preprocessing,
    prediction) is shared.
    """

    kind = "base"

    def __init__(self, class_names: Sequence[str], common_names: Sequence[str | None] | None,
                 preprocess: Preprocess) -> None:
        super().__init__()
        self.species = SpeciesIndex(class_names, common_names)
        self.preprocess = preprocess
        self.card: dict = {}

    @property
    def class_names(self) -> list[str]:
        """Scientific names, in class-index order."""
        return self.species.class_names

    @property
    def common_names(self) -> list[str | None]:
        """Common names (or None), in class-index order."""
        return self.species.common_names

    @property
    def num_classes(self) -> int:
        """Number of species."""
        return len(self.species)

    @property
    def device(self) -> torch.device:
        """Device of the parameters (or buffers)."""
        for t in self.parameters():
            return t.device
        for t in self.buffers():
            return t.device
        return torch.device("cpu")

    def index(self, name: str | int) -> int:
        """Class index from a scientific name, common name or index; unknown names raise with suggestions."""
        return self.species.index(name)

    def label(self, i: int) -> str:
        """Display label 'Scientific name (Common name)'."""
        return self.species.label(i)

    def prepare(self, images: ImageSource | Sequence[ImageSource] | torch.Tensor) -> torch.Tensor:
        """Paths / PIL images / arrays (or an already normalised batch) -> a batch on the model's device."""
        x = images if isinstance(images, torch.Tensor) else self.preprocess(images)
        if x.ndim == 3:
            x = x.unsqueeze(0)
        return x.to(self.device, dtype=torch.float32)

    def logits(self, images: torch.Tensor) -> torch.Tensor:
        """Raw class logits [N, C] for a normalised image batch [N, 3, H, W]."""
        return self(images.to(self.device))

    @property
    def temperature(self) -> float:
        """The card's calibration temperature (1.0 for models trained before calibration)."""
        return card_temperature(self.card)

    def probabilities(self, logits: torch.Tensor) -> torch.Tensor:
        """Calibrated probabilities softmax(logits / T) [N, C]; the logits themselves (what CAMs explain) stay raw."""
        return (logits / self.temperature).softmax(-1)

    @torch.no_grad()
    def predict(self, images: ImageSource | Sequence[ImageSource] | torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(calibrated probabilities [N, C], predicted indices [N]) for images in any accepted form."""
        probs = self.probabilities(self.logits(self.prepare(images)))
        return probs, probs.argmax(-1)

    def default_cam_layer(self) -> str:
        """Dotted module name (relative to this classifier) whose activations CAMs explain by default."""
        raise NotImplementedError

    def extra_repr(self) -> str:
        return f"kind={self.kind!r}, num_classes={self.num_classes}, preprocess={self.preprocess}"


def _keep(store: dict, name: str, module: nn.Module, inputs, output) -> None:
    store[name] = output


def in_forward_order(backbone: nn.Module, taps: Sequence[str]) -> list[str]:
    """The tapped module names without repeats, sorted as the backbone registers (and runs) them."""
    order = {name: i for i, (name, _) in enumerate(backbone.named_modules())}
    return sorted(dict.fromkeys(taps), key=lambda t: order.get(t, -1))


def pooled_features(backbone: nn.Module, taps: Sequence[str], images: torch.Tensor) -> torch.Tensor:
    """Global-average-pooled outputs of the tapped backbone modules, concatenated in order [N, sum K_l];
    with no taps, the backbone's own pooled features [N, D]."""
    if not taps:
        return backbone(images)
    outs = tap_maps(backbone, taps, images)
    return torch.cat([outs[t].float().mean(dim=(-2, -1)) for t in taps], dim=1)


def tap_maps(backbone: nn.Module, taps: Sequence[str], images: torch.Tensor) -> dict[str, torch.Tensor]:
    """The spatial outputs [N, K_l, h_l, w_l] of the tapped backbone modules, keyed by module name."""
    modules = dict(backbone.named_modules())
    missing = [t for t in taps if t not in modules]
    if missing:
        raise LayerError(f"Layer(s) {missing} are not modules of the backbone.",
                          "Name modules as in `model.named_modules()`, e.g. blocks.2,blocks.4,blocks.6.")
    outs: dict[str, torch.Tensor] = {}
    handles = [modules[t].register_forward_hook(partial(_keep, outs, t)) for t in taps]
    try:
        backbone.forward_features(images)
    finally:
        for h in handles:
            h.remove()
    flat = [t for t in taps if outs[t].ndim != 4]
    if flat:
        raise LayerError(f"Layer(s) {flat} do not give a [N, C, H, W] feature map.",
                          "Multi-layer heads need convolutional stages; use --head pooled for transformers.")
    return outs


def tap_channels(backbone: nn.Module, taps: Sequence[str], size: tuple[int, int]) -> list[int]:
    """Channels of each tapped module's output, read off one small forward pass per tap at the input size."""
    probe = torch.zeros(1, 3, *size, device=next(backbone.parameters()).device)
    with torch.no_grad():
        return [pooled_features(backbone, [t], probe).shape[1] for t in taps]


class LinearProbeClassifier(Classifier):
    """A frozen timm backbone followed by one trained linear layer.

    The head reads either the backbone's pooled final features (`taps` empty) or the global-average-pooled
    outputs of several stages (`taps`, a hypercolumn). Either way each logit is a sum over layers of
    w_l . mean_ij A_l[:, i, j], so the map w_l . A_l of every tapped layer is exactly that layer's share of
    the decision: shallow taps make the evidence local, at their own, finer grid.
    """

    kind = "linear_probe"

    def __init__(self, backbone: nn.Module, head: nn.Linear, class_names: Sequence[str],
                 common_names: Sequence[str | None] | None, preprocess: Preprocess,
                 taps: Sequence[str] = (), tap_channels: Sequence[int] = ()) -> None:
        super().__init__(class_names, common_names, preprocess)
        if head.out_features != len(self.species):
            raise ValueError(f"head has {head.out_features} outputs for {len(self.species)} class names")
        if len(taps) != len(tap_channels) or (taps and sum(tap_channels) != head.in_features):
            raise ValueError(f"taps {list(taps)} with channels {list(tap_channels)} do not fit a head reading "
                             f"{head.in_features} features")
        if list(taps) != in_forward_order(backbone, taps):
            # The deepest tap must come last: only there is the head's weight the whole gradient (fast path).
            raise ValueError(f"taps {list(taps)} are not in the backbone's forward order")
        self.backbone = backbone.eval()
        self.head = head
        self.taps = list(taps)
        self.tap_channels = [int(k) for k in tap_channels]
        for p in self.backbone.parameters():
            p.requires_grad_(False)

    def features(self, images: torch.Tensor) -> torch.Tensor:
        """Pooled backbone features [N, D] (what the head sees)."""
        return pooled_features(self.backbone, self.taps, images)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(images))

    def train(self, mode: bool = True) -> LinearProbeClassifier:
        # The backbone stays in eval mode: batch-norm statistics are part of the frozen features.
        super().train(mode)
        self.backbone.eval()
        return self

    def tap_weights(self) -> dict[str, torch.Tensor]:
        """The head's weight columns [C, K_l] that read each tapped layer, keyed by the layer's CAM name."""
        out, start = {}, 0
        for t, k in zip(self.taps, self.tap_channels, strict=True):
            out[f"backbone.{t}"] = self.head.weight[:, start:start + k]
            start += k
        return out

    def cam_layers(self) -> list[str]:
        """Layers a multi-layer map combines, deep to shallow (the taps), or just the default layer."""
        return [f"backbone.{t}" for t in reversed(self.taps)] if self.taps else [self.default_cam_layer()]

    def default_cam_layer(self) -> str:
        """The deepest tap; else the last feature map for CNNs, the input norm of the last block for ViTs."""
        if self.taps:
            return f"backbone.{self.taps[-1]}"
        bb = self.backbone
        if hasattr(bb, "blocks") and hasattr(bb, "num_prefix_tokens"):
            return f"backbone.blocks.{len(bb.blocks) - 1}.norm1"
        for name in ("bn2", "norm_pre", "final_conv", "conv_head"):
            if isinstance(getattr(bb, name, None), nn.Module) and not isinstance(getattr(bb, name), nn.Identity):
                return f"backbone.{name}"
        if hasattr(bb, "stages"):
            return f"backbone.stages.{len(bb.stages) - 1}"
        if hasattr(bb, "layer4"):
            return "backbone.layer4"
        raise NotImplementedError(f"No default CAM layer known for {type(bb).__name__}; pass layer=<module name>.")


class ZeroShotClassifier(Classifier):
    """A CLIP-family model whose head is the normalised text embeddings of the species names."""

    kind = "zero_shot"

    def __init__(self, clip_model: nn.Module, tokenizer, class_names: Sequence[str],
                 common_names: Sequence[str | None] | None, preprocess: Preprocess,
                 templates: Sequence[str] | None = None, model_id: str = "") -> None:
        super().__init__(class_names, common_names, preprocess)
        self.clip = clip_model.eval()
        for p in self.clip.parameters():
            p.requires_grad_(False)
        self.tokenizer = tokenizer
        self.templates = list(templates or SPECIES_TEMPLATES)
        self.model_id = model_id
        scale = getattr(clip_model, "logit_scale", None)
        self.logit_scale = float(scale.exp()) if isinstance(scale, torch.Tensor) else 100.0
        self.register_buffer("text_weights", self._species_embeddings(), persistent=False)

    @torch.no_grad()
    def encode_text(self, texts: Sequence[str]) -> torch.Tensor:
        """L2-normalised text embeddings [T, D]."""
        tokens = self.tokenizer(list(texts)).to(self.device)
        return F.normalize(self.clip.encode_text(tokens).float(), dim=-1)

    def _species_embeddings(self) -> torch.Tensor:
        rows = []
        for sci, common in zip(self.class_names, self.common_names, strict=True):
            emb = self.encode_text(species_prompts(sci, common, self.templates))
            rows.append(F.normalize(emb.mean(0), dim=-1))
        return torch.stack(rows)

    def image_embeddings(self, images: torch.Tensor) -> torch.Tensor:
        """L2-normalised image embeddings [N, D]."""
        return F.normalize(self.clip.encode_image(images).float(), dim=-1)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.logit_scale * self.image_embeddings(images) @ self.text_weights.t()

    def default_cam_layer(self) -> str:
        """The input LayerNorm of the last vision transformer block (Finer-CAM's choice for CLIP ViTs)."""
        visual = self.clip.visual
        if hasattr(visual, "transformer") and hasattr(visual.transformer, "resblocks"):
            return f"clip.visual.transformer.resblocks.{len(visual.transformer.resblocks) - 1}.ln_1"
        if hasattr(visual, "trunk"):  # timm-based open_clip towers
            trunk = visual.trunk
            if hasattr(trunk, "blocks"):
                return f"clip.visual.trunk.blocks.{len(trunk.blocks) - 1}.norm1"
        raise NotImplementedError(f"No default CAM layer known for {type(visual).__name__}; pass layer=<module name>.")
