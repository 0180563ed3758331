"""Benchmark: wall time of a no-op `doit` (everything up to date), median of 7 runs.

    .venv/bin/python scripts/bench-noop.py

Builds first if needed (not timed), then checks that the timed runs executed no task.
"""

import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOIT = [sys.executable, "-m", "doit"]

subprocess.run(DOIT, cwd=ROOT, check=True, capture_output=True)
times = []
for _ in range(7):
    started = time.perf_counter()
    done = subprocess.run(DOIT, cwd=ROOT, check=True, capture_output=True, text=True)
    times.append(time.perf_counter() - started)
    executed = [line for line in done.stdout.splitlines() if line.startswith(".  ")]
    if executed:
        sys.exit(f"not a no-op: doit executed {executed}")
print(
    f"no-op doit: median {statistics.median(times):.3f} s, min {min(times):.3f} s, "
    f"max {max(times):.3f} s over {len(times)} runs"
)
