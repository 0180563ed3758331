"""Stage `tfstyle`: the three SavedModels -> one TF module with the serving signature, checked
by whole stylizations against PyTorch (iters 1 and 2, with and without scaling)."""

from __future__ import annotations

from . import Pipeline, stage


def task_tfstyle(pipeline: Pipeline) -> dict:
    return stage(
        pipeline,
        "tfstyle",
        doc="build the TFStyle module (content, style, iters, max_resolution -> result)",
        run="stages.tfstyle:run_tfstyle_stage",
        args={
            "tf_dir": pipeline.folder("tf"),
            "patched_dir": pipeline.folder("patch"),
        },
        reads=("model.width_divisor", "parity.result_max_abs"),
        inputs=("tf", "patch"),
        tools=("tensorflow",),
    )
