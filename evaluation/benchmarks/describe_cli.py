"""Benchmark: `finer-traits describe` with one photo against ten photos in one call (issue 18).

The model, scorer and reference scores load once per call, so ten photos should cost less than twice one. Both
calls are timed wall-clock in fresh processes, after one warm-up call that fills the model folder's reference
cache (as a taxonomist's second call would find it). Without --model, a synthetic species dataset and a model
are made once in --work and reused. --threads sets OMP_NUM_THREADS for the timed calls: on a shared machine two
torch threads per process spin against other jobs and a 128 px photo then costs seconds instead of 0.2 s.

    python -m evaluation.benchmarks.describe_cli [--model MODEL_DIR --contrast SPECIES --target SPECIES PHOTO ...]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd

from evaluation.synthetic import make_species
from pipeline.train import train_classifier


def synthetic_setup(work: Path) -> tuple[Path, str, str, list[Path]]:
    """(model folder, target, contrast, ten test photos of the target) on the synthetic species, made once."""
    data = make_species(work / "species", n_per_species=40, image_size=128, seed=0)
    model = work / "model"
    if not (model / "card.json").is_file():
        train_classifier(data, model, image_size=128, device="cpu", seed=0)
    manifest = pd.read_csv(data / "manifest.csv")
    rows = manifest[manifest["species"] == "Synthia aurantiaca"]
    return model, "Synthia aurantiaca", "Synthia rubra", [data / p for p in rows["image"][:10]]


def cli_seconds(photos: list[Path], model: Path, target: str, contrast: str, threads: int | None = None) -> float:
    """Wall time of one `finer-traits describe` call on photos (a fresh process, as a user runs it)."""
    cmd = [sys.executable, "-m", "pipeline.cli", "describe", *map(str, photos), "--model", str(model),
           "--contrast", contrast, "--target", target, "--device", "cpu", "--json"]
    env = {**os.environ, **({"OMP_NUM_THREADS": str(threads)} if threads else {})}
    t0 = time.perf_counter()
    subprocess.run(cmd, capture_output=True, check=True, env=env)
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("photos", nargs="*", type=Path)
    ap.add_argument("--model", type=Path)
    ap.add_argument("--target")
    ap.add_argument("--contrast")
    ap.add_argument("--work", type=Path, default=Path("runs/bench-describe-cli"))
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=None, help="OMP_NUM_THREADS for the timed calls (default: unset)")
    args = ap.parse_args()
    if args.model is None:
        model, target, contrast, photos = synthetic_setup(args.work)
    else:
        model, target, contrast, photos = args.model, args.target, args.contrast, args.photos
    if len(photos) < 10:
        ap.error("give at least ten photos (or none, for the synthetic set-up)")
    photos = photos[:10]
    cli_seconds(photos[:1], model, target, contrast)  # warm-up: reference scores cached in the model folder
    one = [cli_seconds(photos[:1], model, target, contrast, args.threads) for _ in range(args.repeats)]
    ten = [cli_seconds(photos, model, target, contrast, args.threads) for _ in range(args.repeats)]
    ratio = statistics.median(ten) / statistics.median(one)
    print(f"model {model}, {target} vs {contrast}, {args.repeats} runs each (median, min-max), "
          f"OMP_NUM_THREADS={args.threads or os.environ.get('OMP_NUM_THREADS', 'unset')}, "
          f"load average {os.getloadavg()[0]:.1f}")
    print(f"1 photo:   {statistics.median(one):.2f} s ({min(one):.2f}-{max(one):.2f})")
    print(f"10 photos: {statistics.median(ten):.2f} s ({min(ten):.2f}-{max(ten):.2f})")
    print(f"10 photos / 1 photo = {ratio:.2f} (budget < 2): {'PASS' if ratio < 2 else 'FAIL'}")


if __name__ == "__main__":
    main()
