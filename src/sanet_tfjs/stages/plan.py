"""Stage `plan` (tasks/plan.py).

Each weight's dtype for the `auto` bundle (float32, float16 or uint8), the fewest bytes that
keep `tfjs.fidelity`, measured with PyTorch. Its logic is in quantize.py; this module is its
entry point. Built only for what reads it (tfjs with `tfjs.quantization: auto`, bench with
"auto" among `bench.quantizations`), once for the weights and the target it was made for.
"""

from __future__ import annotations

from pathlib import Path

from ..files import atomic_output
from ..patch import load_patched_model
from ..quantize import FidelityTarget, plan_quantization, plot_curve, save_plan


def run_plan_stage(patched_dir: str, out_dir: str, width_divisor: int, fidelity: dict) -> None:
    model = load_patched_model(Path(patched_dir), width_divisor)
    plan = plan_quantization(model, FidelityTarget(**fidelity))
    with atomic_output(Path(out_dir)) as staged:
        save_plan(plan, staged)
        plot_curve(plan, staged / "quantization.png")
