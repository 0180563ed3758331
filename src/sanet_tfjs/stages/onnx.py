"""Stage `onnx` (tasks/onnx.py).

The patched model as three ONNX graphs with dynamic height and width. Its logic is in
onnx_export.py; this module is its entry point.
"""

from __future__ import annotations

from pathlib import Path

from ..files import atomic_output, write_json
from ..onnx_export import export_onnx
from ..parity import compare_parts, enforce_parts
from ..patch import load_patched_model
from ..runtimes.onnxruntime import onnxruntime_backend


def run_onnx_stage(
    patched_dir: str,
    out_dir: str,
    width_divisor: int,
    opset: int,
    constant_folding: bool,
    feature_rel_l2: float,
    image_max_abs: float,
) -> dict:
    """Export, check, and prove parity with ONNX Runtime. The folder (with parity.json) is
    moved into place only when parity holds: a failing export is never left to be trusted."""
    model = load_patched_model(Path(patched_dir), width_divisor)
    with atomic_output(Path(out_dir)) as staged:
        staged.mkdir()
        export_onnx(model, staged, opset, constant_folding)
        report = compare_parts(onnxruntime_backend(staged), model)
        report = enforce_parts(report, "onnx", feature_rel_l2, image_max_abs)
        write_json(staged / "parity.json", report)
    return {"passed": report["passed"]}
