"""An independent re-implementation of the upstream SANet forward pass, for tests only.

Written the way upstream's Eval.py is (GlebSBrykin/SANET): whole `nn.Sequential` VGG of 53
modules sliced into enc_1..enc_5, `view`-based attention, a fixed x2 upsample of the relu5_1
branch. It shares no code with `sanet_tfjs.model`, so agreement between the two is evidence
that the patched model computes upstream's function. `w` is the width divisor.
"""

from __future__ import annotations

import torch
from torch import nn


def _conv_block(cin: int, cout: int) -> list[nn.Module]:
    return [nn.ReflectionPad2d((1, 1, 1, 1)), nn.Conv2d(cin, cout, (3, 3)), nn.ReLU()]


def make_vgg(w: int = 1) -> nn.Sequential:
    def pool() -> nn.Module:
        return nn.MaxPool2d((2, 2), (2, 2), (0, 0), ceil_mode=True)

    c64, c128, c256, c512 = 64 // w, 128 // w, 256 // w, 512 // w
    layers: list[nn.Module] = [nn.Conv2d(3, 3, (1, 1))]
    layers += _conv_block(3, c64) + _conv_block(c64, c64) + [pool()]
    layers += _conv_block(c64, c128) + _conv_block(c128, c128) + [pool()]
    layers += _conv_block(c128, c256)
    for _ in range(3):
        layers += _conv_block(c256, c256)
    layers += [pool()] + _conv_block(c256, c512)
    for _ in range(3):
        layers += _conv_block(c512, c512)
    layers += [pool()]
    for _ in range(4):
        layers += _conv_block(c512, c512)
    return nn.Sequential(*layers)


def make_decoder(w: int = 1) -> nn.Sequential:
    c64, c128, c256, c512 = 64 // w, 128 // w, 256 // w, 512 // w
    layers: list[nn.Module] = _conv_block(c512, c256) + [
        nn.Upsample(scale_factor=2, mode="nearest")
    ]
    for _ in range(3):
        layers += _conv_block(c256, c256)
    layers += _conv_block(c256, c128) + [nn.Upsample(scale_factor=2, mode="nearest")]
    layers += _conv_block(c128, c128) + _conv_block(c128, c64)
    layers += [nn.Upsample(scale_factor=2, mode="nearest")] + _conv_block(c64, c64)
    layers += [nn.ReflectionPad2d((1, 1, 1, 1)), nn.Conv2d(c64, 3, (3, 3))]
    return nn.Sequential(*layers)


def calc_mean_std(feat: torch.Tensor, eps: float = 1e-5) -> tuple[torch.Tensor, torch.Tensor]:
    n, c = feat.size()[:2]
    feat_var = feat.view(n, c, -1).var(dim=2) + eps
    feat_std = feat_var.sqrt().view(n, c, 1, 1)
    feat_mean = feat.view(n, c, -1).mean(dim=2).view(n, c, 1, 1)
    return feat_mean, feat_std


def mean_variance_norm(feat: torch.Tensor) -> torch.Tensor:
    size = feat.size()
    mean, std = calc_mean_std(feat)
    return (feat - mean.expand(size)) / std.expand(size)


class SANet(nn.Module):
    def __init__(self, in_planes: int) -> None:
        super().__init__()
        self.f = nn.Conv2d(in_planes, in_planes, (1, 1))
        self.g = nn.Conv2d(in_planes, in_planes, (1, 1))
        self.h = nn.Conv2d(in_planes, in_planes, (1, 1))
        self.sm = nn.Softmax(dim=-1)
        self.out_conv = nn.Conv2d(in_planes, in_planes, (1, 1))

    def forward(self, content: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        F = self.f(mean_variance_norm(content))  # noqa: N806 - upstream's names
        G = self.g(mean_variance_norm(style))  # noqa: N806
        H = self.h(style)  # noqa: N806
        b, c, h, w = F.size()
        F = F.view(b, -1, w * h).permute(0, 2, 1)  # noqa: N806
        b, c, h, w = G.size()
        G = G.view(b, -1, w * h)  # noqa: N806
        S = self.sm(torch.bmm(F, G))  # noqa: N806
        b, c, h, w = H.size()
        H = H.view(b, -1, w * h)  # noqa: N806
        O = torch.bmm(H, S.permute(0, 2, 1))  # noqa: E741, N806
        b, c, h, w = content.size()
        O = self.out_conv(O.view(b, c, h, w))  # noqa: E741, N806
        return O + content


class Transform(nn.Module):
    def __init__(self, in_planes: int) -> None:
        super().__init__()
        self.sanet4_1 = SANet(in_planes)
        self.sanet5_1 = SANet(in_planes)
        self.upsample5_1 = nn.Upsample(scale_factor=2, mode="nearest")
        self.merge_conv_pad = nn.ReflectionPad2d((1, 1, 1, 1))
        self.merge_conv = nn.Conv2d(in_planes, in_planes, (3, 3))

    def forward(self, c4: torch.Tensor, s4: torch.Tensor, c5: torch.Tensor, s5: torch.Tensor):
        merged = self.sanet4_1(c4, s4) + self.upsample5_1(self.sanet5_1(c5, s5))
        return self.merge_conv(self.merge_conv_pad(merged))


class UpstreamSANet:
    """Upstream's evaluation: enc_1..enc_5 slices of the VGG, transform, decoder."""

    def __init__(self, states: dict[str, dict[str, torch.Tensor]], w: int = 1) -> None:
        vgg = make_vgg(w)
        vgg.load_state_dict(states["vgg_normalised.pth"])
        self.decoder = make_decoder(w).eval()
        self.decoder.load_state_dict(states["decoder_iter_500000.pth"])
        self.transform = Transform(512 // w).eval()
        self.transform.load_state_dict(states["transformer_iter_500000.pth"])
        children = list(vgg.eval().children())
        self.enc_1 = nn.Sequential(*children[:4])
        self.enc_2 = nn.Sequential(*children[4:11])
        self.enc_3 = nn.Sequential(*children[11:18])
        self.enc_4 = nn.Sequential(*children[18:31])
        self.enc_5 = nn.Sequential(*children[31:44])

    @torch.no_grad()
    def __call__(self, content: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        content4_1 = self.enc_4(self.enc_3(self.enc_2(self.enc_1(content))))
        content5_1 = self.enc_5(content4_1)
        style4_1 = self.enc_4(self.enc_3(self.enc_2(self.enc_1(style))))
        style5_1 = self.enc_5(style4_1)
        return self.decoder(self.transform(content4_1, style4_1, content5_1, style5_1))
