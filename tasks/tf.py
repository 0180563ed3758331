"""Stage `tf`: ONNX -> three TensorFlow SavedModels with onnx-tf, checked against PyTorch.

Reads: pipeline.yaml `parity`, `model`. Writes: artifacts/tf/{encoder,transform,decoder}/
SavedModels and parity.json.
"""

from __future__ import annotations

from . import Pipeline, code, stage
from .onnx import ONNX_TARGETS

PARTS = ("encoder", "transform", "decoder")


def saved_model_files(pipeline: Pipeline) -> list[str]:
    """The files that carry each SavedModel's graph (onnx-tf stores weights in the graph)."""
    return [pipeline.path("tf", part, "saved_model.pb") for part in PARTS]


def task_tf(pipeline: Pipeline) -> dict:
    config = pipeline.config
    return stage(
        pipeline,
        doc="convert the ONNX files to TensorFlow SavedModels (onnx-tf); check vs PyTorch",
        run="tf_convert:run_tf_stage",
        args={
            "onnx_dir": pipeline.path("onnx"),
            "patched_dir": pipeline.path("patched"),
            "out_dir": pipeline.path("tf"),
            "width_divisor": config.model.width_divisor,
            "feature_rel_l2": config.parity.feature_rel_l2,
            "image_max_abs": config.parity.image_max_abs,
        },
        outputs=[pipeline.path("tf")],
        file_dep=[pipeline.path("onnx", name) for name in ONNX_TARGETS]
        + code("tf_convert", "onnx_tf_compat", "parity", "files"),
        targets=[*saved_model_files(pipeline), pipeline.path("tf", "parity.json")],
        uptodate=[pipeline.watches("parity", "model", tools=("onnx", "onnx-tf", "tensorflow"))],
    )
