"""Stage `tfjs`: TFStyle -> TensorFlow.js graph model, run in Node against PyTorch.

Reads: pipeline.yaml `tfjs`, `parity`, `model`. Writes: artifacts/tfjs/ (model.json and weight
shards: the deployable model) and artifacts/tfjs_parity.json (errors, timings, bundle size).
"""

from __future__ import annotations

from . import ROOT, Pipeline, code, stage


def task_tfjs(pipeline: Pipeline) -> dict:
    config = pipeline.config
    return stage(
        pipeline,
        doc="convert TFStyle to a TensorFlow.js graph model; check it in Node (wasm)",
        run="tfjs_convert:run_tfjs_stage",
        args={
            "tfstyle_dir": pipeline.path("tfstyle"),
            "patched_dir": pipeline.path("patched"),
            "out_dir": pipeline.path("tfjs"),
            "report_path": pipeline.path("tfjs_parity.json"),
            "width_divisor": config.model.width_divisor,
            "shard_bytes": config.tfjs.shard_bytes,
            "quantization": config.tfjs.quantization,
            "optimize": config.tfjs.optimize,
            "max_size_ratio": config.tfjs.max_size_ratio,
            "result_max_abs": config.parity.result_max_abs,
        },
        outputs=[pipeline.path("tfjs"), pipeline.path("tfjs_parity.json")],
        file_dep=[
            pipeline.path("tfstyle", "saved_model", "saved_model.pb"),
            str((ROOT / "js" / "run_model.mjs").relative_to(ROOT)),
            str((ROOT / "js" / "disk_model.mjs").relative_to(ROOT)),
            str((ROOT / "js" / "sanet.mjs").relative_to(ROOT)),
        ]
        + code("tfjs_convert", "tfjs_graph", "stylize", "parity", "files"),
        targets=[pipeline.path("tfjs", "model.json"), pipeline.path("tfjs_parity.json")],
        uptodate=[
            pipeline.watches(
                "tfjs", "parity", "model", tools=("tensorflow", "tensorflowjs", "@tensorflow/tfjs")
            )
        ],
    )
