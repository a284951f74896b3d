"""Helpers for the web app tests: the system Chromium, a real uvicorn server in a thread, a filled database."""

from __future__ import annotations

import os
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

CHROMIUM_ENV = "FINER_TRAITS_CHROMIUM"
SCREENSHOTS = Path(__file__).resolve().parent.parent / "runs" / "web-screenshots"  # /runs/ is not committed


def on_ci() -> bool:
    """True when the tests run on CI (CI=true), where nothing may be skipped for want of a browser or server."""
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def chromium_path() -> str:
    """The system Chromium (Debian's `chromium` package); skip outside CI when there is none, fail on CI."""
    for cand in (os.environ.get(CHROMIUM_ENV), shutil.which("chromium"), shutil.which("chromium-browser"),
                 "/usr/bin/chromium"):
        if cand and Path(cand).is_file() and os.access(cand, os.X_OK):
            return cand
    reason = ("No system Chromium for the browser tests: install it with `. .ci/chromium` (apt-get install "
              f"chromium) or point {CHROMIUM_ENV} at a Chromium binary.")
    if on_ci():
        pytest.fail(f"On CI the browser tests must run: {reason}")
    pytest.skip(reason)
    return ""


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def serving(app) -> Iterator[str]:
    """Run app with uvicorn in a background thread on a free loopback port; yields its base URL."""
    import uvicorn

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the test web server did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def test_manifest(species_dir: Path, out: Path, per_species: int = 2) -> Path:
    """A manifest of the first test photos of each synthetic species (absolute paths)."""
    import csv

    rows = [r for r in csv.DictReader(open(species_dir / "manifest.csv")) if r["split"] == "test"]
    chosen: dict[str, list[dict]] = {}
    for r in rows:
        chosen.setdefault(r["species"], []).append(r)
    with open(out, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["image", "species"])
        for species, rs in chosen.items():
            for r in rs[:per_species]:
                w.writerow([str(species_dir / r["image"]), species])
    return out


test_manifest.__test__ = False  # a helper, not a test
