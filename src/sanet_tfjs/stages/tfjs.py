"""Stage `tfjs` (tasks/tfjs.py).

The TFStyle SavedModel to a TensorFlow.js graph model, checked in Node. Its logic is in
tfjs_convert.py; this module is its entry point.
"""

from __future__ import annotations

from pathlib import Path

from ..files import atomic_output, write_json
from ..patch import load_patched_model
from ..quantize import load_plan
from ..tfjs_convert import (
    ConversionError,
    bundle_bytes,
    compare_in_node,
    convert,
    winograd_choices,
    winograd_record,
)


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
) -> dict:
    model = load_patched_model(Path(patched_dir), width_divisor)
    parameters = sum(p.numel() for p in model.parameters())
    unquantized = quantization == "none"
    plan = None
    if quantization == "auto":
        plan = load_plan(plan_dir, model)
    with atomic_output(Path(out_dir)) as staged:
        choices = winograd_choices(width_divisor) if optimize and winograd else {}
        rewrites, convolutions = convert(
            Path(tfstyle_dir) / "saved_model", staged, shard_bytes, quantization, optimize, plan,
            choices,
        )  # fmt: skip
        print(f"  graph rewrites: {rewrites or 'none (tfjs.optimize is off)'}")
        print("  3x3 convolutions: " + ", ".join(
            f"{layer['in_channels']}->{layer['out_channels']} {layer['variant']}"
            for layer in convolutions
        ))  # fmt: skip
        size = bundle_bytes(staged)
        size["float32_parameters"] = 4 * parameters
        size["ratio"] = size["weights"] / size["float32_parameters"]
        print(
            f"  bundle: {size['weights'] / 1e6:.2f} MB of weights in {size['shards']} shards "
            f"({size['ratio']:.3f} x the float32 parameters), model.json "
            f"{size['model_json'] / 1e3:.0f} kB"
        )
        if unquantized and size["ratio"] > max_size_ratio:
            raise ConversionError(
                f"the TFJS bundle holds {size['ratio']:.2f} x the model's float32 parameters "
                f"(limit {max_size_ratio}): a weight is stored more than once (a part called "
                f"from two places in the TFStyle graph?)"
            )
        report, timings = compare_in_node(staged, model, result_max_abs if unquantized else None)
        report["size"] = size
        report["quantization"] = quantization
        if plan is not None:
            report["quantization_plan"] = plan.report()
        report["graph_rewrites"] = rewrites
        report["convolutions_3x3"] = winograd_record(convolutions, bool(choices))
    write_json(Path(report_path), report)
    write_json(Path(timings_path), timings)
    return {"passed": bool(report["passed"])}
