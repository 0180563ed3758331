"""Stage `onnx`: the patched model -> encoder/transform/decoder ONNX files, checked with ORT.

Reads: pipeline.yaml `onnx`, `parity`, `model`. Writes: artifacts/onnx/*.onnx, parity.json.
"""

from __future__ import annotations

from sanet_tfjs.architecture import PATCHED_FILES

from . import Pipeline, code, stage

ONNX_TARGETS = ("encoder.onnx", "transform.onnx", "decoder.onnx", "parity.json")


def task_onnx(pipeline: Pipeline) -> dict:
    config = pipeline.config
    return stage(
        pipeline,
        doc="export encoder, transform and decoder to ONNX; check ONNX Runtime vs PyTorch",
        run="onnx_export:run_onnx_stage",
        args={
            "patched_dir": pipeline.path("patched"),
            "out_dir": pipeline.path("onnx"),
            "width_divisor": config.model.width_divisor,
            "opset": config.onnx.opset,
            "constant_folding": config.onnx.constant_folding,
            "feature_rel_l2": config.parity.feature_rel_l2,
            "image_max_abs": config.parity.image_max_abs,
        },
        outputs=[pipeline.path("onnx")],
        file_dep=[pipeline.path("patched", name) for name in PATCHED_FILES]
        + code("onnx_export", "parity", "model", "images", "files"),
        targets=[pipeline.path("onnx", name) for name in ONNX_TARGETS],
        uptodate=[
            pipeline.watches("onnx", "parity", "model", tools=("torch", "onnx", "onnxruntime"))
        ],
    )
