"""The stylization contract, and its PyTorch reference implementation.

Contract (the serving signature of the TF and TFJS models, see tfstyle.py):
- `content`, `style`: [H, W, 3] float32 RGB in [0, 1], any sizes, independent of each other;
- `max_resolution`: the longer side of each image is scaled down to it (aspect kept, bilinear,
  never up); the scaled size is computed in integers so every implementation agrees;
- each image must still be at least MIN_SIDE pixels on both sides after scaling: below that
  the relu5_1 map is 1 pixel and the network's reflection padding is undefined;
- `iters` >= 1: each pass re-stylizes the previous output with the style (encoded once),
  cropped to the scaled content size and clipped to [0, 1];
- `result`: [H, W, 3] at the content image's original size (bilinear back up if scaled);
- `style4_1`, `style5_1`: the style's encoded features ([1, C, h, w], the scaled style), which a
  TF.js caller may feed back to stylize again with the same style without encoding it again.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from .errors import PipelineError

MIN_SIDE = 17  # four ceil-mode 2x2 pools: relu5_1 has ceil(side / 16) >= 2 pixels
MIN_MAX_RESOLUTION = MIN_SIDE


class StylizeInputError(PipelineError, ValueError):
    """Inputs that break the contract above."""


def fitted_size(height: int, width: int, max_resolution: int) -> tuple[int, int]:
    """The size an image is scaled to: longer side at most max_resolution, rounded half up."""
    longer = max(height, width)
    if longer <= max_resolution:
        return height, width
    return (
        max(1, (height * max_resolution + longer // 2) // longer),
        max(1, (width * max_resolution + longer // 2) // longer),
    )


def check_inputs(content_shape, style_shape, iters: int, max_resolution: int) -> None:
    for name, shape in (("content", content_shape), ("style", style_shape)):
        if len(shape) != 3 or shape[2] != 3:
            raise StylizeInputError(f"{name} must be [height, width, 3] RGB, got {list(shape)}")
        if shape[0] == 0 or shape[1] == 0:
            raise StylizeInputError(f"{name} is empty ({list(shape)})")
    if iters < 1:
        raise StylizeInputError(f"iters must be >= 1, got {iters}")
    if max_resolution < MIN_MAX_RESOLUTION:
        raise StylizeInputError(
            f"max_resolution must be >= {MIN_MAX_RESOLUTION}, got {max_resolution}"
        )
    for name, shape in (("content", content_shape), ("style", style_shape)):
        size = fitted_size(shape[0], shape[1], max_resolution)
        if min(size) < MIN_SIDE:
            raise StylizeInputError(
                f"{name} is too small: {shape[0]}x{shape[1]} scaled to max_resolution "
                f"{max_resolution} is {size[0]}x{size[1]}; both sides must be >= {MIN_SIDE}"
            )


def _resize(image: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    if tuple(image.shape[2:]) == tuple(size):
        return image
    return F.interpolate(image, size=size, mode="bilinear", align_corners=False, antialias=False)


@torch.no_grad()
def fitted_nchw(image: np.ndarray, max_resolution: int) -> torch.Tensor:
    """An HWC image as the [1, 3, h, w] tensor the loop takes, scaled to max_resolution."""
    nchw = torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1)))[None]
    return _resize(nchw, fitted_size(*image.shape[:2], max_resolution))


@torch.no_grad()
def restored_hwc(result: np.ndarray | torch.Tensor, size: tuple[int, int]) -> np.ndarray:
    """The loop's [1, 3, h, w] result scaled back to `size` (the content's), as HWC."""
    return _resize(torch.as_tensor(result), size)[0].numpy().transpose(1, 2, 0)


@torch.no_grad()
def stylize_hwc(
    stylize_nchw, content: np.ndarray, style: np.ndarray, iters: int, max_resolution: int
) -> np.ndarray:
    """The contract around a loop on NCHW tensors, `stylize_nchw(content, style, iters)`: the
    inputs scaled to max_resolution, the result scaled back to the content's size."""
    check_inputs(content.shape, style.shape, iters, max_resolution)
    result = stylize_nchw(
        fitted_nchw(content, max_resolution), fitted_nchw(style, max_resolution), iters
    )
    return restored_hwc(result, content.shape[:2])


def reference_stylize(
    model, content: np.ndarray, style: np.ndarray, iters: int, max_resolution: int
) -> np.ndarray:
    """The whole stylization in PyTorch, HWC in and out: what the TF/TFJS models must match."""
    return stylize_hwc(model.stylize, content, style, iters, max_resolution)
