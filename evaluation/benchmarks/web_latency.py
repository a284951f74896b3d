"""Benchmark: how fast the web app's list and photo pages answer on a large trait database (issue 15).

Fills a fresh database with N trait assertions (default 10,000: 2,000 photo descriptions x 5 traits, 20 species
pairs, expert statuses, a fifth of them curated), starts `finer-traits serve`'s app with uvicorn on a loopback
port in this process, and times real HTTP requests (a keep-alive client, as a browser) to the trait list
(first page, a filtered page, a deep page), the photo list and the photo page. Reports median and 95th
percentile per page, with 95% bootstrap intervals for both.

    python -m evaluation.benchmarks.web_latency [--rows 10000] [--requests 60] [--db URL] [--model MODEL_DIR]
"""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

BUDGET_MS = 300.0
SPECIES = [f"Genus{i // 2} species{i}" for i in range(40)]
PARTS = [("forewing", "colour"), ("hindwing margin", "colour"), ("forewing band", "colour"), ("body", "colour"),
         ("hindwing tail", "presence"), ("forewing spot", "pattern")]
VALUES = ["red", "orange", "yellow", "black", "white", "present", "spotted"]
EXPERT = ["confirmed", "contradicted", "new", None]


def _result(i: int, target: str, contrast: str) -> dict:
    rng = random.Random(i)
    items, regions = [], []
    for k in range(3):
        regions.append({"index": k, "box": [4 * k, 4 * k, 40 + 4 * k, 30 + 4 * k], "mass": 0.3, "area": 0.1,
                        "peak": 0.9, "location": "centre"})
    for rank in range(1, 6):
        part, attribute = rng.choice(PARTS)
        value = rng.choice(VALUES)
        items.append({"trait": {"part": part, "attribute": attribute, "value": value, "text": f"{value} {part}"},
                      "phrase": f"{value} {part}", "region": rng.choice([0, 1, 2, None]),
                      "score": rng.random(), "contrast_score": rng.random(), "direction": rng.choice("+-"),
                      "confidence": rng.choice(["strong", "moderate", "weak"]), "expert_status": rng.choice(EXPERT),
                      "rank": rank})
    return {"text": f"{target} differs from {contrast}.", "target_species": target, "contrast_species": contrast,
            "target_probability": 0.8, "uncertain": False, "traits": items, "regions": regions,
            "provenance": {"method": "finer", "gamma": 0.6, "scorer": "color"}, "warnings": []}


def fill(url: str, rows: int, photo: Path, fingerprint: str | None) -> tuple[int, list[int]]:
    """Write rows trait assertions (5 per photo description); returns (seconds, result ids)."""
    from traits.db import ImageRecord, TraitDB
    from traits.review import browse, set_status

    t0 = time.perf_counter()
    with TraitDB(url) as db:
        run = db.start_run({"benchmark": "web_latency", "rows": rows}, classifier="benchmark",
                           classifier_sha256=fingerprint)
        ids = []
        for i in range(rows // 5):
            target, contrast = SPECIES[2 * (i % 20)], SPECIES[2 * (i % 20) + 1]
            ids += db.write_image_results(run.id, ImageRecord(f"{i:064x}", str(photo), target, width=96, height=96),
                                          [_result(i, target, contrast)])
        db.finish_run(run.id)
        curated = [r["id"] for r in browse(db, limit=rows)][::5]
        for start in range(0, len(curated), 500):
            set_status(db, curated[start:start + 500], "accepted", "benchmark", "bulk")
    return int(time.perf_counter() - t0), ids


def serve(app) -> tuple[str, object]:
    """Run app on a free loopback port in a thread; returns (base URL, server)."""
    import socket

    import uvicorn

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started:
        time.sleep(0.05)
    return f"http://127.0.0.1:{port}", server


def interval(samples: list[float], stat, n_boot: int = 2000, seed: int = 0) -> tuple[float, float]:
    """95% bootstrap interval of stat over samples."""
    rng = np.random.default_rng(seed)
    arr = np.asarray(samples)
    boots = [stat(rng.choice(arr, size=len(arr), replace=True)) for _ in range(n_boot)]
    return float(np.percentile(boots, 2.5)), float(np.percentile(boots, 97.5))


def p95(x) -> float:
    """95th percentile."""
    return float(np.percentile(x, 95))


def time_pages(base: str, pages: dict[str, list[str]], n: int) -> dict[str, list[float]]:
    """Milliseconds per request for each page kind (two warm-up requests each first)."""
    import httpx

    out: dict[str, list[float]] = {}
    with httpx.Client(base_url=base, timeout=30) as client:
        for name, urls in pages.items():
            for u in urls[:2]:
                client.get(u).raise_for_status()
            times = []
            for k in range(n):
                t0 = time.perf_counter()
                r = client.get(urls[k % len(urls)])
                r.raise_for_status()
                times.append((time.perf_counter() - t0) * 1000)
            out[name] = times
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rows", type=int, default=10_000, help="Trait assertions to write (5 per photo).")
    ap.add_argument("--requests", type=int, default=60, help="Timed requests per page kind.")
    ap.add_argument("--db", default=None, help="An empty database URL (default: a new SQLite file).")
    ap.add_argument("--model", type=Path, default=None, help="Attach a model (the photo page then also looks up "
                                                             "its reference photos).")
    args = ap.parse_args()
    import torch
    from PIL import Image

    from pipeline.web import WebConfig, create_app

    torch.set_num_threads(1)
    tmp = Path(tempfile.mkdtemp(prefix="finer-traits-web-bench-"))
    photo = tmp / "photo.png"
    Image.new("RGB", (96, 96), (200, 80, 40)).save(photo)
    url = args.db or f"sqlite:///{tmp / 'traits.sqlite'}"
    fingerprint = None
    if args.model is not None:
        from pipeline.batch import classifier_fingerprint

        fingerprint = classifier_fingerprint(args.model)[1]
    seconds, result_ids = fill(url, args.rows, photo, fingerprint)
    app = create_app(WebConfig(db=url, models=[args.model] if args.model else [], uploads=tmp / "uploads"))
    base, server = serve(app)
    rng = random.Random(0)
    pages = {
        "trait list, page 1": ["/traits"],
        "trait list, filtered (species + pending + confirmed)": [
            f"/traits?species={SPECIES[2 * i].replace(' ', '+')}&status=pending&expert=confirmed" for i in range(20)],
        "trait list, page 100": ["/traits?page=100"],
        "photo list, page 1": ["/photos"],
        "photo page": [f"/result/{rng.choice(result_ids)}" for _ in range(args.requests)],
    }
    times = time_pages(base, pages, args.requests)
    server.should_exit = True
    print(f"{args.rows} trait assertions ({len(result_ids)} photo descriptions) written in {seconds} s to "
          f"{url.split('://')[0]}; {args.requests} requests per page over HTTP (uvicorn, keep-alive client), "
          f"torch threads 1.")
    print("| page | median ms [95% CI] | 95th percentile ms [95% CI] | max ms | <= 300 ms |")
    print("| --- | --- | --- | --- | --- |")
    for name, t in times.items():
        med, q95 = statistics.median(t), p95(t)
        (ml, mh), (ql, qh) = interval(t, np.median), interval(t, p95)
        ok = "yes" if q95 <= BUDGET_MS else "no"
        print(f"| {name} | {med:.1f} [{ml:.1f}, {mh:.1f}] | {q95:.1f} [{ql:.1f}, {qh:.1f}] | {max(t):.1f} | {ok} |")


if __name__ == "__main__":
    main()
