"""Stage `plan`: the patched model -> each weight's dtype for the `auto` TensorFlow.js bundle,
the fewest bytes that keep tfjs.fidelity (artifacts/plan/: plan.json, uint8.npz, and the
size/quality curve quantization.png). Built only when a stage that reads it is: tfjs with
`tfjs.quantization: auto`, or `doit bench` with "auto" among bench.quantizations."""

from __future__ import annotations

from . import Pipeline, stage


def task_plan(pipeline: Pipeline) -> dict:
    return stage(
        pipeline,
        "plan",
        doc="choose each weight's dtype for the auto bundle (fewest bytes within tfjs.fidelity)",
        run="stages.plan:run_plan_stage",
        args={"patched_dir": pipeline.folder("patch")},
        reads=("model.width_divisor", "tfjs.fidelity"),
        inputs=("patch",),
        # tensorflow: the SSIM (images.py); tensorflowjs: the uint8 grid; matplotlib: the curve
        tools=("torch", "numpy", "tensorflow", "tensorflowjs", "matplotlib"),
    )
