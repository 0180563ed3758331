"""The budgeted bundle's fidelity as the browser computes it, measured as the plan measures it.

The plan stage (quantize.py) measures each bundle candidate in PyTorch: the benchmark's pair
scaled to each resolution of `tfjs.fidelity` (stylize.fitted_nchw), one stylization, the result
scaled back to the content photo's size (stylize.restored_hwc), PSNR and SSIM against float32.
In the browser the same pair, scaled the same way and written as 8-bit PNGs, is given to the
page through its file pickers at that resolution (so the page scales nothing), once with the
budgeted bundle and once with the exact one; their results, scaled back the same way, are
compared the same way. What differs from the plan is only what runs the model (TF.js in
Chromium) and the 8-bit images in and out.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from .images import bench_images, quality
from .stylize import fitted_nchw, restored_hwc


def write_fitted_bench_pair(folder: Path, resolution: int) -> tuple[Path, Path]:
    """The benchmark's (content, style) scaled to `resolution` as the plan scales them, as
    PNG files in `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = (folder / f"bench-content-{resolution}.png", folder / f"bench-style-{resolution}.png")
    for path, image in zip(paths, bench_images(), strict=True):
        fitted = fitted_nchw(image, resolution)[0].numpy().transpose(1, 2, 0)
        Image.fromarray((np.clip(fitted, 0, 1) * 255).round().astype(np.uint8)).save(path)
    return paths


def browser_fidelity(budgeted: np.ndarray, exact: np.ndarray) -> dict[str, float]:
    """PSNR, SSIM and max abs of the budgeted bundle's result against the exact one's (both
    uint8 HWC, as the page drew them), scaled back to the benchmark photo's size."""
    size = bench_images()[0].shape[:2]

    def restored(pixels: np.ndarray) -> np.ndarray:
        nchw = np.ascontiguousarray(pixels.astype(np.float32).transpose(2, 0, 1)[None] / 255)
        return restored_hwc(nchw, size)

    return quality(restored(budgeted), restored(exact))
