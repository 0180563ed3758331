"""Stage `tf` (tasks/tf.py).

The three ONNX graphs to TensorFlow SavedModels with onnx-tf. Its logic is in tf_convert.py;
this module is its entry point.
"""

from __future__ import annotations

from pathlib import Path

from ..architecture import PATCHED_PARTS as PARTS
from ..files import atomic_output, write_json
from ..parity import compare_parts, enforce_parts
from ..patch import load_patched_model
from ..runtimes.tensorflow import saved_model_backend
from ..tf_convert import convert_onnx_file


def run_tf_stage(
    onnx_dir: str,
    patched_dir: str,
    out_dir: str,
    width_divisor: int,
    feature_rel_l2: float,
    image_max_abs: float,
) -> dict:
    """Convert, then prove parity with PyTorch; the folder appears only if parity holds."""
    model = load_patched_model(Path(patched_dir), width_divisor)
    with atomic_output(Path(out_dir)) as staged:
        staged.mkdir()
        for part in PARTS:
            print(f"  converting {part}.onnx with onnx-tf", flush=True)
            convert_onnx_file(Path(onnx_dir) / f"{part}.onnx", staged / part)
        report = compare_parts(saved_model_backend(staged), model)
        report = enforce_parts(report, "tf", feature_rel_l2, image_max_abs)
        write_json(staged / "parity.json", report)
    return {"passed": report["passed"]}
