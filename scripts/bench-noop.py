"""Benchmark: wall time of a no-op `doit` (everything up to date), median of 7 runs.

    .venv/bin/python scripts/bench-noop.py              # in this checkout
    .venv/bin/python scripts/bench-noop.py --restored   # also: artifacts/ restored into a
                                                        # fresh clone elsewhere (new mtimes)

Builds first if needed (not timed), then checks that every timed run executed no task. The
restored case clones HEAD (commit first: a dirty tree's clone is a different input) and copies
artifacts/ into it as a CI cache restore does; its first run re-reads files whose mtime
changed, and later runs use the cached sums.
"""

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOIT = [sys.executable, "-m", "doit"]
RUNS = 7


def timed_noops(folder: Path) -> list[float]:
    times = []
    for _ in range(RUNS):
        started = time.perf_counter()
        done = subprocess.run(DOIT, cwd=folder, check=True, capture_output=True, text=True)
        times.append(time.perf_counter() - started)
        executed = [line for line in done.stdout.splitlines() if line.startswith(".  ")]
        if executed:
            sys.exit(f"not a no-op in {folder}: doit executed {executed}")
    return times


def summary(label: str, times: list[float]) -> str:
    return (
        f"{label}: first {times[0]:.3f} s, median {statistics.median(times):.3f} s, "
        f"min {min(times):.3f} s, max {max(times):.3f} s over {len(times)} runs"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--restored", action="store_true", help="also time a restored cache")
    restored = parser.parse_args().restored

    subprocess.run(DOIT, cwd=ROOT, check=True, capture_output=True)
    print(summary("no-op doit", timed_noops(ROOT)))
    if not restored:
        return
    with tempfile.TemporaryDirectory(prefix="sanet-restored-") as scratch:
        clone = Path(scratch) / "elsewhere" / "clone"
        subprocess.run(["git", "clone", "--quiet", str(ROOT), str(clone)], check=True)
        (clone / "node_modules").symlink_to(ROOT / "node_modules")
        shutil.copytree(
            ROOT / "artifacts",
            clone / "artifacts",
            copy_function=shutil.copyfile,
            dirs_exist_ok=True,
        )
        print(summary("restored cache, another clone", timed_noops(clone)))


if __name__ == "__main__":
    main()
