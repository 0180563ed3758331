"""Seeded stand-in checkpoints in exactly the upstream format. NOT trained weights.

The real checkpoints cannot be downloaded on this project's machines, so the fixture profile
builds and tests everything on these: same file names, keys, shapes and dtype as upstream,
generated from a seed, byte-for-byte reproducible. The weights are scaled so that activations
stay healthy through the whole network (the output of a photo has real contrast and depends on
the style image), which keeps later parity checks meaningful. The images they make are not
stylizations of anything.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch

from .architecture import (
    CHECKPOINT_FILES,
    DECODER_FILE,
    DECODER_LAYERS,
    TRANSFORM_FILE,
    VGG_FILE,
    checkpoint_tensors,
)
from .files import atomic_output
from .images import synthetic_painting, to_nchw

# Module 0 of upstream's vgg_normalised: RGB in [0, 1] -> BGR * 255 minus the Caffe VGG mean.
CAFFE_BGR_MEAN = (103.939, 116.779, 123.68)
OUTPUT_MEAN, OUTPUT_STD = 0.5, 0.25  # decoder output statistics on the calibration pair
LAST_DECODER_CONV = f"{len(DECODER_LAYERS) - 1}"


def _normal(generator: torch.Generator, shape: tuple, std: float) -> torch.Tensor:
    return torch.randn(shape, generator=generator, dtype=torch.float32) * std


def _he_std(shape: tuple) -> float:
    fan_in = shape[1] * shape[2] * shape[3]
    return math.sqrt(2.0 / fan_in)


def _init(
    generator: torch.Generator, key: str, shape: tuple, weight_std: float | None = None
) -> torch.Tensor:
    """Small random biases; weights with `weight_std`, He-normal (ReLU networks) by default."""
    if key.endswith(".bias"):
        return _normal(generator, shape, 0.01)
    return _normal(generator, shape, _he_std(shape) if weight_std is None else weight_std)


def _vgg(generator: torch.Generator, width_divisor: int) -> dict[str, torch.Tensor]:
    state = {}
    for key, shape in checkpoint_tensors(VGG_FILE, width_divisor).items():
        if key == "0.weight":
            weight = torch.zeros(shape)
            for out_channel in range(3):
                weight[out_channel, 2 - out_channel, 0, 0] = 255.0  # RGB -> BGR, [0,1] -> [0,255]
            state[key] = weight
        elif key == "0.bias":
            state[key] = -torch.tensor(CAFFE_BGR_MEAN, dtype=torch.float32)
        else:
            state[key] = _init(generator, key, shape)
    return state


def _transform(generator: torch.Generator, width_divisor: int) -> dict[str, torch.Tensor]:
    state = {}
    for key, shape in checkpoint_tensors(TRANSFORM_FILE, width_divisor).items():
        channels = shape[0]
        conv = key.split(".")[-2]
        if conv in ("f", "g"):
            # Attention logits are sums over `channels` products: scale them to unit variance
            # so that the softmax neither saturates to one-hot nor flattens to a mean.
            std = channels**-0.75
        elif conv == "merge_conv":
            std = math.sqrt(1.0 / (9 * channels))
        else:
            std = channels**-0.5
        state[key] = _init(generator, key, shape, std)
    return state


def _decoder(generator: torch.Generator, width_divisor: int) -> dict[str, torch.Tensor]:
    state = {}
    for key, shape in checkpoint_tensors(DECODER_FILE, width_divisor).items():
        std = _he_std(shape) if len(shape) == 4 else 0.0
        state[key] = _init(generator, key, shape, std)
    return state


def _round_significant(value: float, digits: int = 3) -> float:
    # Rounded so that float noise in the calibration pass (thread counts, BLAS builds) cannot
    # change the bytes of the generated files.
    return float(f"{value:.{digits - 1}e}")


def _calibrate_decoder(states: dict[str, dict[str, torch.Tensor]], width_divisor: int) -> None:
    """Rescale each decoder conv on a calibration pair: hidden layers to unit std, the output
    to mean 0.5 and std 0.25. Without it the decoder input (VGG features of a 0-255 image,
    in the hundreds) would leave a large offset for the last layer to cancel, and float32
    round-off would dominate the image."""
    from .patch import model_from_states

    model = model_from_states(states, width_divisor)
    content = to_nchw(synthetic_painting(1, 64, 64))
    style = to_nchw(synthetic_painting(2, 64, 64))
    decoder = states[DECODER_FILE]
    with torch.no_grad():
        c4, c5 = model.encoder(content)
        s4, s5 = model.encoder(style)
        x = model.transform(c4, s4, c5, s5)
        for index, module in enumerate(model.decoder):
            if isinstance(module, torch.nn.Conv2d):
                weight, bias = decoder[f"{index}.weight"], decoder[f"{index}.bias"]
                x = torch.nn.functional.conv2d(x, weight, bias)
                if str(index) == LAST_DECODER_CONV:
                    scale = _round_significant(OUTPUT_STD / float(x.std()))
                    means = torch.tensor(
                        [_round_significant(float(x[0, c].mean())) for c in range(3)]
                    )
                    decoder[f"{index}.weight"] = weight * scale
                    decoder[f"{index}.bias"] = (bias - means) * scale + OUTPUT_MEAN
                else:
                    scale = _round_significant(1.0 / float(x.std()))
                    decoder[f"{index}.weight"], decoder[f"{index}.bias"] = (
                        weight * scale,
                        bias * scale,
                    )
                    x = x * scale
            else:
                x = module(x)


def fixture_state_dicts(seed: int, width_divisor: int = 1) -> dict[str, dict[str, torch.Tensor]]:
    """The three upstream-format state dicts, deterministic in (seed, width_divisor)."""
    generator = torch.Generator().manual_seed(seed)
    states = {
        VGG_FILE: _vgg(generator, width_divisor),
        TRANSFORM_FILE: _transform(generator, width_divisor),
        DECODER_FILE: _decoder(generator, width_divisor),
    }
    _calibrate_decoder(states, width_divisor)
    return states


def write_fixture_checkpoints(out_dir: Path, seed: int, width_divisor: int = 1) -> list[Path]:
    """Write the three fixture checkpoints under their upstream file names, atomically."""
    states = fixture_state_dicts(seed, width_divisor)
    paths = []
    for name in CHECKPOINT_FILES:
        with atomic_output(Path(out_dir) / name) as staged:
            torch.save(states[name], staged)
        paths.append(Path(out_dir) / name)
    return paths
