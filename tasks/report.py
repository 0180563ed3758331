"""Stage `report`: the per-stage parity reports merged into artifacts/parity.json and parity.md.

Reads no pipeline.yaml key: each stage applied its own tolerances.
"""

from __future__ import annotations

from . import Pipeline, stage

CHECKED_STAGES = ("patch", "onnx", "tf", "tfstyle", "tfjs")  # each writes one parity report


def stage_parity_files(pipeline: Pipeline) -> dict[str, str]:
    return {name: pipeline.reports(name)[0] for name in CHECKED_STAGES}


def task_report(pipeline: Pipeline) -> dict:
    files = stage_parity_files(pipeline)
    out_json, out_table = pipeline.products("report")
    return stage(
        pipeline,
        "report",
        doc="merge every stage's parity against PyTorch into parity.json and a table",
        run="stages.report:run_report_stage",
        args={"stage_reports": files, "out_json": out_json, "out_table": out_table},
        files=files.values(),
    )
