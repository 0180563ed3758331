"""The three ONNX graphs in ONNX Runtime (CPU), as a PartsBackend."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..architecture import FEATURE_INPUTS, PATCHED_PARTS
from ..parity import PartsBackend


def onnxruntime_backend(onnx_dir: Path) -> PartsBackend:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    sessions = {
        name: ort.InferenceSession(
            str(Path(onnx_dir) / f"{name}.onnx"), options, providers=["CPUExecutionProvider"]
        )
        for name in PATCHED_PARTS
    }

    def encode(image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        relu4_1, relu5_1 = sessions["encoder"].run(None, {"image": image})
        return relu4_1, relu5_1

    def transform(*features: np.ndarray) -> np.ndarray:
        return sessions["transform"].run(None, dict(zip(FEATURE_INPUTS, features, strict=True)))[0]

    def decode(features: np.ndarray) -> np.ndarray:
        return sessions["decoder"].run(None, {"features": features})[0]

    return PartsBackend(encode, transform, decode)
