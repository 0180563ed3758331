"""Test and calibration images, and conversions between image files and model tensors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image


def sample_data_path(name: str) -> Path:
    """An image that ships inside matplotlib's sample data (no download)."""
    import matplotlib.cbook

    return Path(matplotlib.cbook.get_sample_data(name, asfileobj=False))


def sample_photo_path() -> Path:
    """A natural photograph that ships inside matplotlib (Grace Hopper, public domain, US Navy)."""
    return sample_data_path("grace_hopper.jpg")


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


# The benchmark's pair: every runtime stylizes it, and quantization is judged on it.
BENCH_CONTENT_SIZE = (1024, 1024)  # (width, height) of the photo: the large case's size
BENCH_STYLE_SIDE = 512


def bench_images() -> tuple[np.ndarray, np.ndarray]:
    """The content photo and the style painting every runtime stylizes, HWC float32."""
    return load_rgb(sample_photo_path(), BENCH_CONTENT_SIZE), synthetic_painting(
        7, BENCH_STYLE_SIDE, BENCH_STYLE_SIDE
    )


def quality(actual: np.ndarray, reference: np.ndarray) -> dict[str, float]:
    """PSNR (dB), SSIM and max abs error of an image in [0, 1] against a reference."""
    import tensorflow as tf

    a = tf.constant(np.clip(actual, 0, 1)[None], tf.float32)
    b = tf.constant(np.clip(reference, 0, 1)[None], tf.float32)
    return {
        "psnr_db": float(tf.image.psnr(a, b, max_val=1.0)[0]),
        "ssim": float(tf.image.ssim(a, b, max_val=1.0)[0]),
        "max_abs": float(np.abs(actual - reference).max()),
    }


def to_nchw(image: np.ndarray):  # -> torch.Tensor
    """HWC float image -> 1x3xHxW torch tensor."""
    import torch

    return torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1)))[None]
