"""pipeline.yaml's `tfjs` section (the bundle's graph rewrites import its Quantization)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from .base import Resolution, Section

Quantization = Literal["none", "float16", "uint8", "auto"]


class FidelitySection(Section):
    # What `quantization: auto` keeps: PSNR and SSIM of the benchmark's pair at each of
    # `resolutions` against the float32 model (src/sanet_tfjs/quantize.py).
    psnr_db: Annotated[float, Field(gt=0)] = 35.0
    ssim: Annotated[float, Field(gt=0, le=1)] = 0.99
    resolutions: Annotated[list[Resolution], Field(min_length=1)] = [256, 512]


class TfjsSection(Section):
    # The small bundle beside the exact one (the page's default); none: the exact one only.
    quantization: Quantization = "auto"
    fidelity: FidelitySection = FidelitySection()
    optimize: bool = True  # the graph rewrites of tfjs_graph.py; false: the converter's graph
    # With `optimize`: the 3x3 convolutions of the strips' ops as Winograd where the recorded
    # timings say it is faster (formats/winograd_timings.py); false: every convolution direct
    # (docs/model.md, "Winograd convolutions").
    winograd: bool = True
    shard_bytes: Annotated[int, Field(ge=1024)] = 4 * 1024 * 1024
    # An unquantized bundle may exceed the float32 parameters by this factor at most
    # (manifest rounding); a weight stored twice shows as about 2.
    max_size_ratio: Annotated[float, Field(ge=1.0)] = 1.02
