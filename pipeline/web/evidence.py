"""What the web app shows beside the database rows: the photos, the maps recomputed by the run's model, region
crops and their counterparts on the contrast species' reference photos, and the expert sentences.

The database keeps no maps (they are large), so a photo page asks the model that made the run (matched by the
SHA-256 fingerprint of its weights) to draw them again, once per result, and keeps the newest few in memory.
"""

from __future__ import annotations

import io
import threading
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from pipeline.batch import classifier_fingerprint
from pipeline.cam.render import colorize
from pipeline.describe import Pipeline, working_image
from pipeline.evidence import counterparts as match_counterparts
from pipeline.evidence import feature_grids
from pipeline.images import check_regular_file, load_image
from pipeline.masks import Box
from pipeline.regions import Region
from pipeline.species import SpeciesIndex
from traits.errors import BadImageError, FinerTraitsError, ModelUnavailableError

MAP_NAMES = ("finer", "finer_reverse", "gradcam")


@dataclass
class ModelEntry:
    """One model folder the app was started with: its card, species and weights fingerprint."""

    path: Path
    fingerprint: str
    card: dict
    species: SpeciesIndex
    pipeline: Pipeline | None = field(default=None, repr=False)
    # One request at a time uses a model: the CAM engine hooks its layers, so two passes at once would mix them.
    busy: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def name(self) -> str:
        """The folder name, shown in the forms."""
        return self.path.name


class ModelSet:
    """The models given to `serve --model`; describe pipelines are loaded on first use and shared."""

    def __init__(self, model_dirs: Sequence[str | Path], scorer: str = "color", expert: str | None = None) -> None:
        self.scorer, self.expert = scorer, expert
        self.entries: list[ModelEntry] = []
        for d in model_dirs:
            path = Path(d).expanduser().resolve()
            card, fingerprint = classifier_fingerprint(path)
            self.entries.append(ModelEntry(path, fingerprint, card,
                                           SpeciesIndex(card["class_names"], card.get("common_names"))))
        self._lock = threading.Lock()

    def __bool__(self) -> bool:
        return bool(self.entries)

    def get(self, name: str | None) -> ModelEntry:
        """The model of this folder name (the first one when name is empty)."""
        if not self.entries:
            raise ModelUnavailableError("The web app was started without a model, so it cannot describe photos or "
                                        "draw maps.", "Restart it with `finer-traits serve --model MODEL_DIR`.")
        for e in self.entries:
            if not name or e.name == name:
                return e
        raise ModelUnavailableError(f"No model named {name!r} is loaded.",
                                    f"Pick one of {', '.join(e.name for e in self.entries)}.")

    def for_run(self, classifier_sha256: str | None) -> ModelEntry | None:
        """The loaded model that made a run (same weights fingerprint), or None."""
        for e in self.entries:
            if classifier_sha256 and e.fingerprint == classifier_sha256:
                return e
        return None

    def pipeline(self, entry: ModelEntry) -> Pipeline:
        """The entry's describe pipeline, loaded once (one at a time: loading is heavy)."""
        with self._lock:
            if entry.pipeline is None:
                entry.pipeline = Pipeline.load(entry.path, scorer=self.scorer, expert=self.expert)
            return entry.pipeline

    @contextmanager
    def using(self, entry: ModelEntry) -> Iterator[Pipeline]:
        """The entry's pipeline, held by this request alone until the block ends."""
        pipe = self.pipeline(entry)
        with entry.busy:
            yield pipe


class ImageRoots:
    """Where the relative photo paths stored by `batch` (relative to its manifest) are looked up."""

    def __init__(self, roots: Sequence[str | Path]) -> None:
        self.roots = [Path(r).expanduser().resolve() for r in roots]

    def resolve(self, stored: str) -> Path:
        """The photo file of a stored path, or BadImageError naming where it was looked for."""
        path = Path(stored)
        candidates = [path] if path.is_absolute() else [root / path for root in self.roots]
        for cand in candidates:
            if cand.is_file():
                check_regular_file(cand)
                return cand
        where = ", ".join(str(r) for r in self.roots) or "(no folders)"
        raise BadImageError(f"The photo {stored} is not on this machine (looked in {where}).",
                            "Start `finer-traits serve` with --images FOLDER (the folder of the batch manifest).")


def photo(path: Path) -> Image.Image:
    """The photo as describe() saw it: upright, RGB, at its working size (region boxes are in these pixels)."""
    return working_image(load_image(path))


def png(img: Image.Image, max_side: int | None = None, fmt: str = "PNG") -> bytes:
    """Encoded image bytes, shrunk to max_side first when given."""
    if max_side is not None and max(img.size) > max_side:
        img = img.copy()
        img.thumbnail((max_side, max_side))
    buf = io.BytesIO()
    img.save(buf, format=fmt, **({"quality": 85} if fmt == "JPEG" else {}))
    return buf.getvalue()


def map_image(cam: np.ndarray, size: tuple[int, int]) -> Image.Image:
    """A map as a heat-coloured RGB image at the photo's size (the page blends it with an opacity slider)."""
    w, h = size
    m = F.interpolate(torch.as_tensor(np.asarray(cam, dtype=np.float32))[None, None], size=(h, w), mode="bilinear",
                      align_corners=False)[0, 0].numpy()
    return Image.fromarray(colorize(m))


def crop(img: Image.Image, box: Sequence[float], pad: float = 0.1) -> Image.Image:
    """The box (x0, y0, x1, y1 in pixels) cut out of img with a margin of pad times its size."""
    x0, y0, x1, y1 = (float(v) for v in box)
    dx, dy = (x1 - x0) * pad, (y1 - y0) * pad
    left, top = max(0, int(x0 - dx)), max(0, int(y0 - dy))
    right, bottom = min(img.width, int(round(x1 + dx))), min(img.height, int(round(y1 + dy)))
    return img.crop((left, top, max(right, left + 1), max(bottom, top + 1)))


def counterparts(models: ModelSet, entry: ModelEntry, img: Image.Image, species: str, box: Sequence[float],
                 n: int = 3) -> list[Image.Image]:
    """The region's best matches on up to n reference photos of species, found as describe() finds them: by the
    classifier's features (pipeline.evidence), so like is compared with like whatever the pose."""
    with models.using(entry) as pipe:
        refs = pipe.reference_photos(species)
        if not refs:
            return []
        features = feature_grids(pipe.classifier, [img])[0]
    x0, y0, x1, y1 = (int(round(v)) for v in box)
    region = Region(index=0, box=Box(x0, y0, max(x1, x0 + 1), max(y1, y0 + 1)), mass=1.0, area=0.0, peak=1.0)
    (found,) = match_counterparts(img, None, features, [region], [(species, r) for r in refs])
    best = sorted(zip(found, refs, strict=True), key=lambda t: -t[0].similarity)[:n]
    return [ref.image.crop(c.box) for c, ref in best]


class MapCache:
    """What was computed for the newest results (maps, recomputed descriptions), keyed by result id: each costs a
    pass of the model."""

    def __init__(self, size: int = 32) -> None:
        self.size = size
        self._maps: OrderedDict[Any, Any] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: Any, compute: Any) -> Any:
        """The cached value for key, or compute() it (outside the lock: other pages keep loading)."""
        with self._lock:
            if key in self._maps:
                self._maps.move_to_end(key)
                return self._maps[key]
        maps = compute()
        with self._lock:
            self._maps[key] = maps
            while len(self._maps) > self.size:
                self._maps.popitem(last=False)
        return maps


def result_maps(models: ModelSet, entry: ModelEntry, img: Image.Image, taxon: str, contrast: str,
                gamma: float | None) -> dict[str, np.ndarray]:
    """Grad-CAM and Finer-CAM both ways for a stored result, drawn by the run's model at the run's gamma."""
    with models.using(entry) as pipe:
        t_idx, c_idx = pipe.classifier.index(taxon), pipe.classifier.index(contrast)
        before = pipe.gamma
        try:
            if gamma is not None:
                pipe.gamma = float(gamma)
            maps, _ = pipe.maps(img, t_idx, c_idx)
        finally:
            pipe.gamma = before
    return maps


class ExpertSentences:
    """The expert sentence behind each confirmed or contradicted trait: the run's expert source is read again
    (once per source) and each stored trait matched against it as describe() did."""

    def __init__(self) -> None:
        self._lists: dict[tuple[str, str], dict] = {}
        self._lock = threading.Lock()

    def _load(self, source: str, group: str) -> dict:
        from traits.expert import load_expert
        from traits.names import normalise_name

        with self._lock:
            if (source, group) not in self._lists:
                try:
                    lists = load_expert(source, group=group)
                except (FinerTraitsError, OSError):
                    lists = {}  # the list moved or is unreadable: the page shows the status without the sentence
                self._lists[(source, group)] = {normalise_name(k): v for k, v in lists.items()}
            return self._lists[(source, group)]

    def for_rows(self, source: str | None, group: str, taxon: str, contrast: str, rows: list[dict]) -> dict[int, str]:
        """Assertion id -> the expert sentence that confirms or contradicts it (rows without one are left out)."""
        from traits.match import check
        from traits.model import Trait, TraitDifference
        from traits.names import normalise_name

        checked_rows = [r for r in rows if r.get("expert_status") in ("confirmed", "contradicted")]
        if not source or not checked_rows:
            return {}
        lists = self._load(source, group)
        a, b = lists.get(normalise_name(taxon)), lists.get(normalise_name(contrast))
        if a is None and b is None:
            return {}
        diffs = [TraitDifference(Trait(r["part"], r["attribute"], r["value"], side=r["side"] or None),
                                 r["direction"] or "+", taxon, contrast, phrase=r["phrase"] or "")
                 for r in checked_rows]
        out = {}
        for r, c in zip(checked_rows, check(diffs, a if a is not None else [], b if b is not None else [],
                                            group=group), strict=True):
            if c.match is not None and c.match.trait.text:
                out[r["id"]] = c.match.trait.text
        return out
