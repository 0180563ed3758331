"""Test and calibration images, and conversions between image files and model tensors."""

from __future__ import annotations

import math
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


# SSIM as Wang et al. (2004) and tf.image.ssim define it: an 11x11 Gaussian window of sigma 1.5
# over the valid positions, k1 0.01 and k2 0.03, the mean over positions and channels.
SSIM_WINDOW = 11
SSIM_SIGMA = 1.5
SSIM_K1, SSIM_K2 = 0.01, 0.03


def quality(actual: np.ndarray, reference: np.ndarray) -> dict[str, float]:
    """PSNR (dB), SSIM and max abs error of an HWC image in [0, 1] against a reference."""
    a = np.clip(actual, 0, 1).astype(np.float32)
    b = np.clip(reference, 0, 1).astype(np.float32)
    mse = float(np.mean(np.square(a - b), dtype=np.float64))
    return {
        "psnr_db": 10 * math.log10(1 / mse) if mse > 0 else math.inf,
        "ssim": ssim(a, b),
        "max_abs": float(np.abs(actual - reference).max()),
    }


def ssim(a: np.ndarray, b: np.ndarray) -> float:
    """SSIM of two HWC float32 images in [0, 1].

    Not tf.image.ssim itself: it sums each channel's SSIM map in float32, one value after
    another, and on the benchmark's 1024 px pictures that drifts by up to 0.008 (0.9930 for
    0.9853 on a noisy pair), as much as a fidelity target's margin. Here the window runs as
    two 1-D passes and the map's mean is taken in float64."""
    import tensorflow as tf

    if min(a.shape[:2]) < SSIM_WINDOW:
        raise ValueError(
            f"SSIM needs images of at least {SSIM_WINDOW} px a side, not {a.shape[:2]}"
        )
    taps = np.arange(SSIM_WINDOW) - (SSIM_WINDOW - 1) / 2
    window = np.exp(-0.5 * np.square(taps) / SSIM_SIGMA**2)
    window = (window / window.sum()).astype(np.float32)
    x, y = tf.constant(a[None]), tf.constant(b[None])
    maps = tf.concat([x, y, x * x, y * y, x * y], axis=-1)  # what the window averages
    rows = np.tile(window.reshape(-1, 1, 1, 1), (1, 1, maps.shape[-1], 1))
    averaged = tf.nn.depthwise_conv2d(maps, rows, [1, 1, 1, 1], "VALID")
    averaged = tf.nn.depthwise_conv2d(
        averaged, rows.reshape(1, -1, maps.shape[-1], 1), [1, 1, 1, 1], "VALID"
    )
    mean_a, mean_b, mean_aa, mean_bb, mean_ab = tf.split(averaged[0], 5, axis=-1)
    c1, c2 = SSIM_K1**2, SSIM_K2**2
    # products, not `**`: TensorFlow's pow made the whole measure 2.5x slower
    square_a, square_b, product = mean_a * mean_a, mean_b * mean_b, mean_a * mean_b
    luminance = (2 * product + c1) / (square_a + square_b + c1)
    contrast_structure = (2 * (mean_ab - product) + c2) / (
        mean_aa - square_a + mean_bb - square_b + c2
    )
    return float(np.mean((luminance * contrast_structure).numpy(), dtype=np.float64))


def to_nchw(image: np.ndarray):  # -> torch.Tensor
    """HWC float image -> 1x3xHxW torch tensor."""
    import torch

    return torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1)))[None]
