"""The benchmark's tables, from its report (bench.json) alone: `doit bench` prints and writes
them (bench.md), and the docs' figure tables are the same tables (sanet_tfjs.figures). Light on
purpose: no numpy, torch or browser here.
"""

from __future__ import annotations

from .reports import BenchRow, Measured, PeerLine, SameStyleLine

PEER = "onnxruntime-web"  # the peer a user would otherwise pick: the same ONNX files, in wasm
BASELINE_BUNDLE = "float32-converter-graph"  # the graph before tfjs_graph.py's rewrites
DIRECT_BUNDLE = "float32-direct"  # float32 with every 3x3 convolution direct (no Winograd)
WINOGRAD_BUNDLE = "float32-winograd"  # float32 with the recorded Winograd choice


def format_peer_table(lines: list[PeerLine]) -> str:
    if not lines:
        return ""
    head = [
        "resolution", "threads", "TF.js s", f"{PEER} s", f"TF.js / {PEER}", "TF.js x PyTorch",
        f"{PEER} x PyTorch", "TF.js speed-up vs 1 thread", f"{PEER} speed-up vs 1 thread",
        "TF.js page MB", f"{PEER} page MB",
    ]  # fmt: skip

    def number(value, fmt):
        return "" if value is None else format(value, fmt)

    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for line in lines:
        cells = [
            str(line["resolution"]),
            str(line["threads"]),
            f"{line['tfjs_s']:.2f}",
            f"{line['peer_s']:.2f}",
            f"{line['tfjs_over_peer']:.2f}",
            number(line["tfjs_x_pytorch"], ".2f"),
            number(line["peer_x_pytorch"], ".2f"),
            number(line.get("tfjs_speedup_vs_1_thread"), ".2f"),
            number(line.get("peer_speedup_vs_1_thread"), ".2f"),
            number(line["tfjs_page_memory_bytes"] and line["tfjs_page_memory_bytes"] / 1e6, ".0f"),
            number(line["peer_page_memory_bytes"] and line["peer_page_memory_bytes"] / 1e6, ".0f"),
        ]
        out.append("| " + " | ".join(cells) + " |")
    return "\n".join(out) + "\n"


def format_size_table(lines: list[dict]) -> str:
    """Time and memory by the photo's size (bench.size_lines), and each runtime's time per
    pixel at its largest size against its largest square one's (the bench's 1024x1024)."""
    if not lines:
        return ""
    out = [
        "| photo | runtime | s | µs per pixel | page MB | wasm heap MB |",
        "|---|---|---|---|---|---|",
    ]

    def mb(value):
        return "" if value is None else f"{value / 1e6:,.0f}"

    for line in lines:
        if line["error"]:
            reason = line["error"].splitlines()[0][:160]
            out.append(f"| {line['size']} | {line['runtime']} | did not finish: {reason} | | | |")
            continue
        out.append(
            f"| {line['size']} | {line['runtime']} | {line['s']:.2f} | "
            f"{line['s'] * 1e6 / line['pixels']:.1f} | {mb(line['page_memory_bytes'])} | "
            f"{mb(line['wasm_heap_bytes'])} |"
        )
    for runtime in dict.fromkeys(line["runtime"] for line in lines):
        done = [line for line in lines if line["runtime"] == runtime and not line["error"]]
        squares = [line for line in done if len(set(line["size"].split("x"))) == 1]
        if squares and done[-1] is not squares[-1]:  # the largest photo against the largest square
            base, largest = squares[-1], done[-1]
            ratio = (largest["s"] / largest["pixels"]) / (base["s"] / base["pixels"])
            out.append(
                f"\n{runtime}: time per pixel at {largest['size']} {ratio:.2f}x that at "
                f"{base['size']}"
            )
    return "\n".join(out) + "\n"


def format_layer_table(lines: list[dict]) -> str:
    """Time by layer of float32 and its twin (bench.layer_lines): milliseconds, GFLOP and the
    rate each layer reaches (a direct convolution's FLOPs over its time, whatever the variant,
    so that a Winograd layer's rate can pass the instruction set's peak), and the twin's time
    against float32's."""
    if not lines:
        return ""
    bundles = list(dict.fromkeys(bundle for line in lines for bundle in line["ms"]))
    head = ["threads", "layer", "GFLOP"]
    for bundle in bundles:
        head += [f"{bundle} ms", f"{bundle} GFLOP/s"]
    head.append(f"{bundles[-1]} / {bundles[0]}")
    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for line in lines:
        cells = [
            str(line["threads"]),
            line["layer"],
            f"{line['gflop']:.2f}" if line["gflop"] else "",
        ]
        for bundle in bundles:
            ms = line["ms"].get(bundle)
            variant = line["variant"].get(bundle)
            cells.append("" if ms is None else f"{ms:.0f}" + (f" ({variant})" if variant else ""))
            rate = line["gflop"] / (ms / 1e3) if ms and line["gflop"] else None
            cells.append("" if rate is None else f"{rate:.1f}")
        first, last = line["ms"].get(bundles[0]), line["ms"].get(bundles[-1])
        cells.append(f"{last / first:.2f}" if first and last and len(bundles) > 1 else "")
        out.append("| " + " | ".join(cells) + " |")
    return "\n".join(out) + "\n"


def format_same_style_table(lines: list[SameStyleLine]) -> str:
    if not lines:
        return ""
    out = [
        "| runtime | resolution | first s | same style again s | time saved | max abs vs first |",
        "|---|---|---|---|---|---|",
    ]
    for line in lines:
        out.append(
            f"| {line['runtime']} | {line['resolution']} | {line['first_s']:.2f} | "
            f"{line['again_s']:.2f} | {line['saved']:.0%} | {line['max_abs_vs_first']:.2g} |"
        )
    return "\n".join(out) + "\n"


def _cell(measured: Measured | None, key: str, fmt: str) -> str:
    if measured is None or key not in measured:
        return ""
    return format(measured[key], fmt)


def _quality_cell(measured: dict[str, float] | None) -> str:
    if measured is None:
        return ""
    if measured["max_abs"] == 0:
        return "identical"
    return f"{measured['psnr_db']:.1f} / {measured['ssim']:.4f} / {measured['max_abs']:.4f}"


def _largest_mb(row: BenchRow, key: str) -> str:
    values = [m[key] for m in row["resolutions"].values() if m.get(key) is not None]
    return f"{max(values) / 1e6:.0f}" if values else ""


def format_table(report: dict) -> str:
    resolutions = [str(r) for r in report["settings"]["resolutions"]]
    head = ["runtime"]
    for res in resolutions:
        head += [f"{res}: median s", f"{res}: x PyTorch"]
    head += [
        "download MB",
        "peak memory MB (process / wasm heap)",
        "page memory MB",
        "PSNR dB / SSIM / max abs vs float32",
    ]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in report["rows"]:
        cells = [row["name"]]
        for res in resolutions:
            measured = row["resolutions"].get(res)
            seconds = f"{measured['median_ms'] / 1e3:.2f}" if measured else ""
            cells += [seconds, _cell(measured, "ratio_to_pytorch", ".2f")]

        largest_peak = _largest_mb(row, "peak_memory_bytes")
        largest_page = _largest_mb(row, "page_memory_bytes")
        largest = row["resolutions"][max(row["resolutions"], key=int)]
        q = largest.get("quality_vs_float32")
        cells += [
            f"{row['download_bytes'] / 1e6:.1f}",
            largest_peak,
            largest_page,
            _quality_cell(q),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def format_quantization_table(report: dict) -> str:
    """Each TF.js bundle on the first browser backend at the fewest threads: its download
    against float32's, its quality against float32 and its time at each resolution."""
    rows = [row for row in report["rows"] if row.get("bundle") not in (None, BASELINE_BUNDLE)]
    if not rows:
        return ""
    backend = rows[0]["backend"]
    fewest = min(row.get("threads") or 1 for row in rows)
    rows = [r for r in rows if r["backend"] == backend and (r.get("threads") or 1) == fewest]
    float32 = next((row for row in rows if row["bundle"] == "float32"), None)
    resolutions = [str(res) for res in report["settings"]["resolutions"]]
    resolutions = [res for res in resolutions if float32 and res in float32["resolutions"]]
    head = ["bundle", "download MB (% of float32)"]
    head += [f"PSNR dB / SSIM at {res}" for res in resolutions]
    head += [f"TF.js s at {res}" for res in resolutions]
    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in rows:
        share = row["download_bytes"] / float32["download_bytes"] if float32 else None
        cells = [
            row["bundle"],
            f"{row['download_bytes'] / 1e6:.1f}" + (f" ({share:.1%})" if share else ""),
        ]
        for res in resolutions:
            quality = row["resolutions"].get(res, {}).get("quality_vs_float32")
            cells.append(f"{quality['psnr_db']:.1f} / {quality['ssim']:.4f}" if quality else "")
        for res in resolutions:
            measured = row["resolutions"].get(res)
            cells.append(f"{measured['median_ms'] / 1e3:.2f}" if measured else "")
        out.append("| " + " | ".join(cells) + " |")
    return "\n".join(out) + "\n"
