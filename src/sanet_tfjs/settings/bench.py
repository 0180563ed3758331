"""pipeline.yaml's `bench` section (`doit bench`)."""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import AfterValidator, Field

from .base import Resolution, Section

Backend = Literal["webgl", "wasm", "cpu"]


def _photo_size(value: str) -> str:
    match = re.fullmatch(r"(\d+)x(\d+)", value)
    if not match or not all(17 <= int(side) <= 4096 for side in match.groups()):
        raise ValueError(f"must be WIDTHxHEIGHT, each side 17 to 4096 px, got {value!r}")
    return value


PhotoSize = Annotated[str, AfterValidator(_photo_size)]


class BenchSection(Section):
    resolutions: Annotated[list[Resolution], Field(min_length=1)] = [256, 512]
    warmup: Annotated[int, Field(ge=0, le=5)] = 1
    runs: Annotated[int, Field(ge=1, le=20)] = 3
    runtimes: list[Literal["pytorch", "onnxruntime", "tensorflow"]] = [
        "pytorch",
        "onnxruntime",
        "tensorflow",
    ]
    browser_backends: list[Backend] = ["wasm"]
    # TFJS bundles besides the float32 one; each is timed and compared with float32.
    quantizations: list[Literal["float16", "uint8", "auto"]] = ["float16", "uint8", "auto"]
    # The converter's graph without tfjs_graph.py's rewrites, timed at the first resolution
    # only: the "before" of the speed work.
    unoptimized_baseline: bool = True
    # wasm threads of the browser rows: the float32 bundle and the peer run at each, the other
    # bundles at the first. tfjs runs at most cores / 2 threads, so the tabs report more cores.
    threads: Annotated[list[Annotated[int, Field(ge=1, le=16)]], Field(min_length=1)] = [1, 2]
    reported_cores: Annotated[int, Field(ge=1, le=64)] = 4
    # The peer: onnxruntime-web on the pipeline's own three ONNX files, with the same loop.
    onnxruntime_web: bool = True
    # One more resolution, for the Python runtimes and for TF.js float32 and the peer at the
    # most threads only (slow): the 1024-px photo with the 512-px style. None: skip it.
    large_resolution: Resolution | None = 1024
    # Photos stylized at their own size (WIDTHxHEIGHT; the 512-px style) by TF.js float32 and
    # the peer at the most threads, each in a tab of its own, one run after one at the first
    # resolution (as the page warms up; 4096x3072 takes minutes): time and page memory. The
    # peer that runs out of memory is reported so.
    photo_sizes: list[PhotoSize] = ["2048x1536", "4096x3072"]
