"""TensorFlow SavedModels: the `tf` stage's three parts as a PartsBackend, and the `tfstyle`
stage's serving signature as a function of numpy arrays."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..architecture import FEATURE_INPUTS, PATCHED_PARTS
from ..parity import PartsBackend


def saved_model_backend(tf_dir: Path) -> PartsBackend:
    import tensorflow as tf

    signatures = {
        part: tf.saved_model.load(str(Path(tf_dir) / part)).signatures["serving_default"]
        for part in PATCHED_PARTS
    }

    def encode(image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        out = signatures["encoder"](image=tf.constant(image))
        return out["relu4_1"].numpy(), out["relu5_1"].numpy()

    def transform(*features: np.ndarray) -> np.ndarray:
        inputs = {k: tf.constant(v) for k, v in zip(FEATURE_INPUTS, features, strict=True)}
        return signatures["transform"](**inputs)["features"].numpy()

    def decode(features: np.ndarray) -> np.ndarray:
        return signatures["decoder"](features=tf.constant(features))["image"].numpy()

    return PartsBackend(encode, transform, decode)


def saved_model_stylize(saved_model_dir: Path):
    """The exported signature as a function of numpy arrays: (content, style, iters, max_res)."""
    import tensorflow as tf

    signature = tf.saved_model.load(str(saved_model_dir)).signatures["serving_default"]

    def run(content: np.ndarray, style: np.ndarray, iters: int, max_resolution: int):
        out = signature(
            content=tf.constant(content, tf.float32),
            style=tf.constant(style, tf.float32),
            iters=tf.constant(iters, tf.int32),
            max_resolution=tf.constant(max_resolution, tf.int32),
        )
        return out["result"].numpy()

    return run
