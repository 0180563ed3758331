"""Upstream checkpoints -> the patched model's three state dicts.

The logic of stage `patch`; its entry point is stages/patch.py.

The outputs are what every later stage starts from: the encoder only through relu5_1 (the VGG
tensors after module 43 are dropped here, never shipped), the transform and the decoder, each
validated tensor by tensor on the way in, then folded (sanet_tfjs.folds: 5 % fewer parameters,
the same outputs up to float rounding, checked here against the upstream layout).
"""

from __future__ import annotations

from pathlib import Path

import torch

from .architecture import (
    DECODER_FILE,
    PATCHED_PARTS,
    TRANSFORM_FILE,
    VGG_FILE,
    used_encoder_keys,
)
from .checkpoints import CheckpointError, load_checkpoint, load_state_dict, state_dict_problems
from .model import PatchedSANet
from .parity import PartsBackend

FLOPS_SIDE = 256  # the photo and style size at which the folds' saving is counted


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
    """The patched model from the `patch` stage's outputs (safe load, shapes checked). The
    `patch` stage writes it folded (sanet_tfjs.folds); a set still holding the encoder's
    module 0 (`0.weight`) is unfolded and loads in the upstream layout."""
    states = {part: load_state_dict(Path(patched_dir) / f"{part}.pt") for part in PATCHED_PARTS}
    model = PatchedSANet(width_divisor, folded="0.weight" not in states["encoder"]).eval()
    for part, state in states.items():
        module = getattr(model, part)
        expected = {key: tuple(value.shape) for key, value in module.state_dict().items()}
        problems = state_dict_problems(state, expected)
        if problems:
            raise CheckpointError(
                f"{Path(patched_dir) / part}.pt does not match the patched {part}: {problems}; "
                "run `doit patch`"
            )
        module.load_state_dict(state)
    return model


def torch_backend(model: PatchedSANet) -> PartsBackend:
    """A PyTorch model as a parity backend (numpy in and out)."""

    def run(function):
        def call(*arrays):
            with torch.no_grad():
                result = function(*(torch.from_numpy(array) for array in arrays))
            return tuple(t.numpy() for t in result) if isinstance(result, tuple) else result.numpy()

        return call

    return PartsBackend(run(model.encoder), run(model.transform), run(model.decoder))


def stylization_flops(model: PatchedSANet, side: int = FLOPS_SIDE) -> int:
    """Floating-point operations of one stylization (iters 1) of a side x side photo with a
    side x side style, as torch's FLOP counter counts them (convolutions and products)."""
    from torch.utils.flop_counter import FlopCounterMode

    content, style = (
        torch.rand(1, 3, side, side, generator=torch.Generator().manual_seed(s)) for s in (0, 1)
    )
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model.stylize(content, style)
    return counter.get_total_flops()
