"""Stage `tfjs` (tasks/tfjs.py).

The TFStyle SavedModel to TensorFlow.js graph models, checked in Node: the exact float32
bundle (out_dir), held to the parity tolerance, and, unless `tfjs.quantization` is none, the
small one the page loads by default (small_dir: float16, uint8, or auto: the plan stage's
dtypes), from the same conversion; its size, and for auto the fidelity the plan measured, in
the report and in small_dir/fidelity.json (the page stage reads it; the smoke stage measures
the fidelity again in Chromium). Its logic is in tfjs_convert.py; this module is its entry
point.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from ..bundles import FIDELITY_JSON
from ..files import atomic_output, write_json
from ..patch import load_patched_model
from ..quantize import load_plan
from ..tfjs_convert import (
    ConversionError,
    bundle_bytes,
    compare_in_node,
    finish_bundle,
    run_converter,
    winograd_record,
)
from ..winograd import winograd_choices


def run_tfjs_stage(
    tfstyle_dir: str,
    patched_dir: str,
    out_dir: str,
    report_path: str,
    timings_path: str,
    width_divisor: int,
    shard_bytes: int,
    quantization: str,
    optimize: bool,
    winograd: bool,
    max_size_ratio: float,
    result_max_abs: float,
    plan_dir: str | None,
    small_dir: str | None = None,
) -> dict:
    model = load_patched_model(Path(patched_dir), width_divisor)
    parameters = sum(p.numel() for p in model.parameters())
    plan = load_plan(plan_dir, model) if quantization == "auto" else None
    choices = winograd_choices(width_divisor) if optimize and winograd else {}
    with tempfile.TemporaryDirectory(prefix="tfjs-raw-") as raw:  # under the build scratch
        run_converter(Path(tfstyle_dir) / "saved_model", Path(raw) / "model")
        with atomic_output(Path(out_dir)) as staged:
            rewrites, convolutions = finish_bundle(
                Path(raw) / "model", staged, shard_bytes, "none", optimize, None, choices
            )
            print(f"  graph rewrites: {rewrites or 'none (tfjs.optimize is off)'}")
            print("  3x3 convolutions: " + ", ".join(
                f"{layer['in_channels']}->{layer['out_channels']} {layer['variant']}"
                for layer in convolutions
            ))  # fmt: skip
            size = _size(staged, parameters, "exact")
            if size["ratio"] > max_size_ratio:
                raise ConversionError(
                    f"the TFJS bundle holds {size['ratio']:.2f} x the model's float32 "
                    f"parameters (limit {max_size_ratio}): a weight is stored more than once (a "
                    f"part called from two places in the TFStyle graph?)"
                )
            report, timings = compare_in_node(staged, model, result_max_abs)
            report["size"] = size
            report["quantization"] = "none"
            report["graph_rewrites"] = rewrites
            report["convolutions_3x3"] = winograd_record(convolutions, bool(choices))
        if small_dir is not None:
            with atomic_output(Path(small_dir)) as small:
                small.mkdir()
                if quantization != "none":
                    finish_bundle(
                        Path(raw) / "model", small, shard_bytes, quantization, optimize, plan,
                        choices,
                    )  # fmt: skip
                    report["small"] = {
                        "quantization": quantization,
                        "size": _size(small, parameters, f"small ({quantization})"),
                    }
                    if plan is not None:
                        report["small"]["quantization_plan"] = plan.report()
                        write_json(small / FIDELITY_JSON, plan_fidelity(plan.report()))
    write_json(Path(report_path), report)
    write_json(Path(timings_path), timings)
    return {"passed": bool(report["passed"])}


def _size(bundle: Path, parameters: int, name: str) -> dict:
    size = bundle_bytes(bundle)
    size["float32_parameters"] = 4 * parameters
    size["ratio"] = size["weights"] / size["float32_parameters"]
    print(
        f"  {name} bundle: {size['weights'] / 1e6:.2f} MB of weights in {size['shards']} shards "
        f"({size['ratio']:.3f} x the float32 parameters), model.json "
        f"{size['model_json'] / 1e3:.0f} kB"
    )
    return size


def plan_fidelity(plan_report: dict) -> dict:
    """What the page says of the auto bundle: the worst PSNR and SSIM its plan measured."""
    chosen = plan_report["chosen"]
    return {
        "psnr_db": chosen["psnr_db"],
        "ssim": chosen["ssim"],
        "resolutions": plan_report["target"]["resolutions"],
        "measured_with": "PyTorch, the plan stage (the benchmark's pair)",
    }
