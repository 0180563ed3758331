"""Stage `tfstyle` (tasks/tfstyle.py).

One TF module that runs the whole stylization behind a serving signature. Its logic is in
tfstyle.py; this module is its entry point.
"""

from __future__ import annotations

from pathlib import Path

from ..files import atomic_output, write_json
from ..parity import compare_stylizations, stylization_runs
from ..patch import load_patched_model
from ..runtimes.tensorflow import saved_model_stylize
from ..tfstyle import save_in_child_process


def run_tfstyle_stage(
    tf_dir: str, patched_dir: str, out_dir: str, width_divisor: int, result_max_abs: float
) -> dict:
    with atomic_output(Path(out_dir)) as staged:
        staged.mkdir()
        saved = staged / "saved_model"
        save_in_child_process(Path(tf_dir), saved)
        model = load_patched_model(Path(patched_dir), width_divisor)
        run = saved_model_stylize(saved)
        runs = stylization_runs()
        results = [run(*case[1:]) for case in runs]
        report = compare_stylizations("tfstyle", runs, results, model, result_max_abs)
        write_json(staged / "parity.json", report)
    return {"passed": report["passed"]}
