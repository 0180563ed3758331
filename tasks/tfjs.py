"""Stage `tfjs`: TFStyle -> TensorFlow.js graph models: the exact float32 bundle (artifacts/tfjs/:
model.json and weight shards), run in Node against PyTorch (artifacts/tfjs_parity.json; its run
times in artifacts/tfjs_timings.json, which no stage reads), and the small one the page loads by
default (artifacts/tfjs_small/, per tfjs.quantization; auto: the plan stage's dtypes)."""

from __future__ import annotations

from . import Pipeline, stage


def task_tfjs(pipeline: Pipeline) -> dict:
    planned = pipeline.setting("tfjs.quantization") == "auto"  # follows the plan stage's choice
    return stage(
        pipeline,
        "tfjs",
        doc="convert TFStyle to a TensorFlow.js graph model; check it in Node (wasm)",
        run="stages.tfjs:run_tfjs_stage",
        args={
            "tfstyle_dir": pipeline.folder("tfstyle"),
            "patched_dir": pipeline.folder("patch"),
            "report_path": pipeline.reports("tfjs")[0],
            "timings_path": pipeline.reports("tfjs")[1],
            "plan_dir": pipeline.folder("plan") if planned else None,
            "small_dir": pipeline.products("tfjs")[1],
        },
        reads=(
            "model.width_divisor",
            "tfjs.shard_bytes",
            "tfjs.quantization",
            "tfjs.optimize",
            "tfjs.winograd",
            "tfjs.max_size_ratio",
            "parity.result_max_abs",
        ),
        inputs=("tfstyle", "patch", *(["plan"] if planned else [])),
        scripts=("js/run_model.mjs",),
        tools=("tensorflow", "tensorflowjs", "@tensorflow/tfjs"),
    )
