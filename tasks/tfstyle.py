"""Stage `tfstyle`: the three SavedModels -> one TF module with the serving signature.

Reads: pipeline.yaml `parity`, `model`. Writes: artifacts/tfstyle/saved_model/ and parity.json
(whole stylizations against the PyTorch reference, iters 1 and 2, with and without scaling).
"""

from __future__ import annotations

from . import Pipeline, code, stage
from .tf import saved_model_files


def task_tfstyle(pipeline: Pipeline) -> dict:
    config = pipeline.config
    return stage(
        pipeline,
        doc="build the TFStyle module (content, style, iters, max_resolution -> result)",
        run="tfstyle:run_tfstyle_stage",
        args={
            "tf_dir": pipeline.path("tf"),
            "patched_dir": pipeline.path("patched"),
            "out_dir": pipeline.path("tfstyle"),
            "width_divisor": config.model.width_divisor,
            "result_max_abs": config.parity.result_max_abs,
        },
        outputs=[pipeline.path("tfstyle")],
        file_dep=saved_model_files(pipeline)
        + code("tfstyle", "tf_convert", "stylize", "parity", "files"),
        targets=[
            pipeline.path("tfstyle", "saved_model", "saved_model.pb"),
            pipeline.path("tfstyle", "parity.json"),
        ],
        uptodate=[pipeline.watches("parity", "model", tools=("tensorflow",))],
    )
