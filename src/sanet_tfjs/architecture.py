"""The upstream SANet layout as plain data: module tables and the tensors each checkpoint holds.

Pure Python (no torch) so that validation messages, the fixture generator and the patched
model all read one description. Layout: GlebSBrykin/SANET's `Eval.py`, the upstream
evaluation script (its VGG, Transform and decoder modules). `width_divisor` divides every
channel count except the RGB ends, giving tiny models of the same topology for tests; 1 is the
upstream model.
"""

from __future__ import annotations

from dataclasses import dataclass

VGG_FILE = "vgg_normalised.pth"
DECODER_FILE = "decoder_iter_500000.pth"
TRANSFORM_FILE = "transformer_iter_500000.pth"
CHECKPOINT_FILES = (VGG_FILE, DECODER_FILE, TRANSFORM_FILE)

# The three parts of the patched model (the `patch` stage writes one state dict each).
PATCHED_PARTS = ("encoder", "transform", "decoder")
# The transform's inputs, in the order of its ONNX graph and its SavedModel signature.
FEATURE_INPUTS = ("content4_1", "style4_1", "content5_1", "style5_1")

# Modules [0, RELU4_1_END) of the VGG produce relu4_1, [RELU4_1_END, RELU5_1_END) relu5_1.
RELU4_1_END = 31
RELU5_1_END = 44

RGB = 3
FEATURES = 512  # channels of relu4_1 / relu5_1 at full width
WIDTH_DIVISORS = (1, 2, 4, 8, 16, 32, 64)


@dataclass(frozen=True)
class Layer:
    """One module of an upstream `nn.Sequential`: kind is conv, pad, relu, pool or upsample."""

    kind: str
    in_channels: int = 0
    out_channels: int = 0
    kernel: int = 0


def _conv(cin: int, cout: int, kernel: int = 3) -> Layer:
    return Layer("conv", cin, cout, kernel)


def _block(cin: int, cout: int) -> list[Layer]:
    return [Layer("pad"), _conv(cin, cout), Layer("relu")]


def _vgg_layers() -> list[Layer]:
    pool = Layer("pool")
    layers = [_conv(RGB, RGB, 1)]  # the "normalisation" conv: RGB [0, 1] -> BGR * 255 - mean
    layers += _block(RGB, 64) + _block(64, 64) + [pool]
    layers += _block(64, 128) + _block(128, 128) + [pool]
    layers += _block(128, 256) + _block(256, 256) * 3 + [pool]
    layers += _block(256, 512) + _block(512, 512) * 3 + [pool]
    layers += _block(512, 512) * 4
    return layers


def _decoder_layers() -> list[Layer]:
    up = Layer("upsample")
    layers = _block(512, 256) + [up]
    layers += _block(256, 256) * 3 + _block(256, 128) + [up]
    layers += _block(128, 128) + _block(128, 64) + [up]
    layers += _block(64, 64) + [Layer("pad"), _conv(64, RGB)]  # no ReLU on the output
    return layers


VGG_LAYERS: tuple[Layer, ...] = tuple(_vgg_layers())
DECODER_LAYERS: tuple[Layer, ...] = tuple(_decoder_layers())
assert len(VGG_LAYERS) == 53 and len(DECODER_LAYERS) == 29


def scaled(channels: int, width_divisor: int) -> int:
    """Channel count at a width: RGB ends stay 3, every other count is divided."""
    return channels if channels == RGB else channels // width_divisor


def check_width_divisor(width_divisor: int) -> None:
    if width_divisor not in WIDTH_DIVISORS:
        raise ValueError(
            f"width_divisor must be one of {WIDTH_DIVISORS} (it divides 64 channels), "
            f"got {width_divisor!r}"
        )


def scale_layer(layer: Layer, width_divisor: int) -> Layer:
    if layer.kind != "conv":
        return layer
    return Layer(
        "conv",
        scaled(layer.in_channels, width_divisor),
        scaled(layer.out_channels, width_divisor),
        layer.kernel,
    )


def _sequential_tensors(layers: tuple[Layer, ...], width_divisor: int) -> dict[str, tuple]:
    tensors: dict[str, tuple] = {}
    for index, layer in enumerate(layers):
        if layer.kind == "conv":
            conv = scale_layer(layer, width_divisor)
            k = conv.kernel
            tensors[f"{index}.weight"] = (conv.out_channels, conv.in_channels, k, k)
            tensors[f"{index}.bias"] = (conv.out_channels,)
    return tensors


def transform_tensors(width_divisor: int) -> dict[str, tuple]:
    c = scaled(FEATURES, width_divisor)
    tensors: dict[str, tuple] = {}
    for block in ("sanet4_1", "sanet5_1"):
        for conv in ("f", "g", "h", "out_conv"):
            tensors[f"{block}.{conv}.weight"] = (c, c, 1, 1)
            tensors[f"{block}.{conv}.bias"] = (c,)
    tensors["merge_conv.weight"] = (c, c, 3, 3)
    tensors["merge_conv.bias"] = (c,)
    return tensors


def checkpoint_tensors(file_name: str, width_divisor: int = 1) -> dict[str, tuple]:
    """Key -> shape of every tensor the upstream checkpoint `file_name` holds (all float32)."""
    check_width_divisor(width_divisor)
    if file_name == VGG_FILE:
        return _sequential_tensors(VGG_LAYERS, width_divisor)
    if file_name == DECODER_FILE:
        return _sequential_tensors(DECODER_LAYERS, width_divisor)
    if file_name == TRANSFORM_FILE:
        return transform_tensors(width_divisor)
    raise KeyError(f"unknown checkpoint {file_name!r}; expected one of {CHECKPOINT_FILES}")


def used_encoder_keys(width_divisor: int = 1) -> list[str]:
    """VGG keys of modules up to relu5_1: the only encoder weights the product keeps."""
    return [
        key
        for key in checkpoint_tensors(VGG_FILE, width_divisor)
        if int(key.split(".")[0]) < RELU5_1_END
    ]
