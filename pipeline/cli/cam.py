"""`finer-traits cam`: photo | Grad-CAM | Finer-CAM side by side, for one photo and a species pair."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

import pipeline
from pipeline.cli import app

console = Console()


@app.command("cam")
def cam(
    image: Annotated[Path, typer.Argument(help="Photo to explain (jpg, png, ...).")],
    model: Annotated[Path, typer.Option("--model", "-m", help="Model folder written by `finer-traits train`.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="PNG to write (photo | Grad-CAM | Finer-CAM).")],
    target: Annotated[str | None, typer.Option(help="Species to explain (scientific or common name, or class "
                                                       "index). Default: the predicted species.")] = None,
    contrast: Annotated[str | None, typer.Option(help="Similar species to contrast with. Default: the top "
                                                         "--references species after the target.")] = None,
    method: Annotated[str | None, typer.Option(help="finer, finer-gradcam++, finer-layercam, finer-scorecam, "
                                                    "finer-refinecam, finer-refine-layercam (or a plain method). "
                                                    "Default: the model card's measured default.")] = None,
    gamma: Annotated[float, typer.Option(min=0.0, help="Contrast strength (0 = plain Grad-CAM; paper: 0.6).")] = 0.6,
    references: Annotated[int, typer.Option(min=1, help="References when no --contrast is given.")] = 3,
    weighting: Annotated[str, typer.Option(help="'uniform' (paper) or 'softmax' (authors' code).")] = "uniform",
    layer: Annotated[str | None, typer.Option(help="CAM layer (module name); default: the model's own.")] = None,
    device: Annotated[str, typer.Option(help="'auto', 'cpu', 'cuda', 'cuda:N' or 'mps'.")] = "auto",
) -> None:
    """Write a panel that shows where the photo looks like TARGET rather than CONTRAST."""
    from pipeline.cam.render import (  # torch: loaded when the command runs
        outline,
        overlay,
        panel,
        save_image_atomic,
    )

    if method is not None:
        pipeline.parse_method(method)  # a typo fails before the model loads
    clf = pipeline.load_classifier(model, device=device)
    name = pipeline.parse_method(method or pipeline.default_method(clf))[0]
    photo = pipeline.load_image(image)

    def spec(s: str | None):
        return int(s) if s is not None and s.strip().isdigit() else s

    reqs = [pipeline.CamRequest(method=pipeline.plain_method(name), target=spec(target), layer=layer),
            pipeline.CamRequest(method=name, target=spec(target), contrast=spec(contrast), gamma=gamma,
                       references=references, weighting=weighting, layer=layer)]
    plain, fine = pipeline.explain_many(clf, [photo], reqs)
    probs = clf.probabilities(fine.logits)[0]  # calibrated; the maps explain the raw logits
    t = int(fine.target_idx[0])
    refs = [int(r) for r in fine.reference_idx[0] if r >= 0]
    vs = ", ".join(clf.label(r) for r in refs)
    pred = int(probs.argmax())
    title = [f"{clf.label(t)} vs {vs} · {_pretty(name)}, gamma = {gamma:g}",
             f"Predicted: {clf.label(pred)} (p = {probs[pred]:.2f}); p(target) = {probs[t]:.2f}"
             + "".join(f", p({clf.class_names[r]}) = {probs[r]:.2f}" for r in refs)]
    tiles = [(f"{_pretty(plain.method)}: {clf.class_names[t]}", overlay(photo, plain.maps[0])),
             (f"{_pretty(name)}: {clf.class_names[t]} vs {', '.join(clf.class_names[r] for r in refs)}; "
              "outlined: where the map is at least half its peak",
              outline(overlay(photo, fine.maps[0]), fine.maps[0]))]
    # Full resolution: tiles at the photo's own height (at least 320 px so captions fit, at most 768 so a
    # 4000 px phone photo stays viewable).
    path = save_image_atomic(panel(photo, tiles, title, height=max(320, min(photo.height, 768))), out)
    console.print(f"Wrote {path}  ({clf.label(t)} vs {vs}, gamma {gamma:g})")


def _pretty(method: str) -> str:
    names = {"gradcam": "Grad-CAM", "gradcam++": "Grad-CAM++", "layercam": "Layer-CAM", "scorecam": "Score-CAM",
             "refinecam": "RefineCAM", "random": "random map", "finer": "Finer-CAM",
             "refine-gradcam": "RefineCAM (Grad-CAM)", "refine-layercam": "RefineCAM (Layer-CAM)",
             "refine-gradcam++": "RefineCAM (Grad-CAM++)"}
    if method in names:
        return names[method]
    if method.startswith("finer-"):
        return f"Finer-{names.get(method.removeprefix('finer-'), method)}"
    return method
