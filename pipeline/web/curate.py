"""Browse, look at one photo's evidence, curate, export: the pages over the trait database."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse, JSONResponse, RedirectResponse, Response
from starlette.background import BackgroundTask

from pipeline.describe import MAX_WORK_SIDE
from pipeline.images import upright_size
from pipeline.references import reference_images
from pipeline.web.app import CURATOR_COOKIE, WebState, curator_name, page, posted, safe_next, wants_json
from pipeline.web.evidence import MAP_NAMES, counterparts, crop, map_image, photo, png, result_maps
from traits.errors import BadValueError, FinerTraitsError, ModelUnavailableError
from traits.review import (
    CONFIDENCE_ORDER,
    CURATION_STATUSES,
    EDIT_FIELDS,
    EXPERT_STATUSES,
    AssertionFilter,
    assertion_ids,
    browse,
    count_assertions,
    histories,
    set_status,
)

router = APIRouter()
ACTIONS = {"accept": "accepted", "reject": "rejected", "reset": "pending"}
EXPORT_TYPES = {"csv": ("text/csv", "csv"), "parquet": ("application/vnd.apache.parquet", "parquet"),
                "dwca": ("application/zip", "zip")}
N_COUNTERPARTS = 3  # reference photos of the contrast species shown beside each region crop
FILTER_KEYS = ("run", "species", "contrast", "status", "expert", "confidence")


def _web(request: Request) -> WebState:
    return request.app.state.web


def _int(value: str | None, name: str, default: int | None = None) -> int | None:
    """A whole number from the query string (blank: default), or a clear error."""
    if value is None or value == "":
        return default
    try:
        number = int(value)
    except ValueError:
        raise BadValueError(f"The {name} {value[:40]!r} is not a whole number.", f"Give the {name} as digits.") from None
    if not 0 <= number < 2**63:
        raise BadValueError(f"The {name} {number} is out of range.", f"Use a {name} listed on the pages.")
    return number


def read_filter(params: Any) -> tuple[AssertionFilter, dict[str, str]]:
    """The assertion filter of a query string, and its non-blank fields (for links and the export)."""
    given = {k: params.get(k, "").strip() for k in FILTER_KEYS if params.get(k, "").strip()}
    f = AssertionFilter(run_id=_int(given.get("run"), "run"), taxon=given.get("species"),
                        contrast=given.get("contrast"), status=given.get("status"),
                        expert_status=given.get("expert"), min_confidence=given.get("confidence"))
    return f, given


@router.get("/")
def home(request: Request) -> Response:
    """Runs and species pairs, each linking to its traits."""
    web = _web(request)
    runs = web.db.runs()
    counts = {r["id"]: web.db.counts(r["id"]) for r in runs[-50:]}
    return page(request, "home.html", {"runs": runs[-50:][::-1], "counts": counts, "pairs": web.db.species_pairs()})


@router.get("/traits")
def traits_page(request: Request) -> Response:
    """The trait assertions matching the filter, one page at a time: the curation queue."""
    web = _web(request)
    f, given = read_filter(request.query_params)
    size = web.config.page_size
    pg = max(1, _int(request.query_params.get("page"), "page", 1) or 1)
    total = count_assertions(web.db, f)
    rows = browse(web.db, f, offset=(pg - 1) * size, limit=size)
    return page(request, "traits.html", {
        "rows": rows, "total": total, "page": pg, "pages": max(1, -(-total // size)), "given": given,
        "query": urlencode(given), "species": web.db.taxon_names(), "statuses": CURATION_STATUSES,
        "experts": (*EXPERT_STATUSES, "none"), "confidences": CONFIDENCE_ORDER})


@router.get("/photos")
def photos_page(request: Request) -> Response:
    """Described photos (one row per photo and contrast species), newest first."""
    web = _web(request)
    params = request.query_params
    size = web.config.page_size
    pg = max(1, _int(params.get("page"), "page", 1) or 1)
    given = {k: params.get(k, "").strip() for k in ("run", "species", "contrast") if params.get(k, "").strip()}
    rows, total = web.db.results_page(given.get("species"), given.get("contrast"), _int(given.get("run"), "run"),
                                      offset=(pg - 1) * size, limit=size)
    return page(request, "photos.html", {"rows": rows, "total": total, "page": pg, "pages": max(1, -(-total // size)),
                                         "given": given, "query": urlencode(given),
                                         "species": web.db.taxon_names()})


def _detail(web: WebState, result_id: int) -> dict:
    detail = web.db.result_detail(result_id)
    if detail is None:
        raise HTTPException(404)
    return detail


def _shown_size(path: Path) -> tuple[int, int]:
    """The photo's size as the pages show it (describe's working size), read from its header only."""
    w, h = upright_size(path)
    scale = min(1.0, MAX_WORK_SIDE / max(w, h))
    return (max(1, round(w * scale)), max(1, round(h * scale))) if scale < 1 else (w, h)


@router.get("/result/{result_id}")
def result_page(request: Request, result_id: int) -> Response:
    """One photo against one contrast species: the maps, the regions, every trait with its evidence and controls."""
    web = _web(request)
    detail = _detail(web, result_id)
    rows = sorted(browse(web.db, AssertionFilter(result_id=result_id), limit=1000), key=lambda r: r["rank"])
    region_index = {r["id"]: r["region_index"] for r in detail["regions"]}
    for r in rows:
        r["region_index"] = region_index.get(r["region_id"])
    entry = web.models.for_run(detail["classifier_sha256"])
    size, photo_problem = None, None
    try:
        size = _shown_size(web.roots.resolve(detail["image_path"]))
    except FinerTraitsError as exc:
        photo_problem = exc
    config = detail["configuration"] or {}
    group = config.get("taxon_group") or (entry.card.get("taxon_group") if entry else None) or "butterfly"
    sentences = web.experts.for_rows(config.get("expert"), group, detail["taxon"], detail["contrast"], rows)
    n_refs = len(reference_images(entry.path, detail["contrast"], max_images=N_COUNTERPARTS)) if entry else 0
    return page(request, "result.html", {
        "d": detail, "rows": rows, "entry": entry, "size": size, "photo_problem": photo_problem, "n_refs": n_refs,
        "sentences": sentences,
        "history": histories(web.db, [r["id"] for r in rows]), "map_names": MAP_NAMES,
        "next": request.url.path})


def _photo_of(web: WebState, result_id: int) -> tuple[dict, Any]:
    detail = _detail(web, result_id)
    return detail, photo(web.roots.resolve(detail["image_path"]))


IMAGE_HEADERS = {"Cache-Control": "private, max-age=3600"}


@router.get("/result/{result_id}/photo.jpg")
def photo_file(request: Request, result_id: int, size: int = 0) -> Response:
    """The photo at its working size (size=160: a thumbnail)."""
    _, img = _photo_of(_web(request), result_id)
    return Response(png(img, 160 if size == 160 else None, "JPEG"), media_type="image/jpeg", headers=IMAGE_HEADERS)


@router.get("/result/{result_id}/map/{name}.png")
async def map_file(request: Request, result_id: int, name: str) -> Response:
    """One map (finer, finer_reverse or gradcam) in heat colours at the photo's size, drawn by the run's model."""
    web = _web(request)
    if name not in MAP_NAMES:
        raise HTTPException(404)
    detail, img = await run_in_threadpool(_photo_of, web, result_id)
    entry = web.models.for_run(detail["classifier_sha256"])
    if entry is None:
        raise HTTPException(404, "The model of this run is not loaded: start serve with its --model.")

    def draw() -> bytes:
        maps = web.maps.get(result_id, lambda: result_maps(web.models, entry, img, detail["taxon"],
                                                           detail["contrast"], detail["gamma"]))
        return png(map_image(maps[name], img.size))

    return Response(await run_in_threadpool(draw), media_type="image/png", headers=IMAGE_HEADERS)


def _region(detail: dict, index: int) -> dict:
    for r in detail["regions"]:
        if r["region_index"] == index:
            return r
    raise HTTPException(404)


@router.get("/result/{result_id}/region/{index}.png")
def region_file(request: Request, result_id: int, index: int) -> Response:
    """The region's crop of the photo."""
    detail, img = _photo_of(_web(request), result_id)
    r = _region(detail, index)
    return Response(png(crop(img, (r["x0"], r["y0"], r["x1"], r["y1"])), 240), media_type="image/png",
                    headers=IMAGE_HEADERS)


@router.get("/result/{result_id}/region/{index}/ref/{k}.png")
def counterpart_file(request: Request, result_id: int, index: int, k: int) -> Response:
    """The region's k-th best counterpart on the contrast species' reference photos (matched by features)."""
    web = _web(request)
    detail, img = _photo_of(web, result_id)
    r = _region(detail, index)
    entry = web.models.for_run(detail["classifier_sha256"])
    box = (r["x0"], r["y0"], r["x1"], r["y1"])
    refs = counterparts(web.models, entry, img, detail["contrast"], box, N_COUNTERPARTS) if entry else []
    if not 0 <= k < len(refs):
        raise HTTPException(404)
    return Response(png(refs[k], 240), media_type="image/png", headers=IMAGE_HEADERS)


@router.get("/result/{result_id}/controls")
async def controls_page(request: Request, result_id: int) -> Response:
    """Each stored trait's standardised effect and the random-phrase controls, recomputed by the run's model (the
    database keeps neither): does a real trait stand out from phrases that name nothing?"""
    web = _web(request)
    detail = await run_in_threadpool(_detail, web, result_id)
    entry = web.models.for_run(detail["classifier_sha256"])
    if entry is None:
        raise ModelUnavailableError("The model that made this run is not loaded, so the effects and controls "
                                    "cannot be recomputed.", f"Restart serve with --model {detail['classifier']}.")
    rows = await run_in_threadpool(lambda: browse(web.db, AssertionFilter(result_id=result_id), limit=1000))
    path = web.roots.resolve(detail["image_path"])
    sides = {r["side"] for r in rows if r.get("side")}  # the side the photo was described with, when one was given
    side = sides.pop() if len(sides) == 1 else None

    def run() -> Any:
        with web.models.using(entry) as pipe:
            return pipe.describe(path, detail["contrast"], target_species=detail["taxon"], top_k=max(1, len(rows)),
                                 side=side)

    fresh = await run_in_threadpool(web.controls.get, result_id, run)
    effects = {t.phrase: t.effect for t in fresh.traits}
    return page(request, "controls.html", {"d": detail, "rows": sorted(rows, key=lambda r: r["rank"]),
                                           "effects": effects, "controls": fresh.controls})


@router.post("/curate")
async def curate(request: Request) -> Response:
    """Accept, reject, reset or edit one assertion, refused when someone else curated it since the page was shown."""
    form = await posted(request)
    web = _web(request)
    aid = _int(str(form.get("assertion_id", "")), "assertion id")
    if aid is None:
        raise BadValueError("No assertion id was sent.", "Use the buttons beside a trait.")
    version = _int(str(form.get("version", "")), "version", 0)
    action = str(form.get("action", ""))
    note = str(form.get("note", "")).strip()[:4000] or None
    edit = None
    if action == "edit":
        edit = {k: str(form.get(k, "")) for k in EDIT_FIELDS}
        if not any(v.strip() for v in edit.values()):
            raise BadValueError("The edit changes nothing.", "Fill in the part, attribute, value or direction.")
        status = "accepted"  # a curator who corrects a trait vouches for the corrected version
    elif action in ACTIONS:
        status = ACTIONS[action]
    else:
        raise BadValueError(f"Unknown action {action[:20]!r}.", "Use accept, reject, reset or edit.")
    who = curator_name(request)
    await run_in_threadpool(set_status, web.db, [aid], status, who, note, expected={aid: version}, edit=edit)
    row = (await run_in_threadpool(browse, web.db, AssertionFilter(assertion_id=aid), 0, 1))[0]
    if wants_json(request):
        return JSONResponse({"id": aid, "status": row["status"], "version": row["version"], "curator": row["curator"]})
    return RedirectResponse(safe_next(str(form.get("next", "")), f"/result/{row['result_id']}") + f"#a{aid}", 303)


@router.post("/curator")
async def set_curator(request: Request) -> Response:
    """Remember the curator's name (kept with every decision made from this browser)."""
    form = await posted(request)
    name = " ".join(str(form.get("name", "")).split())[:255]
    response = RedirectResponse(safe_next(str(form.get("next", "")), "/"), 303)
    response.set_cookie(CURATOR_COOKIE, name, httponly=True, samesite="strict", max_age=365 * 86400)
    return response


@router.get("/export")
def export_file(request: Request) -> Response:
    """The assertions of the current filter as CSV, Parquet or a Darwin Core Archive."""
    from traits.export import export

    web = _web(request)
    fmt = request.query_params.get("format", "csv")
    if fmt not in EXPORT_TYPES:
        raise BadValueError(f"Unknown export format {fmt[:20]!r}.", "Use csv, parquet or dwca.")
    f, _ = read_filter(request.query_params)
    ids = assertion_ids(web.db, f)
    media, suffix = EXPORT_TYPES[fmt]
    folder = Path(tempfile.mkdtemp(prefix="finer-traits-export-"))
    try:
        path = export(web.db, fmt, folder / f"finer-traits.{suffix}", f.run_id, assertion_ids=ids)
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    return FileResponse(path, media_type=media, filename=f"finer-traits-traits.{suffix}",
                        background=BackgroundTask(shutil.rmtree, folder, ignore_errors=True))
