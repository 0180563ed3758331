"""Stage `report`: the per-stage parity files merged into artifacts/parity.json and parity.md.

Reads: no pipeline.yaml section (the tolerances were applied by each stage).
"""

from __future__ import annotations

from . import Pipeline, code, stage


def stage_parity_files(pipeline: Pipeline) -> dict[str, str]:
    return {
        "onnx": pipeline.path("onnx", "parity.json"),
        "tf": pipeline.path("tf", "parity.json"),
        "tfstyle": pipeline.path("tfstyle", "parity.json"),
        "tfjs": pipeline.path("tfjs_parity.json"),
    }


def task_report(pipeline: Pipeline) -> dict:
    files = stage_parity_files(pipeline)
    return stage(
        pipeline,
        doc="merge every stage's parity against PyTorch into parity.json and a table",
        run="report:run_report_stage",
        args={
            "stage_reports": files,
            "out_json": pipeline.path("parity.json"),
            "out_table": pipeline.path("parity.md"),
        },
        outputs=[pipeline.path("parity.json"), pipeline.path("parity.md")],
        file_dep=list(files.values()) + code("report", "files"),
        targets=[pipeline.path("parity.json"), pipeline.path("parity.md")],
    )
