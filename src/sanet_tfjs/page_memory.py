"""Page memory over a long visit to the built site, as a user meets it: `scripts/page-memory.sh`.

A fresh Chromium profile opens the site as a plain static host serves it (the page's service
worker isolates it, so wasm threads run), takes the bundled photo (or `--content`), and
stylizes `--runs` times, alternating the `--sizes` (maximum resolutions) and the bundled
paintings (or `--style`). After each run it prints the time, the page's memory as Chromium
accounts it (`performance.measureUserAgentSpecificMemory`: the window, including the wasm
heap, and each worker apart), the wasm heap, and the page's own estimate of what the run
needed (its memory guard). Figures are printed, never asserted. A worker that runs a wasm
thread sits in Atomics.wait and never answers, so with more than one thread that worker's
own JS heap (about 17 MB) is left out of the figure.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from .runtimes.browser import StylePage, chromium
from .server import serve_directory

MB = 1e6
RUN_TIMEOUT_MS = 1_800_000  # a 2048x1536 run takes about 3 minutes on one thread here
MEASURE_PAGE = """async () => {
  const measured = await performance.measureUserAgentSpecificMemory();
  const parts = {window: 0, workers: 0, workerCount: 0, other: 0};
  for (const entry of measured.breakdown) {
    const scopes = entry.attribution.map((a) => a.scope);
    if (scopes.includes('DedicatedWorkerGlobalScope')) {
      parts.workers += entry.bytes;
      parts.workerCount += 1;
    } else if (scopes.includes('Window')) parts.window += entry.bytes;
    else parts.other += entry.bytes;
  }
  return {total: measured.bytes, ...parts, heap: tf.backend().wasm.HEAPU8.buffer.byteLength};
}"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--site", type=Path, default=Path("artifacts/site"))
    parser.add_argument("--cores", type=int, help="cores the tab reports (default: the real)")
    parser.add_argument("--sizes", default="256,384,512", help="maximum resolutions, in turn")
    parser.add_argument("--runs", type=int, default=12)
    parser.add_argument("--content", type=Path, help="the photo (default: the bundled one)")
    parser.add_argument("--style", type=Path, help="the painting (default: both bundled, in turn)")
    parser.add_argument(
        "--memory-mb",
        type=int,
        help="the tab's memory budget for the page's guard (?memory_mb=): to measure a size the "
        "guard refuses on this machine",
    )
    args = parser.parse_args(argv)
    examples = args.site / "examples"
    content = args.content or examples / "grace_hopper.jpg"
    styles = [args.style] if args.style else [examples / "swirls.png", examples / "waves.png"]
    sizes = [int(size) for size in args.sizes.split(",")]
    with serve_directory(args.site) as server, chromium() as context:
        budget = f"&memory_mb={args.memory_mb}" if args.memory_mb else ""
        page = StylePage(context, f"{server.url}/?backend=wasm{budget}", cores=args.cores)
        page.page.set_default_timeout(RUN_TIMEOUT_MS)
        if page.wait_for_phase("ready") != "ready":
            raise SystemExit(f"the page did not start: {page.status()}")
        default = page.page.input_value("#max-resolution")
        print(f"{page.runtime()} Default maximum resolution: {default}.", flush=True)
        page.choose("content", content)
        for run in range(args.runs):
            if run < len(styles) or len(styles) > 1:  # the same file again changes nothing
                page.choose("style", styles[run % len(styles)])
            size = sizes[run % len(sizes)]
            started = time.perf_counter()
            if page.stylize(1, size) != "done":
                raise SystemExit(f"run {run + 1} at {size} failed: {page.status()}")
            seconds = time.perf_counter() - started
            memory = page.page.evaluate(MEASURE_PAGE)
            needed = page.stats()["runs"][-1]["neededBytes"]
            print(
                f"run {run + 1:2d} at {size}: {seconds:6.1f} s; page {memory['total'] / MB:,.0f} MB"
                f" (window {memory['window'] / MB:,.0f} MB, of it wasm heap"
                f" {memory['heap'] / MB:,.0f} MB; {memory['workerCount']} workers"
                f" {memory['workers'] / MB:,.0f} MB; other {memory['other'] / MB:,.0f} MB);"
                f" the guard's estimate {needed / MB:,.0f} MB",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
