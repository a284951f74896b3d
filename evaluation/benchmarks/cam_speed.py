"""Speed of the describe workload (per image: Grad-CAM, Finer A-vs-B, Finer B-vs-A) against pytorch-grad-cam.

python -m evaluation.benchmarks.cam_speed [--quick] [--images N] [--device cpu]

Each CNN runs twice: with a pooled head (Finer-CAM at the last layer) and with the default multi-layer head
(Finer over Layer-CAM at the three taps, combined RefineCAM-style; grad-cam: RefineCAM with a LayerCAM base).

Random weights (timing only). Ours: one explain_many call; theirs: grad-cam 1.5.7 as documented, one batched
call per map type (GradCAM, FinerCAM with FinerWeightedTarget twice). Everything runs in this one process, so
the ratios are comparable even on a loaded machine."""

from __future__ import annotations

import argparse
import copy
import time

import numpy as np
import torch
from torch import nn

from pipeline.cam import CamRequest, explain_many
from pipeline.cam.reshape import GridReshape, token_layout
from pipeline.models import LinearProbeClassifier, create_backbone
from pipeline.models.backbones import default_taps
from pipeline.models.classifier import tap_channels

NUM_CLASSES = 10


def _classifier(arch: str, device: str, multilayer: bool = False) -> LinearProbeClassifier:
    torch.manual_seed(0)
    bb = create_backbone(arch, weights="random")
    names = [f"Species {i}" for i in range(NUM_CLASSES)]
    taps = default_taps(bb.model) if multilayer else []
    channels = tap_channels(bb.model, taps, bb.preprocess.size)
    head = nn.Linear(sum(channels) if taps else bb.num_features, NUM_CLASSES)
    return LinearProbeClassifier(bb.model, head, names, None, bb.preprocess, taps, channels).to(device).eval()


def _timed(fn, repeats: int) -> tuple[float, object]:
    best, out = float("inf"), None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def bench(arch: str, n: int, device: str, repeats: int, their_repeats: int, fast_off: bool,
          multilayer: bool = False) -> list[dict]:
    """Rows of timings (seconds per image) for one architecture."""
    from pytorch_grad_cam import FinerCAM, GradCAM, LayerCAM, RefineCAM
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget, FinerWeightedTarget

    clf = _classifier(arch, device, multilayer)
    finer = "finer-refine-layercam" if multilayer else "finer"
    x = torch.randn(n, 3, 224, 224, device=device)
    layer = clf.default_cam_layer()
    with torch.no_grad():
        logits = clf(x)
    top2 = logits.topk(2, dim=1).indices.cpu()
    a, b = top2[:, 0].tolist(), top2[:, 1].tolist()
    reqs = [CamRequest("gradcam", target=a), CamRequest(finer, target=a, contrast=b),
            CamRequest(finer, target=b, contrast=a)]

    def forward():
        with torch.no_grad():
            return clf(x)

    def ours(fast=None):
        return explain_many(clf, x, reqs, fast=fast)

    theirs_model = copy.deepcopy(clf)
    for p in theirs_model.parameters():  # grad-cam only sees gradients of trainable models (its normal use)
        p.requires_grad_(True)
    target_layer = [dict(theirs_model.named_modules())[layer]]
    reshape = GridReshape((224, 224), *token_layout(clf, layer)) if "vit" in arch else None

    def theirs():
        maps = []
        with GradCAM(theirs_model, target_layer, reshape_transform=reshape) as cam:
            maps.append(cam(x, [ClassifierOutputTarget(t) for t in a]))
        if multilayer:  # Finer targets explained at every tap by a LayerCAM base, combined as RefineCAM does
            mods = dict(theirs_model.named_modules())
            cam = RefineCAM(theirs_model, [mods[ly] for ly in clf.cam_layers()], base_method=LayerCAM)
            maps.append(cam(x, [FinerWeightedTarget(t, [c], 0.6) for t, c in zip(a, b, strict=True)]))
            maps.append(cam(x, [FinerWeightedTarget(t, [c], 0.6) for t, c in zip(b, a, strict=True)]))
            for base in cam.base_cam_per_layer:
                base.activations_and_grads.release()
            return maps
        with FinerCAM(theirs_model, target_layer, reshape_transform=reshape) as cam:
            maps.append(cam(x, [FinerWeightedTarget(t, [c], 0.6) for t, c in zip(a, b, strict=True)]))
            maps.append(cam(x, [FinerWeightedTarget(t, [c], 0.6) for t, c in zip(b, a, strict=True)]))
        return maps

    paths = [("fast" if fast_off else "gradient", None)] + ([("gradient (fast off)", False)] if fast_off else [])
    forward(), ours(), ours(False)  # warm-up (allocator, lazy init)
    # Interleaved best-of-R, so load changes on a shared machine hit every variant alike.
    best = {"forward": float("inf"), **{label: float("inf") for label, _ in paths}}
    outs = {}
    for _ in range(repeats):
        best["forward"] = min(best["forward"], _timed(forward, 1)[0])
        for label, fast in paths:
            t, outs[label] = _timed(lambda fast=fast: ours(fast), 1)
            best[label] = min(best[label], t)
    t_fwd = best["forward"]
    t_theirs, their_maps = _timed(theirs, their_repeats)
    rows = []
    for label, _ in paths:
        t_ours, our_maps = best[label], outs[label]
        diff = max(float(np.abs(o.maps.numpy() - t).max()) for o, t in zip(our_maps, their_maps, strict=True))
        rows.append(dict(model=arch + (" multilayer" if multilayer else ""), path=label, layer=layer,
                         ours=t_ours / n, theirs=t_theirs / n,
                         forward=t_fwd / n, max_diff=diff))
    return rows


def main(argv: list[str] | None = None) -> None:
    """Run the benchmark and print one line per (model, path)."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="4 images, one repeat")
    ap.add_argument("--images", type=int, default=16)
    ap.add_argument("--repeats", type=int, default=3, help="best of R runs for ours and the plain forward")
    ap.add_argument("--their-repeats", type=int, default=1, help="best of R runs for grad-cam (slow)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--models", default="tf_efficientnet_lite0,vit_base_patch16_224")
    args = ap.parse_args(argv)
    n = 4 if args.quick else args.images
    if args.quick:
        args.repeats = 2
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, device {args.device}, {n} images 224 px, "
          f"3 maps per image, best of {args.repeats} (grad-cam: {args.their_repeats})")
    header = f"{'model':24s} {'path':20s} {'ours ms/img':>11s} {'grad-cam ms/img':>15s} {'ours/theirs':>11s} " \
             f"{'fwd ms/img':>10s} {'ours/fwd':>8s} {'max|diff|':>9s}"
    print(header)
    runs = [(arch, ml) for arch in args.models.split(",") for ml in ((False, True) if "vit" not in arch else (False,))]
    for arch, ml in runs:
        for r in bench(arch, n, args.device, args.repeats, args.their_repeats, fast_off="efficientnet" in arch,
                       multilayer=ml):
            print(f"{r['model']:24s} {r['path']:20s} {r['ours'] * 1e3:11.1f} {r['theirs'] * 1e3:15.1f} "
                  f"{r['ours'] / r['theirs']:11.3f} {r['forward'] * 1e3:10.1f} {r['ours'] / r['forward']:8.2f} "
                  f"{r['max_diff']:9.1e}", flush=True)


if __name__ == "__main__":
    main()
