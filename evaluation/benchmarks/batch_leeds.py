"""Benchmark: `finer-traits batch` over the Leeds test split, killed with SIGKILL part way and resumed.

    python -m evaluation.benchmarks.batch_leeds --model MODEL_DIR --out /tmp/batch-leeds [--kill-after 100]

MODEL_DIR: a classifier trained on the Leeds train split (`finer-traits train .../leeds-butterflies/manifest.csv`).
Prints photos per second, the rows written, and checks that the resumed run has no duplicates and that the
Darwin Core Archive export reads back with every row. Contrasts: each photo's nearest species per the classifier.
"""

from __future__ import annotations

import argparse
import csv
import json
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from pipeline.paths import leeds_root


def _count(db: Path, sql: str) -> int:
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5) as conn:
            return conn.execute(sql).fetchone()[0]
    except sqlite3.Error:
        return 0


def main() -> None:
    """Run the benchmark and print a JSON summary."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True, type=Path)
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--kill-after", type=int, default=100, help="SIGKILL the first batch after this many photos.")
    ap.add_argument("--limit", type=int, default=0, help="Only the first N test photos (0: all).")
    ap.add_argument("--workers", type=int, default=1)
    args = ap.parse_args()
    root = leeds_root()
    if root is None:
        sys.exit("Leeds butterflies not found: set FINER_TRAITS_DATA.")
    args.out.mkdir(parents=True, exist_ok=True)
    with open(root / "manifest.csv", newline="") as fh:
        rows = [r for r in csv.DictReader(fh) if r["split"] == "test"]
    rows = rows[: args.limit] if args.limit else rows
    manifest = args.out / "test-manifest.csv"
    with open(manifest, "w", newline="") as fh:  # absolute paths: the data stays where it is
        w = csv.writer(fh)
        w.writerow(["image", "scientific_name"])
        for r in rows:
            w.writerow([str(root / r["image"]), r["scientific_name"]])
    db = args.out / "leeds.sqlite"
    db.unlink(missing_ok=True)
    cli = [sys.executable, "-c", "import sys; from pipeline.cli import main; main(sys.argv[1:])"]
    cmd = [*cli, "batch", str(manifest), "--model", str(args.model), "--db", str(db), "--workers", str(args.workers),
           "--no-progress"]
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    while proc.poll() is None and _count(db, "SELECT count(DISTINCT image_id) FROM results") < args.kill_after:
        time.sleep(0.2)
    killed_at = _count(db, "SELECT count(DISTINCT image_id) FROM results")
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    first = time.perf_counter() - t0
    t1 = time.perf_counter()
    rc = subprocess.run(cmd, capture_output=True, text=True)
    second = time.perf_counter() - t1
    export = args.out / "leeds-dwca.zip"
    subprocess.run([*cli, "db", "export", "--format", "dwca", "--out", str(export), "--db", str(db)], check=False,
                   capture_output=True)
    from dwca.read import DwCAReader

    with DwCAReader(str(export)) as archive:
        dwca_rows = sum(len(core.extensions) for core in archive)
    photos = _count(db, "SELECT count(DISTINCT image_id) FROM results")
    summary = {
        "test_photos": len(rows), "killed_after_photos": killed_at, "first_part_s": round(first, 1),
        "resume_s": round(second, 1), "resume_exit_code": rc.returncode, "photos_stored": photos,
        "results": _count(db, "SELECT count(*) FROM results"),
        "duplicate_results": _count(db, "SELECT count(*) - count(DISTINCT run_id || '-' || image_id || '-' || "
                                        "contrast_taxon_id) FROM results"),
        "runs": _count(db, "SELECT count(*) FROM runs"), "regions": _count(db, "SELECT count(*) FROM regions"),
        "assertions": _count(db, "SELECT count(*) FROM trait_assertions"), "dwca_measurements": dwca_rows,
        "errors": _count(db, "SELECT count(*) FROM image_errors"),
        "resumed_photos_per_s": round((photos - killed_at) / second, 3) if second else None,
        "expert_statuses": _count(db, "SELECT count(*) FROM trait_assertions WHERE expert_status IS NOT NULL"),
    }
    print(json.dumps(summary, indent=2))
    if rc.returncode not in (0, 1):
        print(rc.stderr[-2000:], file=sys.stderr)


if __name__ == "__main__":
    main()
