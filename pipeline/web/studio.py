"""Describe a new photo (upload or manifest row) and save it as a run; compare two species over their photos."""

from __future__ import annotations

import base64
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import RedirectResponse, Response
from starlette.datastructures import UploadFile

from pipeline.cam.render import overlay
from pipeline.report import MAP_TITLES, draw_boxes
from pipeline.web.app import WebState, page, posted
from pipeline.web.evidence import MAP_NAMES, ModelEntry, png
from pipeline.web.security import check_upload, store_upload
from traits.db import ImageRecord
from traits.errors import BadValueError, MissingValueError
from traits.version import __version__
from traits.vocab import normalise_side

router = APIRouter()
KEEP_PENDING = 16  # describe results shown but not saved yet, newest kept
MAX_PAIR_PHOTOS = 24


@dataclass
class Pending:
    """A describe result on screen, waiting for 'Save to the database'."""

    result: Any
    entry: ModelEntry
    path: Path
    sha256: str
    top_k: int


def _web(request: Request) -> WebState:
    return request.app.state.web


def _data_uri(img: Any) -> str:
    return "data:image/png;base64," + base64.b64encode(png(img, 640)).decode("ascii")


@router.get("/describe")
def describe_form(request: Request) -> Response:
    """The form: a photo (upload or manifest row), the model, the target and contrast species."""
    web = _web(request)
    return page(request, "describe.html", {"manifest": web.manifest[:1000], "form": {}})


async def _photo_from_form(web: WebState, form: Any) -> tuple[Path, str, str | None]:
    """The photo of a describe form: (path, sha256, the manifest's species for it or None)."""
    upload = form.get("photo")
    row = str(form.get("manifest_row", "")).strip()
    if isinstance(upload, UploadFile) and upload.filename:
        data = await upload.read(web.config.limits.max_bytes + 1)
        fmt = check_upload(data, upload.filename, web.config.limits)
        path, digest = await run_in_threadpool(store_upload, data, fmt, web.config.uploads)
        return path, digest, None
    if row:
        if not row.isdigit() or not 0 <= int(row) < len(web.manifest):
            raise BadValueError(f"There is no manifest row {row[:20]!r}.", "Pick a photo from the list.")
        from traits.db import file_sha256

        item = web.manifest[int(row)]
        return item.path, await run_in_threadpool(file_sha256, item.path), item.species
    raise MissingValueError("No photo was given.", "Choose a photo file to upload, or pick one from the manifest.")


@router.post("/describe")
async def describe_photo(request: Request) -> Response:
    """Describe the photo against the contrast species and show the result (not saved yet)."""
    web = _web(request)
    form = await posted(request)
    entry = web.models.get(str(form.get("model", "")))
    contrast = str(form.get("contrast", "")).strip()
    if not contrast:
        raise MissingValueError("No contrast species was given.", "Type the similar species to compare with.")
    entry.species.index(contrast)  # an unknown name fails here, with suggestions, before any work
    target = str(form.get("target", "")).strip() or None
    path, digest, listed = await _photo_from_form(web, form)
    target = target or listed
    if target:
        entry.species.index(target)
    top_k_text = str(form.get("top_k", "")).strip()
    top_k = min(10, max(1, int(top_k_text))) if top_k_text.isdigit() else 5
    side = normalise_side(str(form.get("side", "")))  # a bad value fails here, naming the values

    def run() -> Any:
        with web.models.using(entry) as pipe:
            return pipe.describe(path, contrast, target_species=target, top_k=top_k, side=side)

    result = await run_in_threadpool(run)
    key = secrets.token_urlsafe(12)
    web.pending[key] = Pending(result, entry, path, digest, top_k)
    while len(web.pending) > KEEP_PENDING:
        web.pending.popitem(last=False)
    img = result.image
    figures = [("Photo with regions", _data_uri(draw_boxes(img, result.regions)))]
    figures += [(MAP_TITLES.get(name, name), _data_uri(overlay(img, torch.as_tensor(result.maps[name]))))
                for name in MAP_NAMES if name in result.maps]
    return page(request, "described.html", {"r": result, "key": key, "figures": figures, "entry": entry})


@router.post("/describe/save")
async def save_description(request: Request) -> Response:
    """Store the shown describe result in the database, in the app's run for this model and settings."""
    web = _web(request)
    form = await posted(request)
    pending = web.pending.get(str(form.get("key", "")))
    if pending is None:
        raise MissingValueError("That result is no longer held by the server (it keeps the newest "
                                f"{KEEP_PENDING}, and forgets them when it restarts).", "Describe the photo again.")
    result_id = await run_in_threadpool(_save, web, pending)
    web.pending.pop(str(form.get("key", "")), None)
    return RedirectResponse(f"/result/{result_id}", 303)


def _save(web: WebState, p: Pending) -> int:
    """Write one web describe result as a run: same model and settings -> the same run, as for batch."""
    db, cfg = web.db, web.config
    configuration = {"classifier_sha256": p.entry.fingerprint, "scorer": cfg.scorer, "expert": cfg.expert,
                     "top_k": p.top_k, "contrast": "web", "tool_version": __version__}
    run = db.start_run(configuration, classifier=str(p.entry.path), classifier_sha256=p.entry.fingerprint,
                       scorer=cfg.scorer, expert_source=cfg.expert, tool_version=__version__)
    try:
        img = p.result.image
        ids = db.write_image_results(run.id, ImageRecord(p.sha256, str(p.path), p.result.target_species,
                                                         width=img.width, height=img.height),
                                     [p.result], expert_source=cfg.expert)
        db.fill_run_provenance(run.id, p.result.provenance)
    finally:
        db.finish_run(run.id, "finished")
    return ids[0]


@router.get("/compare")
def compare(request: Request) -> Response:
    """Two species over their reference photos (describe_pair): each trait with its AUROC."""
    from pipeline.references import reference_images

    web = _web(request)
    params = request.query_params
    a, b = params.get("a", "").strip(), params.get("b", "").strip()
    context: dict[str, Any] = {"form": {"a": a, "b": b, "model": params.get("model", "")}, "result": None}
    if not (a or b):
        return page(request, "compare.html", context)
    entry = web.models.get(params.get("model", ""))
    if not (a and b):
        raise MissingValueError("Compare needs two species.", "Fill in both species.")
    a, b = (entry.species.class_names[entry.species.index(x)] for x in (a, b))
    photos = [reference_images(entry.path, s, max_images=MAX_PAIR_PHOTOS) for s in (a, b)]
    for s, found in zip((a, b), photos, strict=True):
        if not found:
            raise MissingValueError(f"The model {entry.name} has no reference photos of {s} (references.csv).",
                                    "Train the model with `finer-traits train`, which lists its training photos.")
    key = (entry.fingerprint, a, b)
    if key not in web.pairs:
        with web.models.using(entry) as pipe:
            web.pairs[key] = pipe.describe_pair(photos[0], photos[1], a, b)
        while len(web.pairs) > KEEP_PENDING:
            web.pairs.popitem(last=False)
    result = web.pairs[key]
    auroc = result.provenance.get("auroc", {})
    context.update(result=result, auroc=auroc, n=(len(photos[0]), len(photos[1])))
    return page(request, "compare.html", context)
