"""Test and calibration images, and conversions between image files and model tensors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image


def sample_photo_path() -> Path:
    """A natural photograph that ships inside matplotlib (Grace Hopper, public domain, US Navy)."""
    import matplotlib.cbook

    return Path(matplotlib.cbook.get_sample_data("grace_hopper.jpg", asfileobj=False))


def load_rgb(path: Path, size: tuple[int, int] | None = None) -> np.ndarray:
    """An image file as float32 HWC RGB in [0, 1], optionally resized to (width, height)."""
    with Image.open(path) as image:
        image = image.convert("RGB")
        if size is not None:
            image = image.resize(size, Image.Resampling.BICUBIC)
        return np.asarray(image, dtype=np.float32) / 255.0


def synthetic_painting(seed: int, height: int, width: int) -> np.ndarray:
    """A seeded, deterministic colourful texture (float32 HWC in [0, 1]) to use as a style image."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    y /= max(height, 1)
    x /= max(width, 1)
    channels = []
    for _ in range(3):
        value = np.zeros((height, width), np.float32)
        for _ in range(6):
            fy, fx = rng.uniform(1, 12, size=2)
            phase = rng.uniform(0, 2 * np.pi)
            value += np.sin(2 * np.pi * (fy * y + fx * x) + phase) * rng.uniform(0.2, 1.0)
        channels.append(value)
    image = np.stack(channels, axis=-1)
    image = (image - image.min()) / (image.max() - image.min() + 1e-6)
    return image.astype(np.float32)


def to_nchw(image: np.ndarray):  # -> torch.Tensor
    """HWC float image -> 1x3xHxW torch tensor."""
    import torch

    return torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1)))[None]
