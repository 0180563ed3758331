"""Stage `bench` (tasks/bench.py).

Speed, download size, memory and quality of every runtime, in one run. Its logic is in bench.py;
this module is its entry point.
"""

from __future__ import annotations

import datetime
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np

from ..bench import (
    ITERS,
    PHOTO_TIMEOUT_MS,
    WEIGHTS_NOTES,
    BenchError,
    browser_plan,
    build_bundles,
    harness_root,
    layer_lines,
    measure_in_browser,
    measure_python_runtime,
    peer_comparison,
    photo_line,
    photo_plan,
    plot,
    same_style_again,
    size_lines,
    summarize,
    write_inputs,
)
from ..bench_tables import (
    PEER,
    format_layer_table,
    format_peer_table,
    format_same_style_table,
    format_size_table,
    format_table,
)
from ..files import atomic_output, folder_bytes, write_json
from ..images import bench_images, load_rgb, sample_photo_path
from ..quantize import load_plan
from ..release import git_commit
from ..reports import BenchRow
from ..server import serve_directory


def run_bench_stage(
    tfstyle_dir: str,
    onnx_dir: str,
    patched_dir: str,
    out_dir: str,
    width_divisor: int,
    profile: str,
    shard_bytes: int,
    resolutions: list[int],
    warmup: int,
    runs: int,
    runtimes: list[str],
    browser_backends: list[str],
    quantizations: list[str],
    unoptimized_baseline: bool,
    winograd: bool,
    threads: list[int],
    reported_cores: int,
    onnxruntime_web: bool,
    large_resolution: int | None,
    plan_dir: str | None,
    photo_sizes: list[str],
) -> dict:
    from ..runtimes.browser import chromium
    from ..stylize import fitted_nchw
    from ..winograd import winograd_choices

    started = time.perf_counter()
    load_before = os.getloadavg()[0]  # other work on the machine skews every time measured
    content, style = bench_images()
    quantization_plan = None
    if "auto" in quantizations:
        from ..patch import load_patched_model

        quantization_plan = load_plan(
            plan_dir, load_patched_model(Path(patched_dir), width_divisor)
        )
    every_resolution = resolutions + ([large_resolution] if large_resolution else [])
    job = {
        "patched_dir": patched_dir,
        "width_divisor": width_divisor,
        "onnx_dir": onnx_dir,
        "tfstyle_dir": tfstyle_dir,
        "resolutions": every_resolution,
        "restyle_resolutions": resolutions,
        "warmup": warmup,
        "runs": runs,
    }
    model_bytes = {
        "pytorch": folder_bytes(Path(patched_dir)),
        "onnxruntime": sum(p.stat().st_size for p in Path(onnx_dir).glob("*.onnx")),
        "tensorflow": folder_bytes(Path(tfstyle_dir) / "saved_model"),
    }
    names = {"pytorch": "PyTorch", "onnxruntime": "ONNX Runtime", "tensorflow": "TF SavedModel"}
    rows: list[BenchRow] = []
    with tempfile.TemporaryDirectory(prefix="bench-") as scratch:
        scratch = Path(scratch)
        np.save(scratch / "content.npy", content)
        np.save(scratch / "style.npy", style)
        job.update(content=str(scratch / "content.npy"), style=str(scratch / "style.npy"))
        job["out_dir"] = str(scratch)
        for runtime in runtimes:
            entry = measure_python_runtime(runtime, job, scratch)
            rows.append(
                {
                    "name": names[runtime],
                    "runtime": runtime,
                    "version": entry["version"],
                    "download_bytes": model_bytes[runtime],
                    "resolutions": entry["resolutions"],
                }
            )
        root = scratch / "www"
        root.mkdir()
        bundles = build_bundles(
            Path(tfstyle_dir) / "saved_model", root, shard_bytes, quantizations,
            unoptimized_baseline, quantization_plan,
            winograd_choices(width_divisor), winograd,
        )  # fmt: skip
        harness_root(root, Path(onnx_dir))
        inputs: dict = {
            "original": write_inputs(root, "original", {"content": content, "style": style})
        }
        for res in every_resolution:
            fitted = {"content": fitted_nchw(content, res), "style": fitted_nchw(style, res)}
            fitted = {role: tensor.numpy() for role, tensor in fitted.items()}
            inputs[res] = {
                "fitted": write_inputs(root, f"fitted-{res}", fitted),
                "content_size": content.shape[:2],
                "max_resolution": res,
            }
        for size in photo_sizes:  # the photo at that size, whole; the style as it is
            width, height = (int(side) for side in size.split("x"))
            photo = load_rgb(sample_photo_path(), (width, height))
            fitted = {
                "content": photo.transpose(2, 0, 1)[None],
                "style": style.transpose(2, 0, 1)[None],
            }
            inputs[size] = {
                "photo": write_inputs(root, f"photo-{size}", {"content": photo, "style": style}),
                "fitted": write_inputs(root, f"photo-fitted-{size}", fitted),
                "content_size": photo.shape[:2],
                "max_resolution": max(width, height),
            }
        plan = browser_plan(
            list(bundles), browser_backends, resolutions, threads, onnxruntime_web,
            large_resolution,
        )  # fmt: skip
        photos: list[dict] = []
        with serve_directory(root, isolation_headers=True) as server, chromium() as browser:
            for case in plan:
                print(f"  {case.name}: measuring in headless Chromium", flush=True)
                entry = measure_in_browser(browser, server.url, case, inputs, job, reported_cores)
                rows.append(
                    {
                        "name": case.name,
                        "runtime": "tensorflowjs" if case.bundle else PEER,
                        "bundle": case.bundle,
                        "backend": case.backend,
                        "download_bytes": (
                            folder_bytes(bundles[case.bundle])
                            if case.bundle
                            else model_bytes["onnxruntime"]
                        ),
                        **entry,
                    }
                )
            for case in photo_plan(list(photo_sizes), threads, onnxruntime_web, resolutions[0]):
                print(f"  {case.name}: the photo at {case.resolutions[-1]}", flush=True)
                try:
                    entry = measure_in_browser(
                        browser, server.url, case, inputs, job, reported_cores, PHOTO_TIMEOUT_MS
                    )
                    photos.append(photo_line(case, entry, None))
                except BenchError as exc:  # the peer out of memory, say: reported, not fatal
                    print(f"    did not finish: {exc}", flush=True)
                    photos.append(photo_line(case, None, str(exc)))
    summarize(rows)
    report = {
        # The day and commit measured: the docs' figure tables name them (figures.py).
        "date": datetime.datetime.now(datetime.UTC).date().isoformat(),
        "commit": git_commit(),
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
            # the 1-minute load average when the bench started and ended (figures.py shows it)
            "load_average": [round(load_before, 1), round(os.getloadavg()[0], 1)],
        },
        "inputs": {"content_shape": list(content.shape), "style_shape": list(style.shape)},
        "settings": {
            "resolutions": every_resolution,
            "iters": ITERS,
            "warmup": warmup,
            "runs": runs,
            "width_divisor": width_divisor,
            "threads": threads,
            "reported_cores": reported_cores,
            "photo_sizes": photo_sizes,
        },
        "rows": rows,
        "peer_comparison": peer_comparison(rows),
        "same_style_again": same_style_again(rows),
        "sizes": size_lines(rows, photos, threads[-1]),
        "layers": layer_lines(rows, resolutions),
        "weights": profile,
        "note": WEIGHTS_NOTES[profile],
    }
    report["elapsed_s"] = time.perf_counter() - started
    table = format_table(report)
    peer_table = format_peer_table(report["peer_comparison"])
    if peer_table:
        table += (
            f"\nTF.js (float32 bundle) against {PEER} on the same ONNX files, at equal wasm "
            f"threads (the tabs report {reported_cores} cores):\n\n" + peer_table
        )
    size_table = format_size_table(report["sizes"])
    if size_table:
        table += (
            f"\nBy the photo's size, at {threads[-1]} wasm threads (a photo size: one run in a tab "
            "of its own; page memory and the wasm heap after the tab's last run):\n\n" + size_table
        )
    layer_table = format_layer_table(report["layers"])
    if layer_table:
        table += (
            "\nWhere TF.js's time goes (wasm, at the largest square resolution both graphs ran; "
            "the last timed run; a convolution's GFLOP counts its direct multiply-adds twice, "
            "whatever it runs as, so its rate compares with the instruction set's peak):\n\n"
            + layer_table
        )
    same_style_table = format_same_style_table(report["same_style_again"])
    if same_style_table:
        table += (
            "\nThe same style again (another photo, other iterations): the style's features "
            "kept from the first stylization, not encoded again (medians of "
            f"{runs} runs each):\n\n" + same_style_table
        )
    with atomic_output(Path(out_dir)) as staged:
        staged.mkdir()
        write_json(staged / "bench.json", report)
        (staged / "bench.md").write_text(
            "# SANet benchmark\n\n"
            f"One stylization (iters {ITERS}) of a {content.shape[1]}x{content.shape[0]} photo "
            f"in the style of a {style.shape[1]}x{style.shape[0]} painting, at each maximum "
            f"resolution; median of {runs} runs after {warmup} warm-up run(s); "
            f"{report['machine']['cpus']} CPU cores. Peak memory: each Python process's peak "
            "RSS (imports included), the wasm heap of a TF.js tab (it only grows); page memory: "
            "performance.measureUserAgentSpecificMemory() after the runs at that resolution "
            "(the whole tab: JS heaps, wasm memory, workers); in a tab with wasm threads only "
            "after its last resolution, once the workers that run its threads are stopped: "
            "without those workers' own JS heaps (live, they never answer Chromium's request, "
            "which then waited 60 s for them). "
            f"{report['note']}\n\n" + table
        )
        plot(report, staged / "bench.png")
    print(table)
    print(f"  benchmark took {report['elapsed_s']:.0f} s; report in {out_dir}/")
    return {"elapsed_s": report["elapsed_s"]}
