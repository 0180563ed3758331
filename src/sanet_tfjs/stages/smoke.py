"""Stage `smoke`: the built page, in real headless Chromium, against PyTorch.

For each backend the browser offers: open the page, load the example content photo and style
painting through the file pickers, press Stylize at each maximum resolution (twice: the first
run, then the same style again, which the page does not encode again), read the result pixels
of the second back and compare them with the PyTorch
stylization of exactly the images the page fed the model. Writes the verdicts (pixel errors, the
wasm thread count, cross-origin isolation: the site is served with COOP/COEP, as a host with
header control would) to smoke.json, its product, and the model load, warm-up and run times to
timings.json, a report beside it, with a screenshot per backend; fails on any console error,
failed request or mismatch. Chromium runs with a WebGPU adapter where it has none of its own
(SwiftShader's, on the CPU), so that the WebGPU backend is checked too. Those checks run the
exact (float32) bundle; where the site also carries the small bundle (the page's default), the
page runs both on the benchmark's pair at each resolution of tfjs.fidelity and the small one's
result must keep that budget (PSNR and SSIM) against the exact one's (sanet_tfjs.fidelity).
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import numpy as np

from ..fidelity import browser_fidelity, write_fitted_bench_pair
from ..files import atomic_output, write_json
from ..parity import ParityError
from ..patch import load_patched_model
from ..reports import (
    SmallBundleFidelity,
    SmokeBackend,
    SmokeBackendTimes,
    SmokeReport,
    SmokeRun,
    SmokeRunTimes,
    SmokeTimings,
)
from ..runtimes.browser import WEBGPU_SOFTWARE_FLAGS, BrowserError, StylePage, chromium
from ..server import serve_directory
from ..stylize import reference_stylize

CONTENT_EXAMPLE = "grace_hopper.jpg"
STYLE_EXAMPLE = "swirls.png"
SCREENSHOTS = "screenshots"  # one PNG per backend; like timings.json, a report no stage reads


def _check_backend(
    page: StylePage, site: Path, model, resolutions: list[int], iters: int
) -> tuple[list[SmokeRun], list[SmokeRunTimes]]:
    page.choose("content", site / "examples" / CONTENT_EXAMPLE)
    page.choose("style", site / "examples" / STYLE_EXAMPLE)
    runs, times = [], []
    for max_resolution in resolutions:
        timings, reused = [], []
        for _ in range(2):  # the first pays for kernel set-up and the style; the second not
            if page.stylize(iters, max_resolution) != "done":
                raise BrowserError(f"the page failed to stylize: {page.status()}")
            timings.append(page.stats()["runs"][-1]["ms"])
            reused.append(page.stats()["runs"][-1]["styleReused"])
        if reused[1] is not True:
            raise BrowserError("the page encoded the same style again on the second run")
        inputs = page.last_inputs()
        expected = reference_stylize(
            model,
            inputs["content"].astype(np.float32) / 255,
            inputs["style"].astype(np.float32) / 255,
            iters,
            max_resolution,
        )
        actual = page.result_pixels().astype(np.float32) / 255
        if actual.shape != expected.shape:
            raise ParityError(f"page result is {actual.shape}, PyTorch's {expected.shape}")
        runs.append(
            SmokeRun(
                max_resolution=max_resolution,
                iters=iters,
                content_shape=inputs["contentShape"],
                style_shape=inputs["styleShape"],
                max_abs=float(np.abs(actual - expected).max()),
            )
        )
        times.append(
            SmokeRunTimes(max_resolution=max_resolution, first_ms=timings[0], second_ms=timings[1])
        )
    return runs, times


def _stylize_pairs(page: StylePage, pairs: dict[int, tuple[Path, Path]]) -> list[np.ndarray]:
    results = []
    for resolution, (content, style) in pairs.items():
        page.choose("content", content)
        page.choose("style", style)
        if page.stylize(1, resolution) != "done":
            raise BrowserError(f"the page failed to stylize: {page.status()}")
        results.append(page.result_pixels())
    return results


def _check_small_bundle(browser, url: str, fidelity: dict, folder: Path) -> SmallBundleFidelity:
    """The small bundle's results against the exact one's, both from the page (wasm)."""
    pairs = {res: write_fitted_bench_pair(folder, res) for res in fidelity["resolutions"]}
    results = {}
    for bundle in ("exact", "small"):
        page = StylePage(browser, f"{url}/?backend=wasm&bundle={bundle}&expose=1")
        if page.wait_for_phase("ready") != "ready":
            raise BrowserError(f"the page did not start with the {bundle} bundle: {page.status()}")
        results[bundle] = _stylize_pairs(page, pairs)
        page.page.close()
    at = {}
    for res, small, exact in zip(pairs, results["small"], results["exact"], strict=True):
        measured = browser_fidelity(small, exact)
        at[str(res)] = {
            "psnr_db": round(measured["psnr_db"], 3),
            "ssim": round(measured["ssim"], 5),
        }
        print(
            f"  small bundle @ {res}: {measured['psnr_db']:.2f} dB PSNR, SSIM "
            f"{measured['ssim']:.4f} against exact, in Chromium (budget {fidelity['psnr_db']} dB, "
            f"{fidelity['ssim']})"
        )
    passed = all(
        m["psnr_db"] >= fidelity["psnr_db"] and m["ssim"] >= fidelity["ssim"] for m in at.values()
    )
    return SmallBundleFidelity(target=dict(fidelity), at=at, passed=passed)


def run_smoke_stage(
    site_dir: str,
    patched_dir: str,
    out_dir: str,
    width_divisor: int,
    backends: dict[str, list[int]],
    checked_backends: list[str],
    iters: int,
    max_abs: float,
    fidelity: dict,
) -> dict:
    site = Path(site_dir)
    model = load_patched_model(Path(patched_dir), width_divisor)
    report = SmokeReport(
        backends={}, tolerance_max_abs=max_abs, checked=checked_backends, passed=False, failures=[]
    )
    timings = SmokeTimings(backends={})
    failures = []
    with (
        atomic_output(Path(out_dir)) as staged,
        serve_directory(site, isolation_headers=True) as server,
        chromium(flags=WEBGPU_SOFTWARE_FLAGS) as browser,
    ):
        (staged / SCREENSHOTS).mkdir(parents=True)
        for backend, resolutions in backends.items():
            page = StylePage(browser, f"{server.url}/?backend={backend}&bundle=exact&expose=1")
            if page.wait_for_phase("ready") == "error":
                if "not available" in page.status():
                    report["backends"][backend] = {"offered": False, "status": page.status()}
                    print(f"  {backend}: not offered by this browser")
                    page.page.close()
                    continue
                raise BrowserError(f"the page did not start on {backend}: {page.status()}")
            stats = page.stats()
            runs, times = _check_backend(page, site, model, resolutions, iters)
            page.page.screenshot(path=str(staged / SCREENSHOTS / f"{backend}.png"), full_page=True)
            report["backends"][backend] = SmokeBackend(
                offered=True,
                threads=stats["threads"],
                cross_origin_isolated=stats["isolated"],
                runs=runs,
                console_errors=page.problems.console_errors,
                failed_requests=page.problems.failed_requests,
            )
            timings["backends"][backend] = SmokeBackendTimes(
                model_load_ms=stats["modelLoadMs"], warmup_ms=stats["warmupMs"], runs=times
            )
            for run, time in zip(runs, times, strict=True):
                print(
                    f"  {backend} @ {run['max_resolution']}: first {time['first_ms'] / 1e3:.2f} s,"
                    f" same style again {time['second_ms'] / 1e3:.2f} s, max abs vs PyTorch "
                    f"{run['max_abs'] * 255:.2f}/255"
                )
            print(
                f"  {backend}: model load {stats['modelLoadMs'] / 1e3:.2f} s, "
                f"warm-up {stats['warmupMs'] / 1e3:.2f} s; {page.runtime()}"
            )
            failures += [f"{backend}: console error: {e}" for e in page.problems.console_errors]
            failures += [f"{backend}: failed request: {r}" for r in page.problems.failed_requests]
            if backend in checked_backends:
                failures += [
                    f"{backend} @ {run['max_resolution']}: result differs from PyTorch by "
                    f"{run['max_abs'] * 255:.2f}/255 > {max_abs * 255:.2f}/255"
                    for run in runs
                    if run["max_abs"] > max_abs
                ]
            page.page.close()
        if "small" in json.loads((site / "build.json").read_text()).get("bundles", {}):
            with tempfile.TemporaryDirectory(prefix="bench-pairs-") as pairs:
                checked = _check_small_bundle(browser, server.url, fidelity, Path(pairs))
            report["small_bundle"] = checked
            failures += [
                f"small bundle @ {res}: {m['psnr_db']:.2f} dB PSNR, SSIM {m['ssim']:.4f} against "
                f"exact; the budget is {fidelity['psnr_db']} dB, {fidelity['ssim']}"
                for res, m in checked["at"].items()
                if m["psnr_db"] < fidelity["psnr_db"] or m["ssim"] < fidelity["ssim"]
            ]
        if not any(entry["offered"] for entry in report["backends"].values()):
            failures.append(f"none of the backends {list(backends)} is offered by this browser")
        report["passed"] = not failures
        report["failures"] = failures
        write_json(staged / "smoke.json", report)
        write_json(staged / "timings.json", timings)
        if failures:
            # Keep the evidence (report, screenshots) beside the outputs, never as the outputs.
            evidence = Path(out_dir).with_name(Path(out_dir).name + "-failed")
            write_json(evidence / "smoke.json", report)
            raise BrowserError("smoke test failed:\n" + "\n".join(f"  - {f}" for f in failures))
    return {"passed": True}
