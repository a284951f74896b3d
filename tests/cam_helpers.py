"""Tiny models shared by the CAM tests (random weights, no downloads)."""

from __future__ import annotations

import copy

import torch
from torch import nn

from pipeline.models import LinearProbeClassifier, Preprocess, create_backbone

SPECIES = ["Vanessa atalanta", "Vanessa cardui", "Danaus plexippus", "Pieris rapae", "Papilio machaon"]
COMMON = ["Red Admiral", "Painted Lady", "Monarch", "Small White", None]


def _head(k: int, scale: float, seed: int) -> nn.Linear:
    gen = torch.Generator().manual_seed(seed)
    head = nn.Linear(k, len(SPECIES))
    with torch.no_grad():
        head.weight.copy_(torch.randn(len(SPECIES), k, generator=gen) * scale / k ** 0.5)
        head.bias.zero_()
    return head


def tiny_cnn(seed: int = 0) -> LinearProbeClassifier:
    """resnet10t (random weights) + a 5-species linear head."""
    torch.manual_seed(seed)
    bb = create_backbone("resnet10t", weights="random")
    pre = Preprocess(size=(64, 64))
    return LinearProbeClassifier(bb.model, _head(bb.num_features, 4.0, seed), SPECIES, COMMON, pre).eval()


def tiny_multilayer(seed: int = 0) -> LinearProbeClassifier:
    """resnet10t (random weights) + a linear head on the pooled outputs of layer2, layer3 and layer4."""
    from pipeline.models.classifier import tap_channels

    torch.manual_seed(seed)
    bb = create_backbone("resnet10t", weights="random")
    taps = ["layer2", "layer3", "layer4"]
    channels = tap_channels(bb.model, taps, (64, 64))
    head = _head(sum(channels), 4.0, seed)
    return LinearProbeClassifier(bb.model, head, SPECIES, COMMON, Preprocess(size=(64, 64)), taps, channels).eval()


def tiny_vit(seed: int = 0, img_size: tuple[int, int] = (32, 48)) -> LinearProbeClassifier:
    """A 2-block ViT on a non-square 4x6 patch grid (random weights) + a linear head."""
    from timm.models.vision_transformer import VisionTransformer

    torch.manual_seed(seed)
    vit = VisionTransformer(img_size=img_size, patch_size=8, embed_dim=48, depth=2, num_heads=2, num_classes=0,
                            global_pool="avg", class_token=True, reg_tokens=2)
    pre = Preprocess(size=img_size)
    return LinearProbeClassifier(vit, _head(48, 1.0, seed), SPECIES, COMMON, pre).eval()


def unfrozen(clf: nn.Module) -> nn.Module:
    """A copy whose parameters require grad: pytorch-grad-cam only sees gradients of trainable models."""
    other = copy.deepcopy(clf)
    for p in other.parameters():
        p.requires_grad_(True)
    return other


def images(n: int, size: tuple[int, int], seed: int = 0) -> torch.Tensor:
    """Smooth random 'photos' (normalised), so maps have structure."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 3, size[0] // 8, size[1] // 8, generator=gen)
    return torch.nn.functional.interpolate(x, size=size, mode="bilinear", align_corners=False) * 1.5


def tiny_zero_shot(seed: int = 0):
    """A ZeroShotClassifier on a 2-layer open_clip CLIP (random weights, 32 px, 4x4 patch grid)."""
    import open_clip

    from pipeline.models import ZeroShotClassifier
    from pipeline.models.openclip import preprocess_of

    torch.manual_seed(seed)
    model = open_clip.CLIP(embed_dim=32, vision_cfg=dict(layers=2, width=64, head_width=32, patch_size=8, image_size=32),
                           text_cfg=dict(context_length=16, vocab_size=49408, width=32, heads=2, layers=1))
    tokenizer = open_clip.tokenizer.SimpleTokenizer(context_length=16)
    return ZeroShotClassifier(model, tokenizer, SPECIES[:3], COMMON[:3], preprocess_of(model)).eval()
