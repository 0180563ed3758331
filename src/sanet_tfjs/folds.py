"""Exact algebraic folds of the patched SANet: fewer parameters and operations, the same
outputs up to float rounding, no retraining.

1. The encoder's first module, a 1x1 convolution (RGB in [0, 1] -> BGR x 255 - mean), is a
   per-pixel affine map; reflection padding commutes with it, so it folds into the 3x3
   convolution after the pad: W' = W2 . W0 (over the input channels), b' = b2 + sum W2 b0.
2. In each SANet block the softmax runs over style positions, so any term of the logits that
   depends only on the content position cancels. With x = mvn(Fc) and y = mvn(Fs) at one
   position each, (Wf x + bf) . (Wg y + bg) = x . (Wf^T Wg y) + (Wg^T bf) . y + [terms
   constant along the softmax row]: the content side needs no convolution at all, the style
   side one c x c product (`key`) and one 1 x c row (`key_bias`).
3. Each softmax row sums to 1, so out_conv(h(Fs) S^T) = (Wout Wh) Fs S^T + (Wout bh + bout):
   one c x c product on the style side (`value`) and a bias (`out_bias`) instead of two
   convolutions.
Per block: 4c^2 + 4c parameters become 2c^2 + 2c (c = 512: 1,050,624 fewer in two blocks).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from .model import PatchedSANet

Tensor = torch.Tensor


def _matrix(state: dict[str, Tensor], name: str) -> Tensor:
    """A 1x1 convolution's weight as a matrix [out, in], in float64 for the products."""
    return state[f"{name}.weight"][:, :, 0, 0].double()


def fold_encoder(state: dict[str, Tensor]) -> dict[str, Tensor]:
    """The encoder's state dict with module 0 folded into module 2 (keys "0.*" removed)."""
    w0, b0 = _matrix(state, "0"), state["0.bias"].double()
    w2, b2 = state["2.weight"].double(), state["2.bias"].double()
    folded = {key: value for key, value in state.items() if not key.startswith(("0.", "2."))}
    folded["2.weight"] = torch.einsum("okyx,kc->ocyx", w2, w0).float()
    folded["2.bias"] = (b2 + torch.einsum("okyx,k->o", w2, b0)).float()
    return folded


def fold_attention(state: dict[str, Tensor], block: str) -> dict[str, Tensor]:
    """One SANet block's f, g, h, out_conv -> key, key_bias, value, out_bias."""
    prefix = f"{block}."
    local = {key.removeprefix(prefix): value for key, value in state.items()}
    wf, wg, wh, wout = (_matrix(local, name) for name in ("f", "g", "h", "out_conv"))
    bf, bh, bout = (local[f"{name}.bias"].double() for name in ("f", "h", "out_conv"))
    return {
        f"{prefix}key.weight": (wf.T @ wg).float()[:, :, None, None],
        f"{prefix}key_bias.weight": (bf @ wg).float()[None, :, None, None],
        f"{prefix}value.weight": (wout @ wh).float()[:, :, None, None],
        f"{prefix}out_bias": (wout @ bh + bout).float(),
    }


ATTENTION_BLOCKS = ("sanet4_1", "sanet5_1")


def fold_transform(state: dict[str, Tensor]) -> dict[str, Tensor]:
    """The transform's state dict with both SANet blocks folded (merge_conv unchanged)."""
    folded = {key: value for key, value in state.items() if not key.startswith(ATTENTION_BLOCKS)}
    for block in ATTENTION_BLOCKS:
        folded.update(fold_attention(state, block))
    return folded


def folded_model(model: PatchedSANet, width_divisor: int) -> PatchedSANet:
    """`model` (unfolded) with every fold applied."""
    from .model import PatchedSANet

    folded = PatchedSANet(width_divisor, folded=True).eval()
    folded.encoder.load_state_dict(fold_encoder(model.encoder.state_dict()))
    folded.transform.load_state_dict(fold_transform(model.transform.state_dict()))
    folded.decoder.load_state_dict(model.decoder.state_dict())
    return folded
