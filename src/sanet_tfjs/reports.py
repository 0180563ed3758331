"""The reports that cross modules, as TypedDicts: what a stage writes (as JSON, or hands to
another function) and another reads. Light on purpose: the report stage imports this module
alone.

Parity (parity.py): each conversion stage's ParityReport (the tfjs stage's TfjsParityReport),
merged by the report stage into parity.json; the tfjs and smoke stages' timings beside their
products (NodeTimings, SmokeTimings), which no stage reads. The benchmark (bench.py): each runtime's
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
    """One whole stylization."""

    pair: str
    iters: int
    max_resolution: int
    result: Errors


class ParityReport(TypedDict):
    """A stage's parity against PyTorch: rows by pair, the worst of each check, the verdict
    (None when only reported). `compare_parts` leaves the last three to `enforce_parts`."""

    pairs: list[PartsRow] | list[StylizationRow]
    stage: NotRequired[str]
    worst: NotRequired[dict[str, Check]]
    passed: NotRequired[bool | None]


class WinogradReport(TypedDict):
    """The tfjs stage's 3x3 convolutions: which ran as Winograd, and what chose them."""

    winograd: bool  # tfjs.optimize and tfjs.winograd
    layers: list[dict]  # per convolution in graph order: in_channels, out_channels, variant
    chosen_by: dict  # formats/winograd_timings.MEASURED: day, commit, runtime, resolutions
    full_width_choices: dict[str, str]  # "in x out" -> variant, the rest direct


class TfjsParityReport(ParityReport):
    """The tfjs stage's report: its Node check's extras, the bundle's size and how it was made."""

    style_features_fed_back: NotRequired[ParityReport]  # the same style again, features fed
    backend: NotRequired[str]  # the TF.js backend Node ran
    size: NotRequired[dict[str, int]]  # tfjs_convert.bundle_bytes, float32_parameters
    quantization: NotRequired[str]
    quantization_plan: NotRequired[dict]  # quantize.QuantizationPlan.report()
    graph_rewrites: NotRequired[dict[str, int]]  # formats/tfjs_graph.optimize's counts
    convolutions_3x3: NotRequired[WinogradReport]


class NodeTiming(TypedDict):
    pair: str
    ms: float  # the stylization
    restyled_ms: float  # the same pair again, the style's features fed back


class NodeTimings(TypedDict):
    """The tfjs stage's Node run times, written beside its parity report (tfjs_timings.json):
    no stage reads them, so a rerun that converts the same bundle reruns nothing after it."""

    backend: str
    pairs: list[NodeTiming]


class SmokeRun(TypedDict):
    """The page at one maximum resolution on one backend: what its verdict rests on."""

    max_resolution: int
    iters: int
    content_shape: list[int]
    style_shape: list[int]
    max_abs: float  # of the second run's pixels (same style again) against PyTorch


class SmokeBackend(TypedDict):
    offered: bool
    status: NotRequired[str]  # why a backend the browser does not offer was skipped
    threads: NotRequired[int]
    cross_origin_isolated: NotRequired[bool]
    runs: NotRequired[list[SmokeRun]]
    console_errors: NotRequired[list[str]]
    failed_requests: NotRequired[list[str]]


class SmallBundleFidelity(TypedDict):
    """The site's small bundle against its exact one, both run by the page in Chromium (wasm)
    on the benchmark's pair at each of tfjs.fidelity's resolutions (sanet_tfjs.fidelity)."""

    target: dict[str, float | list[int]]  # tfjs.fidelity
    at: dict[str, dict[str, float]]  # resolution -> psnr_db, ssim
    passed: bool


class SmokeReport(TypedDict):
    """smoke/smoke.json, the smoke stage's product (the release reads it): verdicts and pixel
    errors only, the same bytes for the same site on the same browser."""

    backends: dict[str, SmokeBackend]
    tolerance_max_abs: float
    checked: list[str]
    small_bundle: NotRequired[SmallBundleFidelity]  # where the site carries one
    passed: bool
    failures: list[str]


class SmokeRunTimes(TypedDict):
    max_resolution: int
    first_ms: float  # kernel set-up and the style's encoding included
    second_ms: float  # the same style again, not encoded


class SmokeBackendTimes(TypedDict):
    model_load_ms: float
    warmup_ms: float
    runs: list[SmokeRunTimes]


class SmokeTimings(TypedDict):
    """smoke/timings.json: what the page took per backend; no stage reads it."""

    backends: dict[str, SmokeBackendTimes]


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
    layers: NotRequired[list[dict]]  # TF.js on wasm: the last run by layer (sanet.mjs layerProfile)


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
