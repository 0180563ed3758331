"""Stage `patch`: validated upstream checkpoints -> the patched model's state dicts.

Reads: pipeline.yaml `model`. Writes: artifacts/patched/{encoder,transform,decoder}.pt and
patch.json (parameter counts, input sums, the VGG tensors dropped after relu5_1).
"""

from __future__ import annotations

from sanet_tfjs.architecture import CHECKPOINT_FILES, PATCHED_FILES

from . import Pipeline, code, stage


def task_patch(pipeline: Pipeline) -> dict:
    return stage(
        pipeline,
        doc="load and validate the checkpoints into the ONNX-friendly patched SANet",
        run="patch:run_patch_stage",
        args={
            "checkpoints_dir": pipeline.path("checkpoints"),
            "out_dir": pipeline.path("patched"),
            "width_divisor": pipeline.config.model.width_divisor,
        },
        outputs=[pipeline.path("patched")],
        file_dep=[pipeline.path("checkpoints", name) for name in CHECKPOINT_FILES]
        + code("patch", "model", "checkpoints", "architecture", "files"),
        targets=[pipeline.path("patched", name) for name in PATCHED_FILES],
        uptodate=[pipeline.watches("model", tools=("torch",))],
    )
