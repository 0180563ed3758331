"""pipeline.yaml's `onnx` section."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from .base import Section


class OnnxSection(Section):
    # onnx-tf 1.10 converts opset 10 cleanly; opset 11+ pads become tensors that onnx-tf
    # wraps in tf.cond, which TensorFlow.js fails on (toolchain notes).
    opset: Annotated[int, Field(ge=9, le=13)] = 10
    constant_folding: bool = False
