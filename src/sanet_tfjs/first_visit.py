"""A first visit to the built site, measured as a new user meets it: `scripts/first-visit.sh`.

For each browser set-up (headless Chromium as it comes, whose WebGL is SwiftShader's software
renderer; and with SwiftShader's WebGPU adapter as well), a fresh profile opens the site with
nothing chosen by hand, as a plain static host serves it (no COOP/COEP headers: the page's
service worker isolates it), and presses Stylize on the examples it has chosen at a maximum
resolution of 256; then another fresh profile does the same with wasm chosen by hand
(`?backend=wasm`). Prints what auto chose and why, the first stylization's time against
wasm's, and the model bytes the first visit downloaded. Timings are printed, never asserted.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .runtimes.browser import WEBGPU_SOFTWARE_FLAGS, StylePage, chromium
from .server import serve_directory

SETUPS = {"software WebGL": (), "software WebGL and WebGPU": WEBGPU_SOFTWARE_FLAGS}


def visit(site: Path, flags: tuple[str, ...], query: str, resolution: int, cores: int | None):
    """One first visit: (stats, choice text, seconds to ready, model bytes downloaded)."""
    with serve_directory(site) as server, chromium(flags=flags) as context:
        page = StylePage(context, f"{server.url}/?{query}", cores=cores)
        sizes: list[int] = []
        page.page.on(
            "response",
            lambda response: (
                "/model" in response.url and response.ok and sizes.append(len(response.body()))
            ),
        )
        if page.wait_for_phase("ready") != "ready":
            raise SystemExit(f"the page did not start: {page.status()}")
        if page.stylize(1, resolution) != "done":
            raise SystemExit(f"the page failed to stylize: {page.status()}")
        stats = page.stats()
        return stats, page.choice(), sum(sizes)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--site", default="artifacts/site")
    parser.add_argument("--resolution", type=int, default=256)
    parser.add_argument("--cores", type=int, help="cores each tab reports (default: the real)")
    args = parser.parse_args(argv)
    site = Path(args.site)
    for setup, flags in SETUPS.items():
        auto, choice, downloaded = visit(site, flags, "", args.resolution, args.cores)
        wasm, _, _ = visit(site, flags, "backend=wasm", args.resolution, args.cores)
        auto_s, wasm_s = auto["runs"][0]["ms"] / 1e3, wasm["runs"][0]["ms"] / 1e3
        print(f"{setup}: auto chose {auto['backend']} ({auto['bundle']['name']} bundle)")
        print(f"  {choice}")
        print(
            f"  first {args.resolution}-px stylization: auto {auto_s:.2f} s, wasm by hand "
            f"{wasm_s:.2f} s ({auto_s / wasm_s:.2f}x); threads {auto['threads']}"
        )
        print(
            f"  model downloaded on the first visit: {downloaded / 1e6:.1f} MB "
            f"(the {auto['bundle']['name']} bundle: {auto['bundle']['bytes'] / 1e6:.1f} MB); "
            f"model load {auto['modelLoadMs'] / 1e3:.1f} s, warm-up {auto['warmupMs'] / 1e3:.1f} s"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
