"""Stage `patch` (tasks/patch.py).

Upstream checkpoints -> the patched model's three state dicts. Its logic is in patch.py; this
module is its entry point.
"""

from __future__ import annotations

from pathlib import Path

import torch

from ..architecture import (
    DECODER_FILE,
    PATCHED_PARTS,
    TRANSFORM_FILE,
    VGG_FILE,
    checkpoint_tensors,
    used_encoder_keys,
)
from ..files import atomic_output, sha256_file, write_json
from ..folds import folded_model
from ..parity import compare_parts, enforce_parts
from ..patch import (
    FLOPS_SIDE,
    model_from_checkpoints,
    stylization_flops,
    torch_backend,
)


def run_patch_stage(
    checkpoints_dir: Path,
    out_dir: Path,
    width_divisor: int,
    feature_rel_l2: float,
    image_max_abs: float,
) -> dict:
    """Write the folded encoder.pt, transform.pt, decoder.pt, a patch.json summary, and
    parity.json: the folded model against the upstream layout (the folds are exact up to
    float rounding; pipeline.yaml's parity tolerances apply)."""
    checkpoints_dir, out_dir = Path(checkpoints_dir), Path(out_dir)
    upstream = model_from_checkpoints(checkpoints_dir, width_divisor)
    model = folded_model(upstream, width_divisor)
    report = compare_parts(torch_backend(model), upstream)
    enforce_parts(report, "patch", feature_rel_l2, image_max_abs)
    summary = {
        "width_divisor": width_divisor,
        "parameters": {},
        "inputs_sha256": {
            name: sha256_file(checkpoints_dir / name)
            for name in (VGG_FILE, TRANSFORM_FILE, DECODER_FILE)
        },
        "dropped_vgg_tensors": [
            key
            for key in checkpoint_tensors(VGG_FILE, width_divisor)
            if key not in used_encoder_keys(width_divisor)
        ],
        "folds": {
            "parameters_before": sum(p.numel() for p in upstream.parameters()),
            "parameters_after": sum(p.numel() for p in model.parameters()),
            f"flops_{FLOPS_SIDE}px_before": stylization_flops(upstream),
            f"flops_{FLOPS_SIDE}px_after": stylization_flops(model),
        },
    }
    with atomic_output(out_dir) as staged:
        staged.mkdir()
        for part in PATCHED_PARTS:
            module = getattr(model, part)
            state = {key: value.contiguous() for key, value in module.state_dict().items()}
            torch.save(state, staged / f"{part}.pt")
            summary["parameters"][part] = sum(value.numel() for value in state.values())
        summary["parameters"]["total"] = sum(summary["parameters"].values())
        write_json(staged / "patch.json", summary)
        write_json(staged / "parity.json", report)
    folds = summary["folds"]
    print(
        f"  folds: {folds['parameters_before']:,} -> {folds['parameters_after']:,} parameters; "
        f"{folds[f'flops_{FLOPS_SIDE}px_before'] / 1e9:.2f} -> "
        f"{folds[f'flops_{FLOPS_SIDE}px_after'] / 1e9:.2f} GFLOP per {FLOPS_SIDE}-px stylization"
    )
    return summary
