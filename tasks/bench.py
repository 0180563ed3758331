"""Stage `bench` (asked for by name: `doit bench`): every runtime timed on the same images.

Writes artifacts/bench/ (bench.json, bench.md, bench.png); the "auto" bundle follows stage plan's
choice (artifacts/plan/, built first if out of date). A measurement, not a build product:
it runs every time it is asked for, after building what it measures (ONNX, TFStyle) if that is
out of date.
"""

from __future__ import annotations

from . import Pipeline, each_key, stage


def task_bench(pipeline: Pipeline) -> dict:
    planned = "auto" in pipeline.setting("bench.quantizations")  # the plan stage's bundle
    return stage(
        pipeline,
        "bench",
        doc="benchmark PyTorch, ONNX Runtime, TF and TF.js (Chromium): speed, size, quality",
        run="stages.bench:run_bench_stage",
        args={
            "tfstyle_dir": pipeline.folder("tfstyle"),
            "onnx_dir": pipeline.folder("onnx"),
            "patched_dir": pipeline.folder("patch"),
            "plan_dir": pipeline.folder("plan") if planned else None,
        },
        reads=(
            "model.width_divisor",
            "fetch.profile",
            "tfjs.shard_bytes",
            "tfjs.winograd",
            *each_key("bench"),
        ),
        inputs=("patch", "onnx", "tfstyle", *(["plan"] if planned else [])),
        scripts=("js/bench", "js/sanet.mjs"),
        always=True,
    )
