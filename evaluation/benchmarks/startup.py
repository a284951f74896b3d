"""Benchmark: how fast the command line starts (issue 18).

Measures, in fresh interpreters, (1) the cumulative import time of `pipeline.cli` reported by `python -X importtime`
and (2) the wall time of `finer-traits --help` (run as `python -m pipeline.cli --help`, which is what the console
script does), and checks that neither pulls in torch, timm, open_clip, spaCy or SQLAlchemy.

    python -m evaluation.benchmarks.startup [--repeats 7]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time

HEAVY = ("torch", "timm", "open_clip", "spacy", "sqlalchemy", "pandas", "transformers")
IMPORT_BUDGET_S = 0.5
HELP_BUDGET_S = 1.0


def import_seconds() -> float:
    """Cumulative import time of pipeline.cli in a fresh interpreter (python -X importtime), in seconds."""
    run = subprocess.run([sys.executable, "-X", "importtime", "-c", "import pipeline.cli"], capture_output=True,
                         text=True, check=True, env=os.environ.copy())
    for line in run.stderr.splitlines():
        parts = [p.strip() for p in line.removeprefix("import time:").split("|")]
        if len(parts) == 3 and parts[2] == "pipeline.cli":
            return int(parts[1]) / 1e6
    raise RuntimeError("pipeline.cli did not appear in the -X importtime output")


def help_seconds() -> float:
    """Wall time of `finer-traits --help` in a fresh interpreter, in seconds."""
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "pipeline.cli", "--help"], capture_output=True, check=True)
    return time.perf_counter() - t0


def heavy_modules_loaded() -> list[str]:
    """Which heavy libraries `import pipeline.cli` loads (should be none)."""
    code = f"import sys, pipeline.cli; print(' '.join(m for m in {HEAVY!r} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    return out.split()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeats", type=int, default=7)
    args = ap.parse_args()
    help_seconds()  # warm the file cache once
    imports = [import_seconds() for _ in range(args.repeats)]
    helps = [help_seconds() for _ in range(args.repeats)]
    heavy = heavy_modules_loaded()
    print(f"python {sys.version.split()[0]}, {args.repeats} runs each")
    print(f"import pipeline.cli (-X importtime, cumulative): median {statistics.median(imports):.3f} s, "
          f"max {max(imports):.3f} s (budget {IMPORT_BUDGET_S} s)")
    print(f"finer-traits --help (wall): median {statistics.median(helps):.3f} s, max {max(helps):.3f} s "
          f"(budget {HELP_BUDGET_S} s)")
    print(f"heavy libraries loaded at start: {', '.join(heavy) or 'none'}")
    ok = statistics.median(imports) < IMPORT_BUDGET_S and statistics.median(helps) < HELP_BUDGET_S and not heavy
    print("PASS" if ok else "FAIL")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
