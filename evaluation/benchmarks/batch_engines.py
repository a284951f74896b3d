"""Benchmark: the local and Ray batch engines on Leeds test photos, and a 1,000,000-row Parquet manifest.

    python -m evaluation.benchmarks.batch_engines --model MODEL_DIR --out /tmp/batch-engines [--limit 60]
    python -m evaluation.benchmarks.batch_engines --million --out /tmp/batch-engines [--rows 1000000]

Throughput: the first --limit photos of the Leeds test split (nearest-species contrasts) described into a fresh
SQLite database by the local engine with 1 and 2 workers and the Ray engine with 1 and 2 actors, one after the
other in this process, --repeats rounds (the order rotates per round), every describer on one torch thread. Each time is a whole `run_batch` call:
planning, model loading in every worker/actor, describing, writing. Ray itself is started once before (its
start-up is reported apart: a cluster is started once, not per run). Ray's overhead per photo is
(ray time - local time) / local time at equal parallelism.

--million: a simulated manifest of --rows rows is written as Parquet, then read by Ray Data, planned and
streamed through the Ray engine's actors in a child process whose peak memory is measured (ru_maxrss of the
driver, and the peak summed RSS of the Ray worker processes, sampled every 0.5 s). BENCHMARK-ONLY STUBS, so
that no photo is read or described: the file inspector hashes the path string instead of the file (the photos
do not exist), the actors' describer returns no results, and outcomes are counted instead of stored.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import os
import resource
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from pipeline.paths import leeds_root


def _leeds_manifest(out: Path, limit: int) -> tuple[Path, int]:
    root = leeds_root()
    if root is None:
        sys.exit("Leeds butterflies not found: set FINER_TRAITS_DATA.")
    with open(root / "manifest.csv", newline="") as fh:
        rows = [r for r in csv.DictReader(fh) if r["split"] == "test"]
    rows = rows[:limit] if limit else rows
    manifest = out / "test-manifest.csv"
    with open(manifest, "w", newline="") as fh:  # absolute paths: the data stays where it is
        w = csv.writer(fh)
        w.writerow(["image", "scientific_name"])
        for r in rows:
            w.writerow([str(root / r["image"]), r["scientific_name"]])
    return manifest, len(rows)


def throughput(args: argparse.Namespace) -> dict:
    """Photos per second of each engine and parallelism; Ray's overhead relative to local."""
    import ray
    import torch

    from pipeline.batch import run_batch

    # Equal parallelism: the serial local engine describes in this process, which would otherwise use every
    # core's torch threads, while each pool worker and each actor uses one.
    torch.set_num_threads(1)
    manifest, n = _leeds_manifest(args.out, args.limit)
    model = args.out / "model"  # a copy: describe caches reference scores in the model folder
    if not model.exists():
        shutil.copytree(args.model, model)
    t0 = time.perf_counter()
    ray.init(num_cpus=os.cpu_count(), include_dashboard=False, logging_level="WARNING",
             runtime_env={"env_vars": {"PYTHONPATH": os.environ.get("PYTHONPATH", ""), "OMP_NUM_THREADS": "1"}})
    ray_start = time.perf_counter() - t0
    # Warm the reference-score cache once, so no configuration pays for computing it.
    run_batch(manifest, model, args.out / "warm.sqlite", progress=False)
    configs = [("local", 1), ("local", 2), ("ray", 1), ("ray", 2)]
    times: dict[str, list[float]] = {f"{e}-{w}": [] for e, w in configs}
    for r in range(args.repeats):
        for engine, workers in configs[r % 4:] + configs[:r % 4]:
            db = args.out / f"{engine}-{workers}-{r}.sqlite"
            db.unlink(missing_ok=True)
            t = time.perf_counter()
            report = run_batch(manifest, model, db, engine=engine, workers=workers, progress=False)
            times[f"{engine}-{workers}"].append(time.perf_counter() - t)
            assert report.described == n and not report.failed, report.failed
            print(f"round {r}: {engine} x{workers}: {times[f'{engine}-{workers}'][-1]:.1f} s", file=sys.stderr)
    best = {k: min(v) for k, v in times.items()}
    return {
        "photos": n, "repeats": args.repeats, "ray_start_s": round(ray_start, 1),
        "seconds": {k: [round(x, 1) for x in v] for k, v in times.items()},
        "photos_per_s_best": {k: round(n / v, 3) for k, v in best.items()},
        "ray_overhead_vs_local": {str(w): round(best[f"ray-{w}"] / best[f"local-{w}"] - 1, 3) for w in (1, 2)},
        "load_average": os.getloadavg(),
    }


def _write_million(path: Path, rows: int, species: list[str]) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = pa.schema([("image", pa.string()), ("species", pa.string()), ("licence", pa.string())])
    with pq.ParquetWriter(path, schema) as writer:
        for start in range(0, rows, 100_000):
            idx = range(start, min(rows, start + 100_000))
            writer.write_table(pa.table({
                "image": [f"drawer{i // 1000:04d}/specimen{i:07d}.jpg" for i in idx],
                "species": [species[i % len(species)] for i in idx],
                "licence": ["CC-BY 4.0"] * len(idx)}, schema=schema))


def _stub_inspect(path: Path) -> tuple[str, None, None]:
    """BENCHMARK STUB: a hash of the path, not of the (non-existent) file."""
    return hashlib.sha256(str(path).encode()).hexdigest(), None, None


def _stub_factory(spec: Any) -> Any:
    """BENCHMARK STUB: an actor describer that describes nothing."""
    return lambda item, contrasts: []


def million_child(args: argparse.Namespace) -> dict:
    """In a fresh process: read, plan and stream the simulated manifest through the Ray engine; peak memory."""
    import psutil
    import ray

    from pipeline.batch import Planner
    from pipeline.batch.engines import DescribeSpec
    from pipeline.batch.plan import schedule
    from pipeline.batch.ray_engine import RayEngine
    from pipeline.batch.writer import BatchReport
    from pipeline.species import SpeciesIndex
    from traits.db import TraitDB

    species = SpeciesIndex([f"Species {chr(65 + i)}us" for i in range(10)])
    ray.init(num_cpus=os.cpu_count(), include_dashboard=False, logging_level="WARNING",
             runtime_env={"env_vars": {"PYTHONPATH": os.environ.get("PYTHONPATH", "")}})
    peak_workers, peak_uss = [0], [0]
    done = threading.Event()
    me = psutil.Process()

    def sample() -> None:  # Ray's worker processes are children of the raylet, not of this driver
        while not done.is_set():
            total = sum(p.info["memory_info"].rss for p in psutil.process_iter(["name", "memory_info", "cmdline"])
                        if p.pid != me.pid and p.info["memory_info"] and "ray::" in " ".join(p.info["cmdline"] or []))
            peak_workers[0] = max(peak_workers[0], total)
            peak_uss[0] = max(peak_uss[0], me.memory_full_info().uss)  # private: without object-store pages
            time.sleep(0.5)

    threading.Thread(target=sample, daemon=True).start()
    engine = RayEngine(actors=2, progress=False, factory=_stub_factory, block_tasks=args.block_tasks)
    t0 = time.perf_counter()
    planner = Planner(args.manifest, species, None, tables=engine.manifest_tables(), inspect=_stub_inspect)
    rows = planner.scan()
    scanned = time.perf_counter() - t0
    counted = [0]

    def count(task: Any, outcome: Any) -> None:
        counted[0] += 1

    with TraitDB(args.out / "million.sqlite") as tdb:
        run = tdb.start_run({"benchmark": "million", "t": time.time()}, classifier="stub")
        report = BatchReport(run.id, run.resumed, tdb.url, rows)
        engine.describe(schedule(planner, tdb, run.id, report), DescribeSpec(Path("."), "stub", None, 5), count)
    done.set()
    return {"rows": rows, "streamed_through_actors": counted[0], "duplicates": len(report.duplicates),
            "scan_s": round(scanned, 1), "total_s": round(time.perf_counter() - t0, 1),
            "driver_peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
            "driver_peak_uss_mb": round(peak_uss[0] / 2**20),
            "ray_workers_peak_rss_mb": round(peak_workers[0] / 2**20)}


def million(args: argparse.Namespace) -> dict:
    """Write the simulated manifest, then measure planning and streaming in a child process."""
    path = args.out / f"manifest-{args.rows}.parquet"
    if not path.exists():
        _write_million(path, args.rows, [f"Species {chr(65 + i)}us" for i in range(10)])
    cmd = [sys.executable, "-m", "evaluation.benchmarks.batch_engines", "--child", "--manifest", str(path),
           "--out", str(args.out), "--block-tasks", str(args.block_tasks)]
    out = subprocess.run(cmd, capture_output=True, text=True)
    if out.returncode:
        sys.exit(out.stderr[-3000:])
    result = json.loads(out.stdout.strip().splitlines()[-1])
    result["manifest_mb"] = round(path.stat().st_size / 2**20, 1)
    result["block_tasks"] = args.block_tasks
    return result


def main() -> None:
    """Run the benchmark and print a JSON summary."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", type=Path, help="A classifier trained on the Leeds train split.")
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--limit", type=int, default=60, help="The first N test photos (0: all 250).")
    ap.add_argument("--repeats", type=int, default=1, help="Rounds of the four configurations (best time kept).")
    ap.add_argument("--million", action="store_true", help="Only the simulated Parquet manifest measurement.")
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--block-tasks", type=int, default=16, help="--million: photos per Ray block (the engine's "
                                                                 "default: 16).")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--manifest", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    if args.child:
        print(json.dumps(million_child(args)))
        return
    if args.million:
        print(json.dumps(million(args), indent=2))
        return
    if args.model is None:
        ap.error("--model is needed (or --million)")
    print(json.dumps(throughput(args), indent=2))


if __name__ == "__main__":
    main()
