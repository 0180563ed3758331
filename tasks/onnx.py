"""Stage `onnx`: the patched model -> encoder/transform/decoder ONNX files, checked with ORT."""

from __future__ import annotations

from . import Pipeline, stage


def task_onnx(pipeline: Pipeline) -> dict:
    return stage(
        pipeline,
        "onnx",
        doc="export encoder, transform and decoder to ONNX; check ONNX Runtime vs PyTorch",
        run="stages.onnx:run_onnx_stage",
        args={"patched_dir": pipeline.folder("patch")},
        reads=(
            "model.width_divisor",
            "onnx.opset",
            "onnx.constant_folding",
            "parity.feature_rel_l2",
            "parity.image_max_abs",
        ),
        inputs=("patch",),
        tools=("torch", "onnx", "onnxruntime"),
    )
