"""The FastAPI application: configuration, the guard in front of every request, error pages, shared helpers.

Pages live in pipeline/web/curate.py (browse, photo, curate, export) and pipeline/web/studio.py (describe,
compare); templates in pipeline/web/templates, one small script and style sheet in pipeline/web/static.
"""

from __future__ import annotations

import logging
import os
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from starlette.datastructures import FormData
from starlette.exceptions import HTTPException as StarletteHTTPException

from pipeline.web.evidence import ExpertSentences, ImageRoots, MapCache, ModelSet
from pipeline.web.security import (
    CSRF_COOKIE,
    CSRF_FIELD,
    CSRF_HEADER,
    TOKEN_COOKIE,
    UploadLimits,
    human_size,
    is_loopback,
    new_csrf_token,
    same_secret,
)
from traits.db import TraitDB
from traits.errors import (
    BadImageError,
    CsrfError,
    DatabaseError,
    FinerTraitsError,
    ModelUnavailableError,
    StaleEditError,
    UnknownSpeciesError,
)

log = logging.getLogger(__name__)
HERE = Path(__file__).resolve().parent
CURATOR_COOKIE = "ft_curator"
FORM_SLACK = 256 * 1024  # multipart headers and the other fields of an upload form


@dataclass
class WebConfig:
    """Everything `finer-traits serve` passes to the app."""

    db: str | None = None
    models: list[Path] = field(default_factory=list)
    host: str = "127.0.0.1"
    token: str | None = None
    uploads: Path = Path("finer-traits-uploads")
    images: list[Path] = field(default_factory=list)
    manifest: Path | None = None
    scorer: str = "color"
    expert: str | None = None
    limits: UploadLimits = field(default_factory=UploadLimits)
    page_size: int = 50
    curator: str | None = None


class WebState:
    """What every request shares: the database, the models, where photos are, and the describe results shown
    but not yet saved."""

    def __init__(self, config: WebConfig) -> None:
        from pipeline.batch import read_manifest

        self.config = config
        self.models = ModelSet(config.models, scorer=config.scorer, expert=config.expert)
        self.manifest = read_manifest(config.manifest) if config.manifest else []
        roots = [*config.images, *([config.manifest.parent] if config.manifest else []), Path.cwd()]
        self.roots = ImageRoots(roots)
        self.db = TraitDB(config.db)
        self.maps = MapCache()
        self.controls = MapCache()  # recomputed describe() results of stored photos, for effects and controls
        self.experts = ExpertSentences()
        self.pending: OrderedDict[str, Any] = OrderedDict()
        self.pairs: OrderedDict[tuple, Any] = OrderedDict()


def create_app(config: WebConfig) -> FastAPI:
    """The web app for config (the database is opened and the models are checked here, before serving)."""
    state = WebState(config)
    app = FastAPI(title="finer-traits", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.web = state
    app.state.templates = Jinja2Templates(directory=str(HERE / "templates"))
    app.mount("/static", StaticFiles(directory=str(HERE / "static")), name="static")
    _add_guard(app, config)
    _add_error_pages(app)
    from pipeline.web import curate, studio

    app.include_router(curate.router)
    app.include_router(studio.router)
    return app


# ---------------------------------------------------------------------------------------------------------
# The guard: host, token, cross-site requests, upload size, security headers.

def _add_guard(app: FastAPI, config: WebConfig) -> None:
    local_only = is_loopback(config.host)
    max_body = config.limits.max_bytes + FORM_SLACK

    @app.middleware("http")
    async def guard(request: Request, call_next: Any) -> Response:
        host = (request.url.hostname or "").lower()
        if local_only and not is_loopback(host):
            # A page on another site that resolves its own name to 127.0.0.1 (DNS rebinding) is turned away.
            return page(request, "error.html", {"problem": f"This server answers only to localhost, not {host!r}.",
                                                "fix": "Open it as http://127.0.0.1:PORT/."}, 400)
        if config.token:
            given = (request.query_params.get("token") or request.cookies.get(TOKEN_COOKIE)
                     or request.headers.get("authorization", "").removeprefix("Bearer ").strip())
            if not same_secret(given, config.token):
                return page(request, "error.html", {
                    "problem": "This server needs its access token, and the request had none (or a wrong one).",
                    "fix": "Open the link with ?token=... that `finer-traits serve` printed when it started."}, 401)
            if "token" in request.query_params:  # keep the token out of the address bar and the history
                rest = [(k, v) for k, v in request.query_params.multi_items() if k != "token"]
                response = RedirectResponse(request.url.path + (f"?{urlencode(rest)}" if rest else ""), 303)
                response.set_cookie(TOKEN_COOKIE, config.token, httponly=True, samesite="strict")
                return response
        request.state.csrf = request.cookies.get(CSRF_COOKIE) or new_csrf_token()
        if request.method not in ("GET", "HEAD", "OPTIONS"):
            refused = _refuse_post(request, max_body)
            if refused is not None:
                return refused
        response = await call_next(request)
        if CSRF_COOKIE not in request.cookies:
            response.set_cookie(CSRF_COOKIE, request.state.csrf, httponly=True, samesite="strict")
        response.headers.update({"X-Content-Type-Options": "nosniff", "X-Frame-Options": "DENY",
                                 "Referrer-Policy": "same-origin",
                                 "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; "
                                                            "style-src 'self' 'unsafe-inline'; "
                                                            "frame-ancestors 'none'; form-action 'self'"})
        return response


def _refuse_post(request: Request, max_body: int) -> Response | None:
    """An error page for a data-changing request that comes from another site or is too large; else None."""
    origin = request.headers.get("origin")
    if origin and origin != "null" and origin.rstrip("/") != f"{request.url.scheme}://{request.url.netloc}":
        return page(request, "error.html", {"problem": f"A form sent from another site ({origin}) was refused.",
                                            "fix": "Use the forms of this app itself."}, 403)
    length = request.headers.get("content-length")
    if length is None or not length.isdigit():
        return page(request, "error.html", {"problem": "The request did not say how large it is.",
                                            "fix": "Send the form from a browser."}, 411)
    if int(length) > max_body:
        limit = max_body - FORM_SLACK
        return page(request, "error.html", {"problem": f"The upload is {human_size(int(length))}, above the "
                                                        f"{human_size(limit)} limit; it was not read.",
                                            "fix": "Downscale or re-compress the photo and try again."}, 413)
    return None


async def posted(request: Request) -> FormData:
    """The form of a data-changing request, after checking its cross-site token (form field or header)."""
    form = await request.form(max_files=1, max_fields=64)
    given = form.get(CSRF_FIELD) or request.headers.get(CSRF_HEADER)
    cookie = request.cookies.get(CSRF_COOKIE)
    if not cookie or not isinstance(given, str) or not same_secret(given, cookie):
        raise CsrfError("The form's security token is missing or out of date (a request from another site, or "
                        "a page from before the browser's cookies were cleared); nothing was changed.",
                        "Reload the page and submit the form again.")
    return form


# ---------------------------------------------------------------------------------------------------------
# Pages and errors.

def page(request: Request, template: str, context: dict[str, Any], status: int = 200) -> HTMLResponse:
    """A rendered template with what every page needs (the cross-site token, the curator name, the models)."""
    web: WebState = request.app.state.web
    base = {"csrf": getattr(request.state, "csrf", ""), "curator": curator_name(request),
            "models": web.models.entries, "path": request.url.path}
    return request.app.state.templates.TemplateResponse(request, template, {**base, **context}, status_code=status)


def curator_name(request: Request) -> str:
    """Who is curating: the name set in the page header (a cookie), else serve --curator, else the login."""
    from traits.review import default_curator

    name = (request.cookies.get(CURATOR_COOKIE) or "").strip()[:255]
    return name or request.app.state.web.config.curator or default_curator()


def wants_json(request: Request) -> bool:
    """True for the page script's requests (keyboard curation), which read JSON instead of a new page."""
    return "application/json" in request.headers.get("accept", "")


STATUS = ((StaleEditError, 409), (CsrfError, 403), (DatabaseError, 503), (ModelUnavailableError, 503),
          (UnknownSpeciesError, 400), (BadImageError, 400))


def _add_error_pages(app: FastAPI) -> None:
    @app.exception_handler(FinerTraitsError)
    async def known(request: Request, exc: FinerTraitsError) -> Response:
        status = next((code for cls, code in STATUS if isinstance(exc, cls)), 400)
        return await error_response(request, exc.problem, exc.fix, status, getattr(exc, "code", ""))

    @app.exception_handler(StarletteHTTPException)
    async def http(request: Request, exc: StarletteHTTPException) -> Response:
        problem = str(exc.detail) if exc.status_code != 404 else f"There is no page {request.url.path}."
        return await error_response(request, problem, "Go back to the trait list.", exc.status_code)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> Response:
        where = ", ".join(".".join(str(p) for p in e.get("loc", ())[1:]) or "value" for e in exc.errors()[:3])
        return await error_response(request, f"The address has a value that is not allowed ({where}).",
                                    "Use the links and forms of the app.", 422)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> Response:
        log.exception("Unexpected error on %s %s", request.method, request.url.path)
        return await error_response(request, f"Unexpected error ({type(exc).__name__}). The details are in the "
                                             "server's log.", "Try again; if it persists, report it with that log.",
                                    500)


async def error_response(request: Request, problem: str, fix: str | None, status: int, code: str = "") -> Response:
    """The error as a page (or JSON for the page script), with what the user typed so that nothing is lost."""
    if wants_json(request):
        return JSONResponse({"error": problem, "fix": fix, "code": code}, status_code=status)
    kept: dict[str, str] = {}
    if request.method == "POST":
        try:
            form = await request.form()
            kept = {k: v for k, v in form.items() if isinstance(v, str) and v and k not in (CSRF_FIELD, "next")}
        except Exception:  # noqa: BLE001 - the body could not be read: there is nothing to show
            kept = {}
    return page(request, "error.html", {"problem": problem, "fix": fix, "code": code, "kept": kept}, status)


def safe_next(target: str | None, default: str) -> str:
    """A redirect target from a form, only when it is a path on this site (never another host)."""
    if target and target.startswith("/") and not target.startswith("//") and "\\" not in target:
        return target
    return default


def env_token() -> str | None:
    """The access token from $FINER_TRAITS_WEB_TOKEN (None when unset)."""
    return os.environ.get("FINER_TRAITS_WEB_TOKEN") or None
