"""Stage `patch`: upstream checkpoints -> the patched model's three state dicts.

The outputs are what every later stage starts from: the encoder only through relu5_1 (the VGG
tensors after module 43 are dropped here, never shipped), the transform and the decoder, each
validated tensor by tensor on the way in.
"""

from __future__ import annotations

from pathlib import Path

import torch

from .architecture import (
    DECODER_FILE,
    PATCHED_PARTS,
    TRANSFORM_FILE,
    VGG_FILE,
    checkpoint_tensors,
    used_encoder_keys,
)
from .checkpoints import CheckpointError, load_checkpoint, load_state_dict, state_dict_problems
from .files import atomic_output, sha256_file, write_json
from .model import PatchedSANet


def model_from_states(states: dict[str, dict], width_divisor: int = 1) -> PatchedSANet:
    """The patched model from upstream-format state dicts keyed by upstream file name; the
    VGG tensors after relu5_1 are dropped."""
    model = PatchedSANet(width_divisor).eval()
    vgg = states[VGG_FILE]
    model.encoder.load_state_dict({key: vgg[key] for key in used_encoder_keys(width_divisor)})
    model.transform.load_state_dict(states[TRANSFORM_FILE])
    model.decoder.load_state_dict(states[DECODER_FILE])
    return model


def model_from_checkpoints(checkpoints_dir: Path, width_divisor: int = 1) -> PatchedSANet:
    """The patched model with upstream-format checkpoints loaded (validated) from a folder."""
    names = (VGG_FILE, TRANSFORM_FILE, DECODER_FILE)
    states = {name: load_checkpoint(Path(checkpoints_dir) / name, width_divisor) for name in names}
    return model_from_states(states, width_divisor)


def load_patched_model(patched_dir: Path, width_divisor: int = 1) -> PatchedSANet:
    """The patched model from the `patch` stage's outputs (safe load, shapes checked)."""
    model = PatchedSANet(width_divisor).eval()
    for part in PATCHED_PARTS:
        module = getattr(model, part)
        path = Path(patched_dir) / f"{part}.pt"
        state = load_state_dict(path)
        expected = {key: tuple(value.shape) for key, value in module.state_dict().items()}
        problems = state_dict_problems(state, expected)
        if problems:
            raise CheckpointError(
                f"{path} does not match the patched {part}: {problems}; run `doit patch`"
            )
        module.load_state_dict(state)
    return model


def run_patch_stage(checkpoints_dir: Path, out_dir: Path, width_divisor: int) -> dict:
    """Write encoder.pt, transform.pt, decoder.pt and a patch.json summary into `out_dir`."""
    checkpoints_dir, out_dir = Path(checkpoints_dir), Path(out_dir)
    model = model_from_checkpoints(checkpoints_dir, width_divisor)
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
    }
    for part in PATCHED_PARTS:
        module = getattr(model, part)
        state = {key: value.contiguous() for key, value in module.state_dict().items()}
        with atomic_output(out_dir / f"{part}.pt") as staged:
            torch.save(state, staged)
        summary["parameters"][part] = sum(value.numel() for value in state.values())
    summary["parameters"]["total"] = sum(summary["parameters"].values())
    write_json(out_dir / "patch.json", summary)
    return summary
