"""Stage `report`: every stage's parity against PyTorch in one JSON file and one table."""

from __future__ import annotations

import json
from pathlib import Path

from ..files import atomic_output, write_json
from ..reports import ParityReport, TfjsParityReport


def _rows(stage_report: ParityReport) -> list[dict]:
    rows = []
    for row in stage_report["pairs"]:
        settings = (
            f"iters {row['iters']}, max_res {row['max_resolution']}" if "iters" in row else ""
        )
        metrics = {k: v for k, v in row.items() if isinstance(v, dict)}
        rows.append({"pair": row["pair"], "settings": settings, "metrics": metrics})
    return rows


def format_table(report: dict) -> str:
    lines = [
        "| stage | pair | settings | what | max abs | rel L2 |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for stage, entry in report["stages"].items():
        for row in entry["rows"]:
            for what, metric in row["metrics"].items():
                lines.append(
                    f"| {stage} | {row['pair']} | {row['settings']} | {what} | "
                    f"{metric['max_abs']:.2e} | {metric['rel_l2']:.2e} |"
                )
    lines.append("")
    for stage, entry in report["stages"].items():
        worst = ", ".join(
            f"{name} {value['value']:.2e} (tolerance {value['tolerance']})"
            for name, value in entry["worst"].items()
        )
        lines.append(f"{stage}: {'passed' if entry['passed'] else 'FAILED'}; worst {worst}")
    return "\n".join(lines)


def run_report_stage(stage_reports: dict[str, str], out_json: str, out_table: str) -> dict:
    """Merge the per-stage parity files into parity.json and parity.md; print the table."""
    report = {"stages": {}}
    for stage, path in stage_reports.items():
        data: ParityReport | TfjsParityReport = json.loads(Path(path).read_text())
        report["stages"][stage] = {
            "passed": data["passed"],
            "worst": data["worst"],
            "rows": _rows(data),
            **({"size": data["size"]} if "size" in data else {}),
        }
    report["passed"] = all(entry["passed"] is not False for entry in report["stages"].values())
    table = format_table(report)
    print(table)
    write_json(Path(out_json), report)
    with atomic_output(Path(out_table)) as staged:
        staged.write_text(table + "\n")
    return {"passed": report["passed"]}
