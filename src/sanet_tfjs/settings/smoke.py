"""pipeline.yaml's `smoke` section."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from .base import PositiveFloat, Resolution, Section

PageBackend = Literal["webgpu", "webgl", "wasm", "cpu"]


class SmokeSection(Section):
    # backend -> the maximum resolutions it stylizes (and is timed) at; a backend the browser
    # does not offer is noted, not failed.
    backends: dict[PageBackend, list[Resolution]] = {
        "wasm": [256, 512],
        "webgl": [256],
        "webgpu": [64],
    }
    # whose pixels must match PyTorch
    checked_backends: list[PageBackend] = ["wasm", "webgl", "webgpu"]
    iters: Annotated[int, Field(ge=1, le=5)] = 1
    max_abs: PositiveFloat = 2 / 255
