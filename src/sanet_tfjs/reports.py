"""The reports that cross modules, as TypedDicts: what a stage writes (as JSON, or hands to
another function) and another reads. Light on purpose: the report stage imports this module
alone.

Parity (parity.py): each conversion stage's ParityReport (the tfjs stage's TfjsParityReport),
merged by the report stage into parity.json. The benchmark (bench.py): each runtime's
RuntimeMeasurement, named into a BenchRow by the stage, with PeerLine and SameStyleLine the
rows of its two comparison tables.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, NotRequired, TypedDict

if TYPE_CHECKING:
    import numpy as np


# --- parity: written by each conversion stage as JSON, merged by the report stage ----------


class Errors(TypedDict):
    max_abs: float
    rel_l2: float


class Check(TypedDict):
    value: float
    tolerance: float | None  # None: reported only (a quantized model)


class PartsRow(TypedDict):
    """One parity pair through the three parts, each fed PyTorch's inputs."""

    pair: str
    relu4_1: Errors
    relu5_1: Errors
    transform: Errors
    image: Errors


class StylizationRow(TypedDict):
    """One whole stylization; the Node check adds its times."""

    pair: str
    iters: int
    max_resolution: int
    result: Errors
    ms: NotRequired[float]
    restyled_ms: NotRequired[float]


class ParityReport(TypedDict):
    """A stage's parity against PyTorch: rows by pair, the worst of each check, the verdict
    (None when only reported). `compare_parts` leaves the last three to `enforce_parts`."""

    pairs: list[PartsRow] | list[StylizationRow]
    stage: NotRequired[str]
    worst: NotRequired[dict[str, Check]]
    passed: NotRequired[bool | None]


class TfjsParityReport(ParityReport):
    """The tfjs stage's report: its Node check's extras, the bundle's size and how it was made."""

    style_features_fed_back: NotRequired[ParityReport]  # the same style again, features fed
    backend: NotRequired[str]  # the TF.js backend Node ran
    size: NotRequired[dict[str, int]]  # tfjs_convert.bundle_bytes, float32_parameters
    quantization: NotRequired[str]
    quantization_plan: NotRequired[dict]  # quantize.QuantizationPlan.report()
    graph_rewrites: NotRequired[dict[str, int]]  # formats/tfjs_graph.optimize's counts


# --- the benchmark: measured in bench.py, summarized, tabled and written by its stage ------


class Measured(TypedDict):
    """One runtime at one resolution. `summarize` adds the medians and comparisons and drops
    `result`."""

    ms: list[float]  # the timed runs
    peak_memory_bytes: int | None  # Python: the process's peak RSS; TF.js: the wasm heap
    page_memory_bytes: NotRequired[int | None]  # a browser tab's; None where not measured
    result: NotRequired[np.ndarray]  # the last run's picture, HWC
    restyled_ms: NotRequired[list[float]]  # the same style again
    restyled_max_abs: NotRequired[float]
    median_ms: NotRequired[float]
    restyled_median_ms: NotRequired[float]
    ratio_to_pytorch: NotRequired[float]
    max_abs_vs_pytorch: NotRequired[float]
    quality_vs_float32: NotRequired[dict[str, float]]  # images.quality: psnr_db, ssim, max_abs


class RuntimeMeasurement(TypedDict):
    """What measuring one runtime gives: a Python process, or a browser tab on one backend
    and thread count (its set-up as the harness page reports it, and its load time)."""

    resolutions: dict[str, Measured]  # by resolution, as text (JSON keys)
    version: NotRequired[str]  # Python runtimes
    backend: NotRequired[str]  # browser tabs
    threads: NotRequired[int | None]
    crossOriginIsolated: NotRequired[bool]
    load_ms: NotRequired[float]


class BenchRow(RuntimeMeasurement):
    """One row of the report: a measurement, named, with its download size."""

    name: str
    runtime: str  # pytorch, onnxruntime, tensorflow, tensorflowjs or PEER
    download_bytes: int
    bundle: NotRequired[str | None]  # browser rows: the TF.js bundle, None for the peer


class PeerLine(TypedDict):
    """TF.js (float32, wasm) and the peer at equal threads and one resolution."""

    resolution: int
    threads: int
    tfjs_s: float
    peer_s: float
    tfjs_over_peer: float
    tfjs_x_pytorch: float | None
    peer_x_pytorch: float | None
    tfjs_page_memory_bytes: int | None
    peer_page_memory_bytes: int | None
    tfjs_speedup_vs_1_thread: NotRequired[float | None]  # named by the fewest threads run
    peer_speedup_vs_1_thread: NotRequired[float | None]


class SameStyleLine(TypedDict):
    runtime: str
    resolution: int
    first_s: float
    again_s: float
    saved: float  # the fraction of the first stylization's time
    max_abs_vs_first: float
