"""The built bundle on a GPU, measured: `python -m sanet_tfjs.gpu_check` (docs/gpu.md).

Runs the site's model bundle (artifacts/site/model/, or model-small/) in Node on
tfjs-backend-webgpu over Dawn (js/gpu_model.mjs; the npm package `webgpu`), on the
benchmark's pair at each resolution: a warm-up, then timed runs (their median), the GPU memory
tfjs holds and the process's resident memory, and the max abs difference from PyTorch (the
patched model, artifacts/patched/). It runs twice: with js/sanet.mjs's small-int32 work-around
(sizes kept on the CPU) and without it, to show whether this GPU still needs it.

Without a GPU, Dawn falls back to SwiftShader (Vulkan on the CPU): the script says so, and
its times are then no GPU's. Needs the repository's .venv (torch, for the reference) and
node_modules (copy both along to a GPU machine without registry access).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from .config import load_config
from .images import bench_images
from .patch import load_patched_model
from .repo import ROOT
from .stylize import reference_stylize

RUNNER = ROOT / "js" / "gpu_model.mjs"
BUNDLES = {"exact": "model", "small": "model-small"}
# Dawn talks to the GPU through Vulkan on Linux: the system's loader (Debian: libvulkan1) and
# the GPU's driver. Where there is no loader (this project's CPU machines), Debian's Chromium
# ships one with SwiftShader's Vulkan driver: used then, so the script still runs, in software.
CHROMIUM_VULKAN = Path("/usr/lib/chromium")


def vulkan_environment() -> tuple[dict[str, str], str]:
    """The environment Node runs in, and what it says of the Vulkan it finds."""
    import ctypes.util
    import os

    environment = dict(os.environ)
    if ctypes.util.find_library("vulkan"):
        return environment, "the system's Vulkan loader"
    icd = CHROMIUM_VULKAN / "vk_swiftshader_icd.json"
    if not icd.is_file():
        raise SystemExit("no Vulkan loader (install libvulkan1 and the GPU's Vulkan driver)")
    environment["LD_LIBRARY_PATH"] = ":".join(
        filter(None, [str(CHROMIUM_VULKAN), environment.get("LD_LIBRARY_PATH")])
    )
    environment["VK_ICD_FILENAMES"] = str(icd)
    return environment, f"no system Vulkan loader: Chromium's, with SwiftShader ({icd})"


def run_on_gpu(
    model_dir: Path, cases: list[tuple], runs: int, cpu_forward: bool, environment: dict
) -> dict:
    """js/gpu_model.mjs on (content, style, iters, max_resolution) cases; results attached."""
    with tempfile.TemporaryDirectory(prefix="gpu-cases-") as folder:
        folder = Path(folder)
        specs = []
        for index, (content, style, iters, max_resolution) in enumerate(cases):
            entry = {"iters": iters, "max_resolution": max_resolution}
            for name, image in (("content", content), ("style", style)):
                np.ascontiguousarray(image, np.float32).tofile(folder / f"{name}_{index}.bin")
                entry[name] = {"file": f"{name}_{index}.bin", "shape": list(image.shape)}
            specs.append(entry)
        (folder / "cases.json").write_text(json.dumps(specs))
        command = ["node", str(RUNNER), str(model_dir.resolve()), str(folder), str(runs)]
        done = subprocess.run(
            [*command, *([] if cpu_forward else ["--no-cpu-forward"])],
            capture_output=True,
            text=True,
            cwd=ROOT,
            env=environment,
        )
        if done.returncode != 0:
            raise SystemExit(f"js/gpu_model.mjs failed:\n{done.stderr[-3000:]}")
        report = json.loads((folder / "results.json").read_text())
        for index, entry in enumerate(report["results"]):
            if "shape" in entry:
                data = np.fromfile(folder / f"result_{index}.bin", np.float32)
                entry["result"] = data.reshape(entry["shape"])
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pipeline", default=str(ROOT / "pipeline.yaml"))
    parser.add_argument("--bundle", choices=sorted(BUNDLES), default="exact")
    parser.add_argument("--resolutions", type=int, nargs="+", default=[256, 512, 1024])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args(argv)
    config = load_config(Path(args.pipeline))
    artifacts = Path(args.pipeline).parent / config.artifacts_dir
    model_dir = artifacts / "site" / BUNDLES[args.bundle]
    if not (model_dir / "model.json").is_file():
        raise SystemExit(f"no bundle in {model_dir}: build the site first (doit page)")
    model = load_patched_model(artifacts / "patched", config.section("model")["width_divisor"])
    content, style = bench_images()
    cases = [(content, style, 1, resolution) for resolution in args.resolutions]
    references = [reference_stylize(model, *case) for case in cases]
    environment, vulkan = vulkan_environment()
    print(f"Vulkan: {vulkan}")
    figures: dict = {"bundle": args.bundle, "vulkan": vulkan, "runs": {}}
    for cpu_forward in (False, True):
        report = run_on_gpu(model_dir, cases, args.runs, cpu_forward, environment)
        adapter = report["adapter"]
        figures["adapter"] = adapter
        label = "with the work-around" if cpu_forward else "without the work-around"
        rows = []
        results = zip(args.resolutions, report["results"], references, strict=True)
        for resolution, entry, reference in results:
            row: dict = {"max_resolution": resolution}
            if "error" in entry:
                row["error"] = entry["error"]
            else:  # the result at the content's size, as PyTorch's
                row |= {
                    "median_ms": statistics.median(entry["ms"]),
                    "warmup_ms": entry["warmupMs"],
                    "gpu_mb": entry["gpuBytes"] / 1e6 if entry["gpuBytes"] else None,
                    "rss_mb": entry["rssBytes"] / 1e6,
                    "max_abs": float(np.abs(entry["result"] - reference).max()),
                }
            rows.append(row)
        figures["runs"]["cpu_forward" if cpu_forward else "no_cpu_forward"] = rows
        kind = "SOFTWARE (not a GPU)" if adapter["software"] else "hardware"
        print(f"adapter: {adapter} -> {kind}; {label}")
        for row in rows:
            if "error" in row:
                why = (
                    " (tfjs-backend-webgpu reads GPU data synchronously through OffscreenCanvas,"
                    " a browser API: whether the work-around is needed is for a browser to show)"
                    if "OffscreenCanvas" in row["error"]
                    else ""
                )
                print(f"  {row['max_resolution']:>5} px: failed: {row['error'][:200]}{why}")
                continue
            print(
                f"  {row['max_resolution']:>5} px: {row['median_ms'] / 1e3:8.3f} s median of "
                f"{args.runs} (warm-up {row['warmup_ms'] / 1e3:.2f} s), GPU "
                f"{row['gpu_mb'] or 0:.0f} MB, process {row['rss_mb']:.0f} MB, max abs vs "
                f"PyTorch {row['max_abs'] * 255:.2f}/255"
            )
    if figures["adapter"]["software"]:
        print("Dawn's adapter is software (SwiftShader): these times are the CPU's, not a GPU's.")
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
