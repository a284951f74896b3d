"""`finer-traits serve`: the curation web app on this machine (or, with a token, for a team)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from pipeline.cli import app

console = Console()


@app.command("serve")
def serve(
    db: Annotated[str | None, typer.Option("--db", help="Database URL or SQLite file (default: $FINER_TRAITS_DB or "
                                                        "sqlite:///finer-traits.sqlite).")] = None,
    model: Annotated[list[Path] | None, typer.Option("--model", "-m", help="Model folder(s) from `finer-traits "
                                                     "train`: for describing photos and drawing the maps of the runs "
                                                     "they made. Repeat for several.")] = None,
    host: Annotated[str, typer.Option(help="Address to listen on. Anything but 127.0.0.1 / localhost needs "
                                           "--allow-remote and a token.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port to listen on.")] = 8000,
    allow_remote: Annotated[bool, typer.Option("--allow-remote", help="Allow a --host other machines can reach "
                                                                      "(every request must carry the token).")] = False,
    token: Annotated[str | None, typer.Option(envvar="FINER_TRAITS_WEB_TOKEN", help="Shared secret token required "
                                              "from every browser (default with --allow-remote: a new random one, "
                                              "printed at start).")] = None,
    images: Annotated[list[Path] | None, typer.Option("--images", help="Folder(s) where the photo paths stored by "
                                                      "`batch` (relative to its manifest) are found.")] = None,
    manifest: Annotated[Path | None, typer.Option(help="A batch manifest CSV: its photos can be picked on the "
                                                       "Describe page, and its folder is searched for photos.")] = None,
    uploads: Annotated[Path, typer.Option(help="Folder where uploaded photos are kept (named by their "
                                               "SHA-256).")] = Path("finer-traits-uploads"),
    max_upload_mb: Annotated[float, typer.Option(min=0.1, help="Largest upload accepted, in MB.")] = 20.0,
    max_pixels: Annotated[int, typer.Option(min=64, help="Largest uploaded photo accepted, in decoded pixels.")]
    = 40_000_000,
    scorer: Annotated[str, typer.Option(help="Phrase scorer for describing: 'color', 'openclip:...' or 'hf:...'.")]
    = "color",
    expert: Annotated[str | None, typer.Option(help="Expert traits (CSV, CUB folder, descriptions) to check "
                                                    "descriptions against.")] = None,
    curator: Annotated[str | None, typer.Option(help="Default curator name (each browser can set its own).")] = None,
) -> None:
    """Start the web app: browse and curate the trait database, look at the evidence, describe new photos."""
    try:
        import uvicorn

        from pipeline.web import WebConfig, create_app
        from pipeline.web.security import UploadLimits, check_bind
    except ImportError as exc:
        from traits.errors import MissingDependencyError

        raise MissingDependencyError(f"The web app needs FastAPI and uvicorn ({exc}).",
                                     "pip install 'finer-traits[web]'") from exc
    required = check_bind(host, allow_remote, token)
    config = WebConfig(db=db, models=list(model or []), host=host, token=required, uploads=uploads,
                       images=list(images or []), manifest=manifest, scorer=scorer, expert=expert,
                       limits=UploadLimits(int(max_upload_mb * 1e6), max_pixels), curator=curator)
    web_app = create_app(config)
    shown = f"[{host}]" if ":" in host else host
    url = f"http://{shown}:{port}/" + (f"?token={required}" if required else "")
    console.print(f"finer-traits web app on {url} (database {web_app.state.web.db!r}); Ctrl-C stops it.",
                  highlight=False)
    uvicorn.run(web_app, host=host, port=port, log_level="warning")
