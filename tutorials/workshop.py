"""Small helpers for the workshop notebook (finer-cam-workshop.ipynb): finding the data, reusing trained models,
and drawing the figures. The notebook itself makes every finer-traits call a reader should learn; this file
only keeps the plotting code out of their way."""

from __future__ import annotations

import functools
import json
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch

from pipeline.cam import CamRequest, default_method, explain_many
from pipeline.cam.render import outline, overlay
from pipeline.images import load_image
from pipeline.paths import cub_root, data_root, leeds_root
from traits.errors import DatasetError

# Set by tutorials/run_notebook.py: no widget frontend is attached, so interactive widgets are left out.
BATCH_ENV = "FINER_TRAITS_TUTORIAL_BATCH"


class WorkshopData(NamedTuple):
    """The three data folders the workshop reads."""

    leeds: Path
    cub_photos: Path
    cub_attributes: Path


def find_data() -> WorkshopData:
    """The workshop's data folders, found the way the package finds them (FINER_TRAITS_DATA, else ../shared/data)."""
    root = data_root()
    leeds, cub = leeds_root(), cub_root()
    photos = root / "cub-photos" if root else None
    missing = [name for name, path in (("leeds-butterflies", leeds), ("cub-attributes", cub)) if path is None]
    if photos is None or not (photos / "manifest.csv").is_file():
        missing.append("cub-photos")
    if missing:
        where = f"in {root}" if root else "(no data folder found)"
        raise DatasetError(
            f"The workshop data is missing {where}: {', '.join(missing)}.",
            "Set the environment variable FINER_TRAITS_DATA to the folder that holds leeds-butterflies/, "
            "cub-photos/ and cub-attributes/ (e.g. export FINER_TRAITS_DATA=/path/to/shared/data), then restart "
            "the kernel and run the notebook again.")
    return WorkshopData(leeds, photos, cub)


def tutorial_folder() -> Path:
    """The tutorials/ folder, whether the kernel started there (Jupyter) or at the repository root."""
    here = Path.cwd()
    return here if (here / "finer-cam-workshop.ipynb").is_file() else here / "tutorials"


def trained_model(model_dir: Path, data: Path, **train_args: Any) -> Path:
    """Train a classifier into model_dir, or reuse the one already there when it was trained on the same data."""
    from pipeline.train import train_classifier

    card = model_dir / "card.json"
    if card.is_file() and (model_dir / "head.safetensors").is_file():
        if json.loads(card.read_text()).get("training", {}).get("data") == str(data):
            print(f"Reusing the classifier trained earlier in {model_dir}.")
            return model_dir
    if os.environ.get(BATCH_ENV):  # a notebook progress bar would stay frozen at 0 % in the written copy
        from tqdm.std import tqdm

        import pipeline.train

        pipeline.train.tqdm = functools.partial(tqdm, disable=True)
    report = train_classifier(data, model_dir, **train_args)
    print(f"Trained on {report.n_train} photos of {len(report.species)} species in {report.seconds:.0f} s.")
    return model_dir


def family_manifest(cub_photos: Path, family: str, out: Path) -> Path:
    """A manifest of one CUB family's photos (absolute image paths), written to out for a small bird classifier."""
    frame = pd.read_csv(cub_photos / "manifest.csv")
    frame = frame[frame["family"] == family].copy()
    if frame.empty:
        raise DatasetError(f"No CUB photos of the family {family!r}.", "Pick a family from the manifest's 'family' column.")
    frame["image"] = [str((cub_photos / p).resolve()) for p in frame["image"]]
    out.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(out, index=False)
    return out


def accuracy_line(model_dir: Path) -> str:
    """The test accuracy with its 95 % Wilson interval, from the model card."""
    card = json.loads((model_dir / "card.json").read_text())
    iv = card.get("accuracy_interval") or {}
    n = card["training"]["n_test"]
    return (f"Test accuracy {card['accuracy']:.1%} on {n} held-out photos "
            f"(95 % interval {iv.get('low', float('nan')):.1%} to {iv.get('high', float('nan')):.1%}).")


def confusion_figure(model_dir: Path, pairs: Sequence[tuple[str, str]] = ()) -> plt.Figure:
    """The test-split confusion matrix (rows: true species, columns: predicted), look-alike pairs boxed."""
    conf = pd.read_csv(model_dir / "confusion.csv", index_col=0)
    fig, ax = plt.subplots(figsize=(7.5, 6.2))
    ax.imshow(conf.to_numpy(), cmap="Blues")
    names = [_short(n) for n in conf.index]
    ax.set_xticks(range(len(names)), names, rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(len(names)), names, fontsize=8)
    top = conf.to_numpy().max()
    for (i, j), v in np.ndenumerate(conf.to_numpy()):
        if v:
            ax.text(j, i, int(v), ha="center", va="center", fontsize=8, color="white" if v > top / 2 else "black")
    for a, b in pairs:
        for i, j in ((list(conf.index).index(a), list(conf.columns).index(b)),
                     (list(conf.index).index(b), list(conf.columns).index(a))):
            ax.add_patch(plt.Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, edgecolor="red", linewidth=2))
    ax.set_xlabel("predicted species")
    ax.set_ylabel("true species")
    ax.set_title("Held-out photos: true vs predicted species\n(red boxes: the look-alike pairs of this workshop)")
    fig.tight_layout()
    return fig


def _short(name: str) -> str:
    """A binomial shortened for titles ('Vanessa atalanta' -> 'V. atalanta'); common names stay whole."""
    parts = name.split()
    return f"{parts[0][0]}. {parts[1]}" if len(parts) == 2 and parts[1].islower() else name


def photos_figure(photos: Sequence[tuple[str, Path]], title: str = "") -> plt.Figure:
    """Photos side by side, each with its caption."""
    fig, axes = plt.subplots(1, len(photos), figsize=(3.4 * len(photos), 3.2))
    for ax, (caption, path) in zip(np.atleast_1d(axes), photos, strict=True):
        ax.imshow(load_image(path))
        ax.set_title(caption, fontsize=10)
        ax.axis("off")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def field_guide(species_csv: Path, species: str) -> str:
    """The field-guide description of one species (species.csv)."""
    table = pd.read_csv(species_csv)
    row = table[table["scientific_name"] == species]
    return str(row.iloc[0]["description"]) if len(row) else ""


def sentences(text: str) -> list[str]:
    """A description split into its sentences (measurements such as '3-3 3/8"' stay with their sentence)."""
    return [s.strip() for s in re.split(r"(?<=[a-z)])\.\s+(?=[A-Z0-9])", text) if s.strip()]


def cam_maps(classifier: Any, photo: Any, target: str, contrast: str, gamma: float = 0.6) -> dict[str, torch.Tensor]:
    """Grad-CAM of the target and Finer-CAM both ways (the maps describe() uses), from one pass of the CAM engine."""
    finer = default_method(classifier)
    plain, ab, ba = explain_many(classifier, photo, [
        CamRequest("gradcam", target=target),
        CamRequest(finer, target=target, contrast=contrast, gamma=gamma),
        CamRequest(finer, target=contrast, contrast=target, gamma=gamma)])
    return {"gradcam": plain.maps[0], "finer": ab.maps[0], "finer_reverse": ba.maps[0]}


def cam_figure(classifier: Any, photo: Any, target: str, contrast: str, gamma: float = 0.6) -> plt.Figure:
    """Photo | Grad-CAM | Finer-CAM target vs contrast | Finer-CAM contrast vs target, the Finer peaks outlined."""
    img = load_image(photo)
    maps = cam_maps(classifier, img, target, contrast, gamma)
    tiles = [("photo", img),
             (f"Grad-CAM: why {_short(target)}?", overlay(img, maps["gradcam"])),
             (f"Finer-CAM: {_short(target)}\nrather than {_short(contrast)}", outline(overlay(img, maps["finer"]),
                                                                                     maps["finer"])),
             (f"Finer-CAM: {_short(contrast)}\nrather than {_short(target)}",
              outline(overlay(img, maps["finer_reverse"]), maps["finer_reverse"]))]
    fig, axes = plt.subplots(1, 4, figsize=(14, 3.5))
    for ax, (caption, tile) in zip(axes, tiles, strict=True):
        ax.imshow(tile)
        ax.set_title(caption, fontsize=10)
        ax.axis("off")
    fig.suptitle(f"gamma = {gamma:g}; red/yellow = high, blue = low; cyan outline: at least half the map's peak",
                 fontsize=9, y=0.02, va="bottom")
    fig.tight_layout(rect=(0, 0.05, 1, 1))
    return fig


def gamma_figure(classifier: Any, photo: Any, target: str, contrast: str,
                 gammas: Sequence[float] = (0.0, 0.3, 0.6, 1.0)) -> plt.Figure:
    """Finer-CAM of target vs contrast for several gammas (gamma 0 is the plain map: no contrast subtracted)."""
    img = load_image(photo)
    finer = default_method(classifier)
    results = explain_many(classifier, img, [CamRequest(finer, target=target, contrast=contrast, gamma=g)
                                             for g in gammas])
    fig, axes = plt.subplots(1, len(gammas), figsize=(3.5 * len(gammas), 3.6))
    for ax, g, res in zip(axes, gammas, results, strict=True):
        ax.imshow(outline(overlay(img, res.maps[0]), res.maps[0]))
        ax.set_title(f"gamma = {g:g}" + (" (plain map)" if g == 0 else ""), fontsize=10)
        ax.axis("off")
    fig.suptitle(f"{_short(target)} rather than {_short(contrast)}: more of the contrast subtracted from left to right",
                 fontsize=10)
    fig.tight_layout()
    return fig


def live_kernel() -> bool:
    """True when a Jupyter frontend can show widgets (a live kernel, not a batch run by run_notebook.py)."""
    if os.environ.get(BATCH_ENV):
        return False
    try:
        import ipywidgets  # noqa: F401
        from ipykernel.zmqshell import ZMQInteractiveShell
        from IPython import get_ipython
    except ImportError:
        return False
    # Jupyter, VS Code and Colab kernels are ZMQ shells; plain python and IPython in a terminal are not.
    return isinstance(get_ipython(), ZMQInteractiveShell)


def cam_explorer(classifier: Any, photo: Any, target: str, contrasts: Sequence[str], gamma: float = 0.6) -> Any:
    """A gamma slider and a contrast-species dropdown that redraw cam_figure (needs a live kernel)."""
    import ipywidgets as widgets

    def redraw(gamma: float, contrast: str) -> None:
        cam_figure(classifier, photo, target, contrast, gamma)
        plt.show()

    return widgets.interact(redraw, gamma=widgets.FloatSlider(value=gamma, min=0.0, max=1.5, step=0.1,
                                                               continuous_update=False),
                            contrast=widgets.Dropdown(options=list(contrasts), value=contrasts[0]))


def regions_figure(result: Any, species_csv: Path | None = None) -> plt.Figure:
    """The photo with its Finer-CAM regions boxed, each region's crop, and the traits found in it."""
    regions = result.regions
    fig, axes = plt.subplots(1, 1 + len(regions), figsize=(4.5 + 2.8 * len(regions), 4.2), squeeze=False,
                             gridspec_kw={"width_ratios": [1.8] + [1] * len(regions)})
    axes = axes[0]
    axes[0].imshow(result.image)
    for r in regions:
        x0, y0, x1, y1 = r.box
        axes[0].add_patch(plt.Rectangle((x0, y0), x1 - x0, y1 - y0, fill=False, edgecolor="cyan", linewidth=2))
        axes[0].text(x0 + 3, y0 + 3, str(r.index + 1), color="black", backgroundcolor="cyan", va="top", fontsize=9)
    axes[0].set_title(f"{_short(result.target_species)}: Finer-CAM regions\nagainst {_short(result.contrast_species)}",
                      fontsize=10)
    axes[0].axis("off")
    for ax, r in zip(axes[1:], regions, strict=True):
        ax.imshow(r.crop)
        found = [t for t in result.traits if t.region == r.index and t.in_region]
        lines = [f"{'more' if t.direction == '+' else 'less'} {t.phrase}" for t in found] or ["(no trait placed here)"]
        where = f" ({r.location})" if r.location else ""
        ax.set_title(f"region {r.index + 1}{where}", fontsize=9)
        ax.set_xlabel("\n".join(lines[:3]), fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    fig.tight_layout()
    return fig


def traits_table(result: Any) -> pd.DataFrame:
    """The ranked traits of a DescribeResult as a table a reader can scan."""
    rows = [{"rank": t.rank, "trait": t.phrase, "direction": "more" if t.direction == "+" else "less",
             "confidence": t.confidence, "effect (sd)": round(t.effect, 1),
             "in a region the classifier used": bool(t.in_region), "region": None if t.region is None else t.region + 1,
             "expert list": t.expert_status or "-"} for t in result.traits]
    return pd.DataFrame(rows).set_index("rank")
