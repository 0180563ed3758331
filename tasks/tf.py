"""Stage `tf`: ONNX -> three TensorFlow SavedModels with onnx-tf, checked against PyTorch."""

from __future__ import annotations

from . import Pipeline, stage


def task_tf(pipeline: Pipeline) -> dict:
    return stage(
        pipeline,
        "tf",
        doc="convert the ONNX files to TensorFlow SavedModels (onnx-tf); check vs PyTorch",
        run="stages.tf:run_tf_stage",
        args={
            "onnx_dir": pipeline.folder("onnx"),
            "patched_dir": pipeline.folder("patch"),
        },
        reads=("model.width_divisor", "parity.feature_rel_l2", "parity.image_max_abs"),
        inputs=("onnx", "patch"),
        tools=("onnx", "onnx-tf", "tensorflow"),
    )
