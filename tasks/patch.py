"""Stage `patch`: validated upstream checkpoints -> the patched model's state dicts
(artifacts/patched/{encoder,transform,decoder}.pt and patch.json)."""

from __future__ import annotations

from . import Pipeline, stage


def task_patch(pipeline: Pipeline) -> dict:
    return stage(
        pipeline,
        "patch",
        doc="load and validate the checkpoints into the ONNX-friendly patched SANet",
        run="patch:run_patch_stage",
        args={"checkpoints_dir": pipeline.folder("fetch")},
        reads=("model.width_divisor",),
        inputs=("fetch",),
        tools=("torch",),
    )
