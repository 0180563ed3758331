"""Speed, download size, memory and quality of every runtime, in one run.

The logic of stage `bench`; its entry point is stages/bench.py.

The same image pair is stylized (iters 1) at each maximum resolution by
- PyTorch (the patched model), ONNX Runtime (the three ONNX parts, the same Python loop) and
  the TFStyle SavedModel, each in its own child process (its peak RSS is its own);
- TensorFlow.js in headless Chromium, on a harness page (js/bench/) served from loopback with
  COOP/COEP (cross-origin isolated, so wasm can use threads): the float32 bundle at each thread
  count, each quantized bundle, and the "before": the converter's graph without
  tfjs_graph.py's rewrites;
- the peer, onnxruntime-web, on the same three ONNX files with the same loop (js/bench/ort.mjs),
  at each thread count.
Each browser row runs in a fresh tab that reports `reported_cores` cores (tfjs runs at most
half of them), so the wasm heap and page memory it reports are its own.

Every TFJS bundle comes from one converter run, finished by the tfjs stage's own code
(`finish_bundle`) with each setting. Times are medians of `runs` after `warmup` runs; the
headline is each time as a multiple of PyTorch's at the same resolution (absolute times drift
on a shared machine, ratios measured in one run much less). Quantized bundles are compared with
the float32 bundle's result on the same images: PSNR, SSIM, max abs error.

Writes artifacts/bench/: bench.json (everything), bench.md (the table) and bench.png (chart).
"""

from __future__ import annotations

import base64
import json
import shutil
import statistics
import sys
import time
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np

from .bench_tables import BASELINE_BUNDLE, DIRECT_BUNDLE, PEER, WINOGRAD_BUNDLE
from .children import run_module
from .errors import PipelineError
from .files import write_json
from .images import quality
from .quantize import QuantizationPlan
from .repo import ROOT
from .reports import BenchRow, PeerLine, RuntimeMeasurement, SameStyleLine
from .site import copy_vendor_files

HARNESS_DIR = ROOT / "js" / "bench"
ITERS = 1


class BenchError(PipelineError):
    """A runtime failed while being measured."""


# --- Python runtimes, each in a child process -------------------------------------------


def _stylizer(runtime: str, job: dict):
    """(version, stylize(content, style, res), restyler or None); restyler(style, res) encodes
    the style now and returns restyle(content): the same style again, not encoded again."""
    from .stylize import reference_stylize, stylize_hwc

    if runtime == "pytorch":
        import torch

        from .model import stylize_loop
        from .patch import load_patched_model
        from .stylize import fitted_nchw

        model = load_patched_model(Path(job["patched_dir"]), job["width_divisor"])

        def restyler(style, res):
            with torch.no_grad():
                features = model.encoder(fitted_nchw(style, res))
            parts = (model.encoder, model.transform, model.decoder)
            loop = partial(stylize_loop, *parts, style_features=features)
            return lambda content: stylize_hwc(loop, content, style, ITERS, res)

        return (
            f"torch {torch.__version__}, {torch.get_num_threads()} threads",
            lambda c, s, res: reference_stylize(model, c, s, ITERS, res),
            restyler,
        )
    if runtime == "onnxruntime":
        import onnxruntime

        from .runtimes.onnxruntime import onnxruntime_backend

        parts = onnxruntime_backend(Path(job["onnx_dir"]))
        return (
            f"onnxruntime {onnxruntime.__version__}",
            lambda c, s, res: stylize_hwc(parts.stylize, c, s, ITERS, res),
            None,
        )
    if runtime == "tensorflow":
        import tensorflow as tf

        from .runtimes.tensorflow import saved_model_stylize

        run = saved_model_stylize(Path(job["tfstyle_dir"]) / "saved_model")
        return f"tensorflow {tf.__version__}", (lambda c, s, res: run(c, s, ITERS, res)), None
    raise BenchError(f"unknown runtime {runtime!r}")


def peak_rss_bytes() -> int:
    """This process's peak resident memory so far (imports included). Linux's VmHWM: unlike
    getrusage's ru_maxrss it starts afresh at exec, not at the parent's peak."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise BenchError("no VmHWM in /proc/self/status: peak memory needs Linux")


def worker(runtime: str, job_path: Path) -> None:
    """Child process: time one runtime at every resolution; write its json and results."""
    job = json.loads(Path(job_path).read_text())
    out = Path(job["out_dir"])
    content, style = np.load(job["content"]), np.load(job["style"])
    version, stylize, restyler = _stylizer(runtime, job)
    entry: dict = {"version": version, "resolutions": {}}
    for res in job["resolutions"]:
        timings = []
        for index in range(job["warmup"] + job["runs"]):
            started = time.perf_counter()
            result = stylize(content, style, res)
            if index >= job["warmup"]:
                timings.append((time.perf_counter() - started) * 1e3)
        np.save(out / f"{runtime}-{res}.npy", np.asarray(result, np.float32))
        measured = {"ms": timings, "peak_memory_bytes": peak_rss_bytes()}
        if restyler is not None and res in job["restyle_resolutions"]:
            restyle = restyler(style, res)
            measured["restyled_ms"] = []
            for _ in range(job["runs"]):
                started = time.perf_counter()
                restyled = restyle(content)
                measured["restyled_ms"].append((time.perf_counter() - started) * 1e3)
            measured["restyled_max_abs"] = float(np.abs(restyled - result).max())
        entry["resolutions"][str(res)] = measured
    write_json(out / f"{runtime}.json", entry)


def measure_python_runtime(runtime: str, job: dict, scratch: Path) -> RuntimeMeasurement:
    job_path = scratch / f"{runtime}-job.json"
    write_json(job_path, job)
    print(f"  {runtime}: measuring in a child process", flush=True)
    run_module("bench", runtime, str(job_path), what=runtime, error=BenchError)
    entry: RuntimeMeasurement = json.loads((scratch / f"{runtime}.json").read_text())
    for res, measured in entry["resolutions"].items():
        measured["result"] = np.load(scratch / f"{runtime}-{res}.npy")
    return entry


# --- TensorFlow.js in headless Chromium ---------------------------------------------------


def build_bundles(
    saved_model: Path,
    root: Path,
    shard_bytes: int,
    quantizations: list[str],
    baseline: bool,
    plan: QuantizationPlan | None = None,
    winograd: dict[tuple[int, int], str] | None = None,
    winograd_on: bool = False,
) -> dict[str, Path]:
    """Every TFJS bundle from one converter run: name -> folder under `root` ("auto" follows
    `plan`). With `winograd` (the recorded choice), float32 is built twice, the tfjs stage's
    way (`winograd_on`) and the other, so that the bench times both in one run: the twin is
    DIRECT_BUNDLE (every 3x3 convolution direct) or WINOGRAD_BUNDLE."""
    from .tfjs_convert import finish_bundle, run_converter

    raw = root / "raw"
    print("  converting the TFStyle SavedModel once for every TFJS bundle", flush=True)
    run_converter(saved_model, raw)
    chosen = winograd if winograd_on else None
    settings = {"float32": ("none", True, chosen)}
    settings.update({name: (name, True, chosen) for name in quantizations})
    if winograd:
        twin = (DIRECT_BUNDLE, None) if winograd_on else (WINOGRAD_BUNDLE, winograd)
        settings[twin[0]] = ("none", True, twin[1])
    if baseline:
        settings[BASELINE_BUNDLE] = ("none", False, None)
    bundles = {}
    for name, (quantization, optimize, choices) in settings.items():
        bundles[name] = root / "models" / name
        finish_bundle(raw, bundles[name], shard_bytes, quantization, optimize, plan, choices)
    shutil.rmtree(raw)
    return bundles


ORT_DIST = "onnxruntime-web/dist"
# onnxruntime-web's ES module and the wasm build it loads (threads and SIMD, also on one thread).
ORT_FILES = ("ort.wasm.min.mjs", "ort-wasm-simd-threaded.mjs", "ort-wasm-simd-threaded.wasm")


@dataclass(frozen=True)
class BrowserCase:
    """One browser row: a runtime on a harness page, on one backend and thread count."""

    name: str
    harness: str  # the page: index.html (TF.js) or ort.html (onnxruntime-web)
    bundle: str | None  # the TF.js bundle; None for the peer
    backend: str
    threads: int | None  # wasm threads asked for; None: the backend has none
    resolutions: list[int]
    restyle_resolutions: list[int]  # where the same style is also timed again, not encoded
    single_runs: bool = False  # each resolution once, no warm-up (the photo sizes' tabs)

    def page_memory_at(self, res: int) -> str | None:
        """How the tab's page memory is read after resolution `res` (js/bench/common.mjs):
        "now" at every resolution on one thread; with wasm threads only after the last one,
        "after-stopping-threads". Chromium asks every worker of the tab for its heap and waits
        up to 60 s (V8WorkerMemoryReporter::kTimeout) for the answers, and a worker that runs
        a wasm thread never gives one (it sits in Atomics.wait, not in its event loop): a
        reading there took 60 s and counted the page, its wasm memory and the idle workers,
        not those threads' own JS heaps. Stopping just those workers first (3 s: Chromium ends
        them by force 2 s after terminate()) gives the same reading without the wait."""
        if (self.threads or 1) == 1:
            return "now"
        return "after-stopping-threads" if res == self.resolutions[-1] else None


def harness_root(root: Path, onnx_dir: Path) -> None:
    """The harness pages, their TensorFlow.js and onnxruntime-web copies and the ONNX files."""
    shutil.copytree(HARNESS_DIR, root, dirs_exist_ok=True)
    shutil.copyfile(ROOT / "js" / "sanet.mjs", root / "sanet.mjs")
    copy_vendor_files(ROOT / "node_modules", root / "vendor")
    (root / "vendor" / "ort").mkdir()
    for name in ORT_FILES:
        shutil.copyfile(ROOT / "node_modules" / ORT_DIST / name, root / "vendor" / "ort" / name)
    shutil.copytree(onnx_dir, root / "onnx", ignore=shutil.ignore_patterns("*.json"))


def write_inputs(root: Path, name: str, images: dict[str, np.ndarray]) -> dict:
    """Float32 inputs under root/inputs/, as the harness specs that name them."""
    (root / "inputs").mkdir(exist_ok=True)
    specs = {}
    for role, image in images.items():
        path = root / "inputs" / f"{name}-{role}.bin"
        np.ascontiguousarray(image, np.float32).tofile(path)
        specs[role] = {"url": f"inputs/{path.name}", "shape": list(image.shape)}
    return specs


def _threads_label(threads: int | None) -> str:
    return "" if threads is None else f", {threads} thread{'s' if threads > 1 else ''}"


def browser_plan(
    bundles: list[str],
    backends: list[str],
    resolutions: list[int],
    threads: list[int],
    peer: bool,
    large: int | None = None,
) -> list[BrowserCase]:
    """Every browser row. The float32 bundle (and its Winograd or direct twin) runs at each thread
    count, the other bundles at the first; the converter's graph (slow: the "before") at the
    first resolution only; the peer at each thread count. The `large` resolution is added for
    float32 and the peer at the most threads (on wasm). float32 and the peer also time the
    same style again at `resolutions` (quantized bundles run the same kernels)."""
    plan = []
    with_large = resolutions + ([large] if large else [])
    for backend in backends:
        for bundle in bundles:
            counts = (
                (threads if bundle in ("float32", DIRECT_BUNDLE, WINOGRAD_BUNDLE) else threads[:1])
                if backend == "wasm"
                else [None]
            )
            for count in counts:
                if bundle == BASELINE_BUNDLE:
                    sizes = resolutions[:1]
                elif bundle == "float32" and backend == "wasm" and count == threads[-1]:
                    sizes = with_large
                else:
                    sizes = resolutions
                plan.append(
                    BrowserCase(
                        f"TF.js {backend} {bundle}{_threads_label(count)}", "index.html", bundle,
                        backend, count, sizes, resolutions if bundle == "float32" else [],
                    )
                )  # fmt: skip
    if peer:
        plan += [
            BrowserCase(
                f"{PEER} wasm{_threads_label(count)}", "ort.html", None, "wasm", count,
                with_large if count == threads[-1] else resolutions, resolutions,
            )
            for count in threads
        ]  # fmt: skip
    return plan


# A photo at its own size takes minutes (4096x3072: about 8 on two threads here).
PHOTO_TIMEOUT_MS = 1_800_000


def photo_plan(
    sizes: list[str], threads: list[int], peer: bool, warmup_resolution: int
) -> list[BrowserCase]:
    """The photos at their own size: TF.js float32 and the peer at the most threads, a fresh tab
    per size (its page memory is that size's alone), each after one run at
    `warmup_resolution`, as the page warms up before a user's first run (the weights packed,
    the model's float32 filters freed: js/sanet.mjs releasePackedFilters)."""
    count = threads[-1]
    plan = []
    for size in sizes:
        plan.append(
            BrowserCase(
                f"TF.js wasm float32{_threads_label(count)}", "index.html", "float32", "wasm",
                count, [warmup_resolution, size], [], single_runs=True,
            )
        )  # fmt: skip
        if peer:
            plan.append(
                BrowserCase(
                    f"{PEER} wasm{_threads_label(count)}", "ort.html", None, "wasm", count,
                    [warmup_resolution, size], [], single_runs=True,
                )
            )  # fmt: skip
    return plan


def photo_line(case: BrowserCase, entry: RuntimeMeasurement | None, error: str | None) -> dict:
    """One photo size's figures for the report: the time of its one run, the page memory and
    the wasm heap after it, or the error that stopped it (the peer out of memory)."""
    size = case.resolutions[-1]
    width, height = (int(side) for side in size.split("x"))
    line = {"size": size, "runtime": case.name, "threads": case.threads, "pixels": width * height}
    if entry is None:
        return {**line, "error": error}
    measured = entry["resolutions"][size]
    return {
        **line,
        "s": statistics.median(measured["ms"]) / 1e3,
        "page_memory_bytes": measured["page_memory_bytes"],
        "wasm_heap_bytes": measured["peak_memory_bytes"],
        "error": None,
    }


def size_lines(rows: list[BenchRow], photos: list[dict], threads: int) -> list[dict]:
    """Time and memory by the photo's size: TF.js float32 and the peer at `threads`, at each
    square resolution they ran (the bench's square photo) and at each photo size."""
    lines = []
    for row in rows:
        wanted = row.get("bundle") == "float32" or row["runtime"] == PEER
        if not wanted or row.get("backend") != "wasm" or row.get("threads") != threads:
            continue
        for res, measured in row["resolutions"].items():
            lines.append(
                {
                    "size": f"{res}x{res}", "runtime": row["name"], "threads": threads,
                    "pixels": int(res) ** 2, "s": measured["median_ms"] / 1e3,
                    "page_memory_bytes": measured["page_memory_bytes"],
                    "wasm_heap_bytes": measured["peak_memory_bytes"], "error": None,
                }
            )  # fmt: skip
    return sorted(lines + photos, key=lambda line: (line["runtime"], line["pixels"]))


def measure_in_browser(
    browser, url: str, case: BrowserCase, inputs: dict, job: dict, cores: int,
    timeout_ms: int = 600_000,
) -> RuntimeMeasurement:  # fmt: skip
    """One case in a fresh tab that reports `cores` logical cores: load time, then each
    resolution. `inputs` has the original images' specs under "original", and per resolution
    the fitted NCHW ones (the peer's) and the content's size; a photo size (PhotoInputs) its own
    original, the maximum resolution that keeps it whole, and no result handed back."""
    from .runtimes.browser import open_tab
    from .stylize import restored_hwc

    page = open_tab(browser, cores)
    page.set_default_timeout(timeout_ms)
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    tfjs = case.bundle is not None
    try:
        page.goto(f"{url}/{case.harness}")
        page.wait_for_function("window.benchReady === true")
        if tfjs:
            setup = page.evaluate(
                "([b, t]) => window.bench.init(b, t)", [case.backend, case.threads]
            )
            loaded = page.evaluate(f"window.bench.load('models/{case.bundle}/model.json')")
        else:
            setup = page.evaluate("t => window.bench.init(t)", case.threads)
            loaded = page.evaluate("window.bench.load('onnx')")
        if not setup["crossOriginIsolated"]:
            raise BenchError("the harness page is not cross-origin isolated")
        if case.threads is not None and setup["threads"] != case.threads:
            raise BenchError(
                f"asked for {case.threads} wasm threads, got {setup['threads']} "
                f"(tfjs runs at most cores / 2; the tab reports {cores} cores)"
            )
        entry: RuntimeMeasurement = {**setup, "load_ms": loaded["loadMs"], "resolutions": {}}
        for res in case.resolutions:
            restyle = res in case.restyle_resolutions
            page_memory = case.page_memory_at(res)
            photo = inputs[res].get("photo")  # a photo at its own size
            warmup, runs = (0, 1) if case.single_runs else (job["warmup"], job["runs"])
            if tfjs:
                out = page.evaluate(
                    "([spec, iters, res, warmup, runs, restyle, pageMemory, withResult]) => "
                    "window.bench.run(spec, iters, res, warmup, runs, restyle, pageMemory, "
                    "withResult)",
                    [photo or inputs["original"], ITERS, inputs[res]["max_resolution"], warmup,
                     runs, restyle, page_memory, not photo],
                )  # fmt: skip
            else:
                out = page.evaluate(
                    "([spec, iters, warmup, runs, restyle, pageMemory, withResult]) => "
                    "window.bench.run(spec, iters, warmup, runs, restyle, pageMemory, "
                    "withResult)",
                    [inputs[res]["fitted"], ITERS, warmup, runs, restyle, page_memory,
                     not photo],
                )  # fmt: skip
            result = None
            if out["result"] is not None:
                result = np.frombuffer(base64.b64decode(out["result"]), np.float32).copy()
                result = result.reshape(out["shape"])
                if not tfjs:  # the peer ran the loop only: scale back as stylize_hwc does
                    result = restored_hwc(result, inputs[res]["content_size"])
            entry["resolutions"][str(res)] = {
                "ms": out["ms"],
                "peak_memory_bytes": out["backendBytes"],
                "page_memory_bytes": out["pageBytes"],
                "result": result,
            }
            if out.get("layers"):
                entry["resolutions"][str(res)]["layers"] = out["layers"]
            if restyle:
                entry["resolutions"][str(res)].update(
                    restyled_ms=out["restyledMs"], restyled_max_abs=out["restyledMaxAbs"]
                )
    except Exception as exc:  # a Playwright error names the failing call; add what we ran
        raise BenchError(f"{case.name} failed: {exc}; {errors}") from exc
    finally:
        page.close()
    return entry


# --- quality and the report ----------------------------------------------------------------


def layer_lines(rows: list[BenchRow], resolutions: list[int]) -> list[dict]:
    """Where the time goes, per layer of the ops (js/sanet.mjs layerProfile: each convolution;
    the pools and upsamples together; the rest of the graph: the attention's statistics,
    relu5_1's convolution, the loop), for float32 and its twin (every 3x3 convolution direct,
    or the Winograd choice) on wasm at each thread count, at the largest of `resolutions` both
    ran. Times are of the last timed run; GFLOP counts a direct convolution's multiply-adds
    twice, whatever the variant."""
    twins = (DIRECT_BUNDLE, WINOGRAD_BUNDLE)
    graphs = [row for row in rows if row.get("backend") == "wasm"
              and row.get("bundle") in ("float32", *twins)]  # fmt: skip
    lines = []
    for threads in sorted({row.get("threads") or 1 for row in graphs}):
        pair = [row for row in graphs if (row.get("threads") or 1) == threads]
        common = [str(r) for r in resolutions if all(str(r) in row["resolutions"] for row in pair)]
        if len(pair) != 2 or not common:
            continue
        res = common[-1]
        runs = {row["bundle"]: row["resolutions"][res] for row in pair}
        if not all(run.get("layers") for run in runs.values()):
            continue
        by_label: dict[str, dict] = {}
        for bundle, run in runs.items():
            for layer in run["layers"]:
                if layer["kind"] in ("conv", "conv_relu"):
                    label = (
                        f"{layer['op']} {layer['index']}: {layer['inChannels']} -> "
                        f"{layer['outChannels']} at 1/{layer['divisor']}"
                    )
                else:
                    label = "pools and upsamples"
                line = by_label.setdefault(label, {
                    "threads": threads, "resolution": int(res), "layer": label,
                    "gflop": 2 * layer["multiplyAdds"] / 1e9, "ms": {}, "variant": {},
                })  # fmt: skip
                line["ms"][bundle] = line["ms"].get(bundle, 0.0) + layer["ms"]
                line["variant"][bundle] = layer["variant"] or ""
            total = run["ms"][-1]
            rest = by_label.setdefault("the rest of the graph", {
                "threads": threads, "resolution": int(res), "layer": "the rest of the graph",
                "gflop": 0.0, "ms": {}, "variant": {},
            })  # fmt: skip
            rest["ms"][bundle] = total - sum(layer["ms"] for layer in run["layers"])
            rest["variant"][bundle] = ""
        lines += by_label.values()
        lines.append({
            "threads": threads, "resolution": int(res), "layer": "total", "gflop": None,
            "ms": {bundle: run["ms"][-1] for bundle, run in runs.items()}, "variant": {},
        })  # fmt: skip
    return lines


def summarize(rows: list[BenchRow]) -> None:
    """Medians, ratios to PyTorch and quality, in place; drops the result arrays."""
    by_name = {row["name"]: row for row in rows}
    pytorch = by_name.get("PyTorch")
    float32: dict[str, BenchRow] = {}  # backend -> its first float32 row (the fewest threads)
    for row in rows:
        if row.get("bundle") == "float32":
            float32.setdefault(row["backend"], row)
    for row in rows:
        for res, measured in row["resolutions"].items():
            measured["median_ms"] = statistics.median(measured["ms"])
            if "restyled_ms" in measured:
                measured["restyled_median_ms"] = statistics.median(measured["restyled_ms"])
            if pytorch and res in pytorch["resolutions"]:
                reference = pytorch["resolutions"][res]
                measured["ratio_to_pytorch"] = measured["median_ms"] / reference["median_ms"]
                measured["max_abs_vs_pytorch"] = float(
                    np.abs(measured["result"] - reference["result"]).max()
                )
            reference_row = float32.get(row.get("backend")) if row.get("bundle") else None
            if reference_row and row is not reference_row and res in reference_row["resolutions"]:
                measured["quality_vs_float32"] = quality(
                    measured["result"], reference_row["resolutions"][res]["result"]
                )
    for row in rows:
        for measured in row["resolutions"].values():
            measured.pop("result")


def peer_comparison(rows: list[BenchRow]) -> list[PeerLine]:
    """TF.js (float32, wasm) against onnxruntime-web at equal threads, per resolution: times,
    their ratio, each against PyTorch, each thread count's speed-up over one thread, and page
    memory. The headline of the browser work."""
    tfjs = {
        r["threads"]: r for r in rows if r.get("bundle") == "float32" and r["backend"] == "wasm"
    }
    peer = {r["threads"]: r for r in rows if r["runtime"] == PEER}
    lines = []
    for threads in sorted(tfjs.keys() & peer.keys()):
        for res, ours in tfjs[threads]["resolutions"].items():
            theirs = peer[threads]["resolutions"].get(res)
            if theirs is None:
                continue
            line = {
                "resolution": int(res),
                "threads": threads,
                "tfjs_s": ours["median_ms"] / 1e3,
                "peer_s": theirs["median_ms"] / 1e3,
                "tfjs_over_peer": ours["median_ms"] / theirs["median_ms"],
                "tfjs_x_pytorch": ours.get("ratio_to_pytorch"),
                "peer_x_pytorch": theirs.get("ratio_to_pytorch"),
                "tfjs_page_memory_bytes": ours["page_memory_bytes"],
                "peer_page_memory_bytes": theirs["page_memory_bytes"],
            }
            for key, table in (("tfjs", tfjs), ("peer", peer)):
                single = table.get(min(table), {}).get("resolutions", {}).get(res)
                line[f"{key}_speedup_vs_{min(table)}_thread"] = (
                    single["median_ms"] / table[threads]["resolutions"][res]["median_ms"]
                    if single
                    else None
                )
            lines.append(line)
    return lines


def same_style_again(rows: list[BenchRow]) -> list[SameStyleLine]:
    """Each runtime that timed it: a first stylization against the same style again (its
    features kept from the first), the time saved, and how far the results are apart."""
    lines = []
    for row in rows:
        for res, measured in row["resolutions"].items():
            if "restyled_median_ms" in measured:
                lines.append(
                    {
                        "runtime": row["name"],
                        "resolution": int(res),
                        "first_s": measured["median_ms"] / 1e3,
                        "again_s": measured["restyled_median_ms"] / 1e3,
                        "saved": 1 - measured["restyled_median_ms"] / measured["median_ms"],
                        "max_abs_vs_first": measured["restyled_max_abs"],
                    }
                )
    return lines


def plot(report: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    resolutions = [str(r) for r in report["settings"]["resolutions"]]
    rows = report["rows"]
    figure, axes = plt.subplots(figsize=(9, 0.45 * len(rows) * len(resolutions) + 1.5))
    labels, values, colours = [], [], []
    palette = plt.get_cmap("tab10")
    for index, res in enumerate(resolutions):
        for row in rows:
            measured = row["resolutions"].get(res)
            if measured and "ratio_to_pytorch" in measured:
                labels.append(f"{row['name']} @ {res}")
                values.append(measured["ratio_to_pytorch"])
                colours.append(palette(index))
    positions = range(len(values))[::-1]
    axes.barh(list(positions), values, color=colours)
    axes.set_yticks(list(positions), labels, fontsize=8)
    axes.axvline(1.0, color="black", linewidth=0.8)
    axes.set_xscale("log")
    axes.set_xlabel("median time of one stylization (iters 1) / PyTorch's at the same resolution")
    for y, value in zip(positions, values, strict=True):
        axes.text(value, y, f" {value:.2f}x", va="center", fontsize=8)
    axes.set_title(
        f"SANet stylization time relative to PyTorch CPU ({report['machine']['cpus']} cores)"
    )
    figure.tight_layout()
    figure.savefig(path, dpi=110, metadata={"Software": None})
    plt.close(figure)


WEIGHTS_NOTES = {
    "fixture": "Fixture weights (seeded stand-ins, not trained): speed is the model's, but "
    "quantization quality with the trained SANet weights may differ.",
    "upstream": "The upstream SANet checkpoints (trained weights).",
}


if __name__ == "__main__":  # the child process of measure_python_runtime
    worker(sys.argv[1], Path(sys.argv[2]))
