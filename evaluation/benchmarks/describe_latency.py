"""Benchmark: latency of describe() for one 384 px photo on the CPU, warm (model loaded, references cached),
with the default offline pipeline (ColorScorer), and sequential throughput over several photos.

    python -m evaluation.benchmarks.describe_latency --model MODEL_DIR --contrast "Vanessa cardui" PHOTO [PHOTO ...]
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch

from pipeline.describe import Pipeline
from pipeline.images import load_image


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("photos", nargs="+", type=Path)
    ap.add_argument("--model", type=Path, required=True)
    ap.add_argument("--contrast", required=True)
    ap.add_argument("--target", default=None)
    ap.add_argument("--repeats", type=int, default=15)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    pipe = Pipeline.load(args.model, scorer="color", device="cpu")
    load_s = time.perf_counter() - t0
    photo = load_image(args.photos[0])
    t0 = time.perf_counter()
    pipe.describe(photo, args.contrast, target_species=args.target)  # cold: scores and caches the references
    cold_s = time.perf_counter() - t0
    times = []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        pipe.describe(photo, args.contrast, target_species=args.target)
        times.append(time.perf_counter() - t0)
    photos = [load_image(p) for p in args.photos]
    t0 = time.perf_counter()
    for p in photos:
        pipe.describe(p, args.contrast, target_species=args.target)
    batch_s = time.perf_counter() - t0
    print(f"photo {args.photos[0]} ({photo.size[0]}x{photo.size[1]}), threads {torch.get_num_threads()}")
    print(f"load {load_s:.2f} s; first call (references scored and cached) {cold_s:.2f} s")
    print(f"warm: median {statistics.median(times):.3f} s, min {min(times):.3f} s, max {max(times):.3f} s "
          f"over {len(times)} calls")
    print(f"throughput: {len(photos)} photos in {batch_s:.2f} s = {len(photos) / batch_s:.2f} photos/s")


if __name__ == "__main__":
    main()
