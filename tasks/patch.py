"""Stage `patch`: validated upstream checkpoints -> the patched, folded model's state dicts
(artifacts/patched/{encoder,transform,decoder}.pt, patch.json, and parity.json: the folds
against the upstream layout)."""

from __future__ import annotations

from . import Pipeline, stage


def task_patch(pipeline: Pipeline) -> dict:
    return stage(
        pipeline,
        "patch",
        doc="load and validate the checkpoints into the ONNX-friendly patched SANet",
        run="stages.patch:run_patch_stage",
        args={"checkpoints_dir": pipeline.folder("fetch")},
        reads=("model.width_divisor", "parity.feature_rel_l2", "parity.image_max_abs"),
        inputs=("fetch",),
        tools=("torch",),
    )
