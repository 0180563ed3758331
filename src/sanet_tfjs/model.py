"""The patched SANet: the upstream network re-implemented so that it exports cleanly.

Same parameters and the same numbers as upstream wherever upstream runs. What changed, and why:
- `torch.flatten(x, 2)` and `reshape_as` replace `x.view(b, -1, w * h)` with sizes read in
  Python, which the ONNX exporter freezes into constants;
- the relu5_1 branch is upsampled x2 and cropped to exactly the relu4_1 size, so inputs whose
  relu4_1 map has an odd side work (upstream's fixed x2 crashes there); for even sides this is
  upstream's x2, and for odd sides it equals nearest-neighbour resizing to that size;
- the encoder stops at relu5_1: modules 44..52 of the VGG are never used, so never kept;
- the relu4_1 block's attention runs over its content positions in ATTENTION_CHUNKS slices:
  the softmax is over style positions, one row per content position, so the rows can be
  computed apart with the same result, and the [content x style] matrix (67 MB at 512x512,
  1 GB at 1024x1024) never exists whole in a runtime that frees each slice after use.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .architecture import (
    DECODER_LAYERS,
    FEATURES,
    RELU4_1_END,
    RELU5_1_END,
    VGG_LAYERS,
    Layer,
    check_width_divisor,
    scale_layer,
    scaled,
)

MVN_EPS = 1e-5
# Slices of the relu4_1 attention. At most 9, so that no slice is empty at the smallest
# input the contract allows (MIN_SIDE 17 px gives a 3x3 relu4_1 map); the relu5_1 attention
# has a quarter of the positions on each side and is left whole.
ATTENTION_CHUNKS = 8


def _module(layer: Layer) -> nn.Module:
    if layer.kind == "conv":
        return nn.Conv2d(layer.in_channels, layer.out_channels, layer.kernel)
    if layer.kind == "pad":
        return nn.ReflectionPad2d(1)
    if layer.kind == "relu":
        return nn.ReLU()
    if layer.kind == "pool":
        return nn.MaxPool2d(2, 2, ceil_mode=True)
    if layer.kind == "upsample":
        return nn.Upsample(scale_factor=2, mode="nearest")
    raise ValueError(f"unknown layer kind {layer.kind!r}")


def _modules(layers: tuple[Layer, ...], width_divisor: int) -> list[nn.Module]:
    check_width_divisor(width_divisor)
    return [_module(scale_layer(layer, width_divisor)) for layer in layers]


class Encoder(nn.Sequential):
    """VGG-19 modules 0..43 (through relu5_1); state-dict keys as upstream (`0.weight` ...).
    Folded (sanet_tfjs.folds): module 0, the 1x1 input convolution, lives in module 2."""

    def __init__(self, width_divisor: int = 1, folded: bool = False) -> None:
        modules = _modules(VGG_LAYERS[:RELU5_1_END], width_divisor)
        if folded:
            modules[0] = nn.Identity()
        super().__init__(*modules)

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = image
        for index, module in enumerate(self):
            x = module(x)
            if index == RELU4_1_END - 1:
                relu4_1 = x
        return relu4_1, x


class Decoder(nn.Sequential):
    """The upstream decoder, unchanged: relu4_1-sized features -> RGB at 8x the size."""

    def __init__(self, width_divisor: int = 1) -> None:
        super().__init__(*_modules(DECODER_LAYERS, width_divisor))


def mean_variance_norm(feat: torch.Tensor) -> torch.Tensor:
    """Per-channel normalisation with upstream's unbiased variance and eps on the variance."""
    mean = feat.mean(dim=(2, 3), keepdim=True)
    var = feat.var(dim=(2, 3), keepdim=True) + MVN_EPS
    return (feat - mean) / var.sqrt()


class SANet(nn.Module):
    """Style-attentional block: content positions attend over style positions."""

    def __init__(self, channels: int, chunks: int = 1) -> None:
        super().__init__()
        self.chunks = chunks
        self.f = nn.Conv2d(channels, channels, 1)
        self.g = nn.Conv2d(channels, channels, 1)
        self.h = nn.Conv2d(channels, channels, 1)
        self.out_conv = nn.Conv2d(channels, channels, 1)

    def forward(self, content: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        f = torch.flatten(self.f(mean_variance_norm(content)), 2)  # b, c, Nc
        g = torch.flatten(self.g(mean_variance_norm(style)), 2)  # b, c, Ns
        h = torch.flatten(self.h(style), 2)  # b, c, Ns
        queries = f.transpose(1, 2)  # b, Nc, c
        positions = queries.shape[1]  # traced: a dynamic size in the exported graph
        parts = []
        for chunk in range(self.chunks):
            rows = queries[
                :, chunk * positions // self.chunks : (chunk + 1) * positions // self.chunks
            ]
            attention = torch.softmax(torch.bmm(rows, g), dim=-1)  # b, rows, Ns
            parts.append(torch.bmm(h, attention.transpose(1, 2)))  # b, c, rows
        out = (parts[0] if self.chunks == 1 else torch.cat(parts, 2)).reshape_as(content)
        return self.out_conv(out) + content


class FoldedSANet(nn.Module):
    """SANet with its four 1x1 convolutions folded into two (sanet_tfjs.folds): the same
    attention and output up to float rounding, half the parameters, and no convolution on
    the content side."""

    def __init__(self, channels: int, chunks: int = 1) -> None:
        super().__init__()
        self.chunks = chunks
        self.key = nn.Conv2d(channels, channels, 1, bias=False)  # Wf^T Wg
        self.key_bias = nn.Conv2d(channels, 1, 1, bias=False)  # bf^T Wg
        self.value = nn.Conv2d(channels, channels, 1, bias=False)  # Wout Wh
        self.out_bias = nn.Parameter(torch.zeros(channels))  # Wout bh + bout

    def forward(self, content: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        normalised_style = mean_variance_norm(style)
        keys = torch.flatten(self.key(normalised_style), 2)  # b, c, Ns
        key_bias = torch.flatten(self.key_bias(normalised_style), 2)  # b, 1, Ns
        values = torch.flatten(self.value(style), 2)  # b, c, Ns
        queries = torch.flatten(mean_variance_norm(content), 2).transpose(1, 2)  # b, Nc, c
        positions = queries.shape[1]
        parts = []
        for chunk in range(self.chunks):
            rows = queries[
                :, chunk * positions // self.chunks : (chunk + 1) * positions // self.chunks
            ]
            attention = torch.softmax(torch.bmm(rows, keys) + key_bias, dim=-1)
            parts.append(torch.bmm(values, attention.transpose(1, 2)))
        out = (parts[0] if self.chunks == 1 else torch.cat(parts, 2)).reshape_as(content)
        return out + self.out_bias.reshape(1, -1, 1, 1) + content


class Transform(nn.Module):
    """Two SANet blocks (relu4_1, relu5_1) merged by a 3x3 conv; keys as upstream (folded:
    the blocks' keys as sanet_tfjs.folds writes them)."""

    def __init__(self, width_divisor: int = 1, folded: bool = False) -> None:
        super().__init__()
        check_width_divisor(width_divisor)
        channels = scaled(FEATURES, width_divisor)
        block = FoldedSANet if folded else SANet
        self.sanet4_1 = block(channels, ATTENTION_CHUNKS)
        self.sanet5_1 = block(channels)
        self.merge_conv_pad = nn.ReflectionPad2d(1)
        self.merge_conv = nn.Conv2d(channels, channels, 3)

    def forward(
        self,
        content4_1: torch.Tensor,
        style4_1: torch.Tensor,
        content5_1: torch.Tensor,
        style5_1: torch.Tensor,
    ) -> torch.Tensor:
        branch5_1 = self.sanet5_1(content5_1, style5_1)
        # relu5_1 is ceil(relu4_1 / 2): x2 then crop is nearest resizing to the relu4_1 size.
        up = F.interpolate(branch5_1, scale_factor=2.0, mode="nearest")
        up = up[:, :, : content4_1.shape[2], : content4_1.shape[3]]
        return self.merge_conv(self.merge_conv_pad(self.sanet4_1(content4_1, style4_1) + up))


class PatchedSANet(nn.Module):
    """Encoder, transform and decoder, with the product's stylization loop. `folded`: the
    exact algebraic folds of sanet_tfjs.folds (fewer parameters, same outputs)."""

    def __init__(self, width_divisor: int = 1, folded: bool = False) -> None:
        super().__init__()
        self.folded = folded
        self.encoder = Encoder(width_divisor, folded)
        self.transform = Transform(width_divisor, folded)
        self.decoder = Decoder(width_divisor)

    def forward(self, content: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        """One upstream pass: NCHW RGB in [0, 1] -> decoder output (8x the relu4_1 size)."""
        c4, c5 = self.encoder(content)
        s4, s5 = self.encoder(style)
        return self.decoder(self.transform(c4, s4, c5, s5))

    @torch.no_grad()
    def stylize(self, content: torch.Tensor, style: torch.Tensor, iters: int = 1) -> torch.Tensor:
        """The product's loop (stylize_loop) over this model's parts."""
        return stylize_loop(self.encoder, self.transform, self.decoder, content, style, iters)


def stylize_loop(encode, transform, decode, content, style, iters: int, style_features=None):
    """The product's loop over any implementation of the three parts (NCHW torch tensors or
    numpy arrays): style encoded once; each pass re-stylizes the previous output, cropped to
    the content size and clipped to [0, 1]. `style_features`, encode(style) of an earlier
    run, skip encoding the style again (`style` is then not read)."""
    if iters < 1:
        raise ValueError(f"iters must be >= 1, got {iters}")
    height, width = content.shape[2], content.shape[3]
    s4, s5 = encode(style) if style_features is None else style_features
    image = content
    for _ in range(iters):
        c4, c5 = encode(image)
        image = decode(transform(c4, s4, c5, s5))
        image = image[:, :, :height, :width].clip(0.0, 1.0)
    return image
