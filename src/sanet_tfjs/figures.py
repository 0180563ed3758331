"""The figure tables of docs/, generated from the reports that measured them.

A docs page marks each generated table with two comments:

    <!-- figures: bench-peer -->
    (generated: a line naming the command that wrote the report and the day it ran, the table)
    <!-- /figures -->

`bash scripts/figures.sh` (`python -m sanet_tfjs.figures`) rewrites every marked block from its
report; `--check` lists the stale ones. Nothing in a block is typed by hand, and a figure lives
in its report alone. The reports:
- `docs/reports/bench.json`: a `doit bench` report (`artifacts/bench/bench.json`), copied
  there with `--bench` (committed: a measurement, not a build product);
- `tests/durations.json`: each test's seconds, written by `bash scripts/test.sh
  --record-durations`.
docs/hardening.md is written whole by tests/hardening.py, with the same kind of source line.
"""

from __future__ import annotations

import argparse
import datetime
import json
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .bench_tables import (
    format_layer_table,
    format_peer_table,
    format_quantization_table,
    format_same_style_table,
    format_table,
)
from .repo import ROOT

DOCS = ROOT / "docs"
BENCH_REPORT = DOCS / "reports" / "bench.json"
DURATIONS = ROOT / "tests" / "durations.json"
REGENERATE = "bash scripts/figures.sh"
BLOCK = re.compile(r"(<!-- figures: ([\w-]+) -->\n)(.*?)(<!-- /figures -->)", re.S)
# The line before every figure table: the command that measured it and the day it ran.
SOURCE_LINE = re.compile(r"^_From `[^`]+` on \d{4}-\d{2}-\d{2}\b")
LONGEST_TESTS = 12


@dataclass(frozen=True)
class Report:
    path: Path
    command: str  # what wrote it
    date: str  # the day it ran, YYYY-MM-DD
    data: dict
    commit: str | None = None
    caveat: str | None = None  # what the reader must know about the conditions it ran in

    def source_line(self) -> str:
        at = f", commit {self.commit[:7]}" if self.commit else ""
        where = self.path.relative_to(ROOT)
        line = f"_From `{self.command}` on {self.date}{at} ({where}); "
        line += f"regenerate with `{REGENERATE}`._"
        return line + (f" **{self.caveat}**" if self.caveat else "")


def bench_report() -> Report:
    data = json.loads(BENCH_REPORT.read_text())
    load = data["machine"].get("load_average")
    caveat = data.get("caveat")
    if load and max(load) > data["machine"]["cpus"] / 2 and not caveat:
        caveat = f"The machine was busy (load average {load[0]} to {load[1]}): times are skewed."
    return Report(
        BENCH_REPORT,
        "bash scripts/pipeline.sh bench",
        data["date"],
        data,
        data.get("commit"),
        caveat,
    )


def durations_report() -> Report:
    data = json.loads(DURATIONS.read_text())
    return Report(DURATIONS, "bash scripts/test.sh --record-durations", data["recorded"], data)


def _peer(report: dict) -> str:
    return format_peer_table(report["peer_comparison"])


def _same_style(report: dict) -> str:
    return format_same_style_table(report["same_style_again"])


def _layers(report: dict) -> str:
    return format_layer_table(report.get("layers", []))


def _durations(data: dict) -> str:
    seconds: dict[str, float] = data["seconds"]
    longest = sorted(seconds.items(), key=lambda item: -item[1])[:LONGEST_TESTS]
    out = ["| test | seconds |", "|---|---|"]
    out += [f"| `{name}` | {value:.0f} |" for name, value in longest]
    out.append(f"| all {len(seconds)} tests of 1 s or more, summed | {sum(seconds.values()):.0f} |")
    return "\n".join(out) + "\n"


def winograd_report() -> Report:
    from .formats import winograd_timings
    from .winograd import GRAPH_LAYER_DIVISOR, winograd_choices

    # what the tfjs stage applies: the recorded choice, in the ops
    data = {"timings": winograd_timings.TIMINGS, "choices": winograd_choices(1),
            "graph_divisor": GRAPH_LAYER_DIVISOR, **winograd_timings.MEASURED}  # fmt: skip
    path = Path(winograd_timings.__file__)
    command = "python -m sanet_tfjs.winograd --write"
    return Report(path, command, data["day"], data, data["commit"], data["runtime"])


def _winograd_layers(data: dict) -> str:
    """Each 3x3 layer shape: direct and Winograd times per resolution, the ratio, and what
    the tfjs stage runs with tfjs.winograd on."""
    times: dict[tuple, dict[tuple, float]] = {}
    for e in data["timings"]:
        key = (e["in_channels"], e["out_channels"], e["divisor"], e["relu"])
        times.setdefault(key, {})[e["resolution"], e["variant"]] = e["ms"]
    resolutions = data["resolutions"]
    variants = sorted({e["variant"] for e in data["timings"]} - {"direct"})
    head = ["layer (in -> out, side)"]
    for res in resolutions:
        head += [f"{res}: direct ms"]
        head += [f"{res}: F({v[1:]}) ms (x)" for v in variants]  # "f2x2" -> "F(2x2)"
    out = ["| " + " | ".join([*head, "with tfjs.winograd"]) + " |", "|" + "---|" * (len(head) + 1)]
    for (cin, cout, divisor, relu), ms in times.items():
        cells = [f"{cin} -> {cout}, 1/{divisor}" + ("" if relu else " (no ReLU)")]
        for res in resolutions:
            direct = ms[res, "direct"]
            cells += [f"{direct:.1f}"]
            cells += [f"{ms[res, v]:.1f} ({ms[res, v] / direct:.2f})" for v in variants]
        if divisor == data["graph_divisor"]:  # relu5_1's: the graph runs it, not the ops
            cells.append("direct (in the graph)")
        else:
            cells.append(data["choices"].get((cin, cout), "direct"))
        out.append("| " + " | ".join(cells) + " |")
    return "\n".join(out) + "\n"


# name -> (its report, the table made from the report's data)
FIGURES: dict[str, tuple[Callable[[], Report], Callable[[dict], str]]] = {
    "bench-runtimes": (bench_report, format_table),
    "bench-peer": (bench_report, _peer),
    "bench-same-style": (bench_report, _same_style),
    "bench-layers": (bench_report, _layers),
    "quantization": (bench_report, format_quantization_table),
    "test-durations": (durations_report, _durations),
    "winograd-layers": (winograd_report, _winograd_layers),
}


def render_block(name: str) -> str:
    if name not in FIGURES:
        raise KeyError(f"docs name an unknown figure table {name!r}; known: {sorted(FIGURES)}")
    load, table = FIGURES[name]
    report = load()
    return f"{report.source_line()}\n\n{table(report.data)}"


def regenerate(page: Path, check: bool = False) -> list[str]:
    """Rewrite `page`'s figure blocks from their reports (or, with `check`, leave the page as
    it is); returns the names of the blocks that were stale."""
    text = page.read_text()
    stale: list[str] = []

    def fill(match: re.Match) -> str:
        fresh = render_block(match.group(2))
        if fresh != match.group(3):
            stale.append(match.group(2))
        return match.group(1) + fresh + match.group(4)

    updated = BLOCK.sub(fill, text)
    if stale and not check:
        page.write_text(updated)
    return stale


def pages() -> list[Path]:
    return [ROOT / "README.md", *sorted(DOCS.glob("*.md"))]


def import_bench(path: Path, commit: str | None, caveat: str | None = None) -> None:
    """Copy a `doit bench` report into docs/reports/, stamped with its day and commit if it
    carries none (reports of builds before the bench recorded them), and `caveat`."""
    data = json.loads(Path(path).read_text())
    if caveat:
        data["caveat"] = caveat
    if "date" not in data:
        mtime = Path(path).stat().st_mtime
        data["date"] = datetime.datetime.fromtimestamp(mtime, datetime.UTC).date().isoformat()
    if commit:
        data["commit"] = commit
    BENCH_REPORT.parent.mkdir(parents=True, exist_ok=True)
    BENCH_REPORT.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bench", type=Path, help="a doit bench report to copy in first")
    parser.add_argument("--commit", help="the commit the --bench report measured")
    parser.add_argument("--caveat", help="the --bench report's conditions, said with its tables")
    parser.add_argument("--check", action="store_true", help="only list stale tables")
    args = parser.parse_args(argv)
    if args.bench:
        import_bench(args.bench, args.commit, args.caveat)
    stale = {page: regenerate(page, args.check) for page in pages()}
    for page, names in stale.items():
        for name in names:
            verb = "stale" if args.check else "regenerated"
            print(f"{page.relative_to(ROOT)}: {name} {verb}")
    return 1 if args.check and any(stale.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
