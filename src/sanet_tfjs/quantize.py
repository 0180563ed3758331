"""Quantization chosen to a fidelity budget (`tfjs.quantization: auto`).

TensorFlow.js stores each weight as float32, float16, or uint8/uint16 with one affine range
per tensor (no per-channel ranges). Rounding every weight to its nearest uint8 level
("round to nearest", what `tfjs.quantization: uint8` does) costs the seeded full-width model
14 dB: 25.9 dB PSNR against float32 at 256 px, each layer alone 33 to 42 dB. Data-free
equalisation (Nagel et al. 2019) cannot help there: it balances channel ranges that differ,
and the seeded weights' channels are alike. What helps is choosing the rounding with data:
GPTQ (Frantar et al. 2022) rounds a layer's weights one input column at a time and moves the
error of each into the columns not yet rounded, weighted by the layer's input statistics on
calibration images (its Hessian X X^T), so the layer's output, not each weight, stays close.
Same uint8 format and bytes, no retraining: 39.9 dB at 256 px (measured, weights only).

The plan: every float tensor of the patched model gets three candidates (float32, float16,
uint8 by GPTQ for convolution filters, by round-to-nearest for the rest); each downgrade's
error is measured alone on the benchmark's image pair (not the calibration images), uint8's at
every resolution of the target (its worst kept; PSNR and squared error only: SSIM, the costly
part, plays no part in the ranking); the downgrades are applied greedily by bytes saved per
unit of squared error added; the plan is the last point of that order that meets the target at
every resolution, found by bisection (fidelity falls along the order), with a coarse curve
measured for the picture. At tiny width this made the same plan as measuring a point every
0.1 % of the bytes (57 points; the same dtypes, the same chosen point) with 16 points, in 26 s
instead of 385 s. A tensor measured alone reruns the stylization only from the first module it
changes, on that module's input kept from the float32 run (_Trace: the same result bit for
bit), and the small tensors are measured as one: at full width the errors alone took 68 s
instead of 307 s, and the whole plan 199 s.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .errors import PipelineError
from .formats.tfjs_graph import QUANTIZE_MIN_ELEMENTS
from .images import bench_images, load_rgb, quality, sample_data_path, synthetic_painting

DTYPE_BYTES = {"float32": 4, "float16": 2, "uint8": 1}
# GPTQ's damping of the Hessian's diagonal (a fraction of its mean), for layers whose inputs
# on the calibration images do not span every direction.
GPTQ_DAMPING = 0.01
GPTQ_BLOCK = 128
# A curve point is measured when the bytes fell by at least this fraction of the float32
# total since the last measured one (and at the end): the small tensors' steps are grouped.
# At 0.5 % the full-width curve skipped points up to 0.4 % of the weights smaller that met it.
CURVE_STEP_FRACTION = 0.001
# Tensors smaller than this (the biases and the 3-channel filters next to the RGB image: 50 kB
# of 80 MB at full width) are measured and downgraded together, as one unit: measured alone,
# they were half the tensors and a third of the plan's time, for 0.06 % of the bytes.
SMALL_TENSOR_ELEMENTS = 4096
# The plan measures in PyTorch; the page runs TF.js, whose float rounding differs, and the
# smoke stage checks the budget again in Chromium. On the stand-in weights (attention nearly
# one-hot, so rounding moves whole pixels) the same small bundle measured 0.16 dB lower in
# Chromium than the plan had measured (tiny width, 96 px: 35.07 -> 34.91 dB, 2026-12-06).
# The plan keeps this much PSNR above the budget.
PLAN_HEADROOM_DB = 0.5
# The coarse curve quantization.png shows: a point every this fraction of the float32 bytes.
CURVE_PLOT_FRACTION = 0.25


class QuantizationError(PipelineError):
    """The automatic quantization cannot map or encode a weight."""


@dataclass(frozen=True)
class FidelityTarget:
    """What `auto` must keep, against float32 on the benchmark's pair, at every one of
    `resolutions` (the first also calibrates GPTQ: the cheapest)."""

    psnr_db: float
    ssim: float
    resolutions: tuple[int, ...]

    def __post_init__(self) -> None:
        if not self.resolutions:
            raise QuantizationError("the fidelity target needs at least one resolution")
        object.__setattr__(self, "resolutions", tuple(self.resolutions))

    def met_by(self, measured: dict[str, float], headroom_db: float = 0.0) -> bool:
        """Both kept, the PSNR with `headroom_db` to spare."""
        return measured["psnr_db"] >= self.psnr_db + headroom_db and measured["ssim"] >= self.ssim


@dataclass
class EncodedUint8:
    """A weight as tensorflowjs stores a uint8 one: value = codes * scale + min."""

    codes: np.ndarray  # uint8, the PyTorch parameter's layout
    min: float
    scale: float

    def dequantized(self) -> np.ndarray:
        # The same arithmetic as TensorFlow.js's loader: in doubles, stored as float32.
        return (self.codes.astype(np.float64) * self.scale + self.min).astype(np.float32)

    def manifest_entry(self, name: str, axes: tuple[int, ...], shape: tuple[int, ...]) -> dict:
        """The pre-quantized entry tensorflowjs.write_weights accepts, in the bundle's layout."""
        return {
            "name": name,
            "data": np.ascontiguousarray(self.codes.transpose(axes)).reshape(shape),
            "quantization": {
                "min": self.min,
                "scale": self.scale,
                "dtype": "uint8",
                "original_dtype": "float32",
            },
        }


def uint8_grid(values: np.ndarray) -> tuple[float, float]:
    """(min, scale) of tensorflowjs's uint8 range for these values (nudged so 0 is a level)."""
    from tensorflowjs.quantization import _get_affine_quantization_range

    low, high = float(values.min()), float(values.max())
    if low == high:
        return low, 1.0
    scale, low, _ = _get_affine_quantization_range(low, high, np.uint8)
    return float(low), float(scale)


def round_to_nearest_uint8(values: np.ndarray) -> EncodedUint8:
    """What `tfjs.quantization: uint8` does to every tensor (tensorflowjs's own function)."""
    from tensorflowjs.quantization import quantize_weights

    codes, grid = quantize_weights(values, np.uint8)
    return EncodedUint8(codes, float(grid["min"]), float(grid["scale"]))


def gptq_uint8(weight: np.ndarray, hessian: np.ndarray) -> EncodedUint8:
    """GPTQ on a convolution filter [out, in, kh, kw] with the Hessian of its unfolded
    input, [in*kh*kw, in*kh*kw]; the uint8 grid is the filter's own (as round-to-nearest)."""
    import torch

    low, scale = uint8_grid(weight)
    w = torch.from_numpy(weight.reshape(weight.shape[0], -1).astype(np.float64))
    h = torch.from_numpy(hessian.astype(np.float64))
    dead = torch.diag(h) == 0  # an input that was always zero: its weights do not matter
    h[dead, dead] = 1.0
    w[:, dead] = 0.0
    h += GPTQ_DAMPING * torch.mean(torch.diag(h)) * torch.eye(h.shape[0], dtype=h.dtype)
    # The upper Cholesky factor of H^-1 gives each column's error-spreading row.
    h_inv = torch.linalg.cholesky(torch.cholesky_inverse(torch.linalg.cholesky(h)), upper=True)
    codes = torch.zeros_like(w)
    columns = w.shape[1]
    for start in range(0, columns, GPTQ_BLOCK):
        stop = min(start + GPTQ_BLOCK, columns)
        block = w[:, start:stop].clone()
        errors = torch.zeros_like(block)
        h_block = h_inv[start:stop, start:stop]
        for i in range(stop - start):
            column = block[:, i]
            code = torch.clamp(torch.round((column - low) / scale), 0, 255)
            codes[:, start + i] = code
            error = (column - (code * scale + low)) / h_block[i, i]
            block[:, i:] -= error[:, None] * h_block[i, i:][None, :]
            errors[:, i] = error
        w[:, stop:] -= errors @ h_inv[start:stop, stop:]
    return EncodedUint8(codes.numpy().astype(np.uint8).reshape(weight.shape), low, scale)


def calibration_pairs() -> list[tuple[np.ndarray, np.ndarray]]:
    """(content, style) pairs for GPTQ's statistics, disjoint from the benchmark's pair (the
    Grace Hopper photo, painting seed 7) so that the fidelity measured there is not fitted."""
    photo = load_rgb(sample_data_path("Minduka_Present_Blue_Pack.png"))
    return [
        (photo, synthetic_painting(101, 256, 256)),
        (synthetic_painting(102, 320, 256), synthetic_painting(103, 256, 320)),
    ]


def layer_hessians(model, pairs, resolution: int) -> dict[str, np.ndarray]:
    """X X^T of every convolution's unfolded input over the stylizations of `pairs`."""
    import torch
    import torch.nn.functional as F

    from .stylize import reference_stylize

    sums: dict[str, torch.Tensor] = {}

    def record(name: str):
        def hook(module, inputs):
            x = inputs[0]
            unfolded = (
                F.unfold(x, module.kernel_size, module.dilation, module.padding, module.stride)
                .transpose(0, 1)
                .reshape(x.shape[1] * module.kernel_size[0] * module.kernel_size[1], -1)
            )
            product = unfolded @ unfolded.T
            sums[name] = product if name not in sums else sums[name] + product

        return hook

    handles = [
        module.register_forward_pre_hook(record(name))
        for name, module in model.named_modules()
        if isinstance(module, torch.nn.Conv2d)
    ]
    try:
        for content, style in pairs:
            reference_stylize(model, content, style, 1, resolution)
    finally:
        for handle in handles:
            handle.remove()
    return {name: value.numpy() for name, value in sums.items()}


@dataclass
class Candidate:
    """One float tensor of the model and its encodings."""

    name: str  # the PyTorch parameter
    original: np.ndarray
    uint8: EncodedUint8
    method: str  # how uint8 was chosen: "gptq" or "round-to-nearest"
    alone: dict[str, dict] = field(default_factory=dict)  # dtype -> (worst) quality with only it

    @property
    def elements(self) -> int:
        return int(self.original.size)

    def value(self, dtype: str) -> np.ndarray:
        if dtype == "float16":
            return self.original.astype(np.float16).astype(np.float32)
        if dtype == "uint8":
            return self.uint8.dequantized()
        return self.original


@dataclass(frozen=True)
class Step:
    names: tuple[str, ...]  # one tensor, or the small ones together (SMALL_TENSOR_ELEMENTS)
    dtype: str  # what the tensors become
    bytes_saved: int
    squared_error: float  # mean squared error this step adds, measured alone


@dataclass
class QuantizationPlan:
    """Each tensor's dtype, the encodings, and the measured size/quality curve."""

    target: FidelityTarget
    candidates: dict[str, Candidate]
    choices: dict[str, str]  # parameter -> float32 | float16 | uint8
    curve: list[dict]  # measured points, in greedy order: bytes, psnr_db, ssim, steps
    chosen: int  # index into curve
    float32_bytes: int

    def encodings(self) -> dict[str, str | EncodedUint8]:
        """Parameter -> "float16" or an EncodedUint8, for those not left float32."""
        out: dict[str, str | EncodedUint8] = {}
        for name, dtype in self.choices.items():
            if dtype == "uint8":
                out[name] = self.candidates[name].uint8
            elif dtype == "float16":
                out[name] = "float16"
        return out

    def report(self) -> dict:
        point = self.curve[self.chosen]
        return {
            "target": {
                "psnr_db": self.target.psnr_db,
                "ssim": self.target.ssim,
                "resolutions": list(self.target.resolutions),
            },
            "measured_on": "the benchmark's pair (bench_images), float32 PyTorch as reference",
            "calibrated_on": "calibration_pairs(): images disjoint from the benchmark's",
            "alone_measured_at": {
                "float16": [self.target.resolutions[0]],
                "uint8": list(self.target.resolutions),
            },
            "measured_together": [
                name for name, c in self.candidates.items() if c.elements < SMALL_TENSOR_ELEMENTS
            ],
            "float32_bytes": self.float32_bytes,
            "chosen": point,
            "chosen_fraction": point["bytes"] / self.float32_bytes,
            "layers": [
                {
                    "parameter": name,
                    "elements": c.elements,
                    "dtype": self.choices[name],
                    "uint8_method": c.method,
                    "alone_psnr_db": {
                        dtype: _finite(measured["psnr_db"]) for dtype, measured in c.alone.items()
                    },
                }
                for name, c in self.candidates.items()
            ],
            "curve": self.curve,
        }


def _finite(value: float) -> float | None:
    return None if math.isinf(value) else round(value, 3)


def measured_units(candidates: dict[str, Candidate]) -> list[tuple[str, ...]]:
    """What the plan measures and downgrades as one: each tensor of SMALL_TENSOR_ELEMENTS or
    more alone, and the smaller ones together (in the stylization's order)."""
    small = tuple(name for name, c in candidates.items() if c.elements < SMALL_TENSOR_ELEMENTS)
    large = [(name,) for name, c in candidates.items() if c.elements >= SMALL_TENSOR_ELEMENTS]
    return large + ([small] if small else [])


def _candidates(model, hessians: dict[str, np.ndarray]) -> dict[str, Candidate]:
    import torch

    convolutions = {
        name for name, module in model.named_modules() if isinstance(module, torch.nn.Conv2d)
    }
    candidates = {}
    for name, parameter in model.named_parameters():
        values = parameter.detach().numpy().astype(np.float32)
        if values.size < QUANTIZE_MIN_ELEMENTS:
            continue
        module, _, kind = name.rpartition(".")
        if kind == "weight" and module in convolutions and module in hessians:
            encoded, method = gptq_uint8(values, hessians[module]), "gptq"
        else:
            encoded, method = round_to_nearest_uint8(values), "round-to-nearest"
        candidates[name] = Candidate(name, values, encoded, method)
    return candidates


_PARTS = ("encoder", "transform", "decoder")


def _first_module(name: str) -> tuple[int, int]:
    """Where a parameter's effect starts, in the stylization's order: (part, module index);
    the transform counts as one module (its attention is not a chain of modules)."""
    part, _, rest = name.partition(".")
    return _PARTS.index(part), 0 if part == "transform" else int(rest.split(".")[0])


def _has_parameters(module) -> bool:
    return next(module.parameters(), None) is not None


class _Trace:
    """One stylization (one pass) of a pair at one resolution, with the input of every module
    that holds parameters kept: a run with some tensors swapped starts at the first module
    they change, on the kept input, and computes from there what the whole stylization would
    (the same operations on the same tensors: the same result, bit for bit; a test checks it).
    A decoder tensor then costs a decoder run, not two encoder runs, the attention and it."""

    def __init__(self, model, content: np.ndarray, style: np.ndarray, resolution: int) -> None:
        from .architecture import RELU4_1_END
        from .stylize import fitted_nchw

        self.model, self.relu4_1_end, self.size = model, RELU4_1_END, content.shape[:2]
        content_nchw = fitted_nchw(content, resolution)
        self.crop = content_nchw.shape[2:]
        self.kept: dict[str, dict] = {"content": {}, "style": {}, "decoder": {}}
        with _no_grad():
            self.features = {
                which: self._encode(which, image, 0, record=True)
                for which, image in (
                    ("style", fitted_nchw(style, resolution)),
                    ("content", content_nchw),
                )
            }
            self.reference = self._decode(self._transform(self.features), 0, record=True)

    def _encode(self, which: str, x, start: int, record: bool = False):
        kept = self.kept[which]
        relu4_1 = kept.get("relu4_1")
        if start:
            x = kept[start]
        for index in range(start, len(self.model.encoder)):
            module = self.model.encoder[index]
            if record and _has_parameters(module):
                kept[index] = x
            x = module(x)
            if index == self.relu4_1_end - 1:
                relu4_1 = x
                if record:
                    kept["relu4_1"] = x
        return relu4_1, x

    def _transform(self, features: dict):
        (c4, c5), (s4, s5) = features["content"], features["style"]
        return self.model.transform(c4, s4, c5, s5)

    def _decode(self, x, start: int, record: bool = False) -> np.ndarray:
        from .stylize import restored_hwc

        kept = self.kept["decoder"]
        if start:
            x = kept[start]
        for index in range(start, len(self.model.decoder)):
            module = self.model.decoder[index]
            if record and _has_parameters(module):
                kept[index] = x
            x = module(x)
        height, width = self.crop
        return restored_hwc(x[:, :, :height, :width].clip(0.0, 1.0), self.size)

    def run_from(self, start: tuple[int, int]) -> np.ndarray:
        """The stylization with the model's current parameters, those before `start`
        (`_first_module`) unchanged since the trace."""
        part, index = start
        with _no_grad():
            if part == 2:
                return self._decode(None, index)
            features = self.features
            if part == 0:
                features = {which: self._encode(which, None, index) for which in features}
            return self._decode(self._transform(features), 0)


def _no_grad():  # torch is imported lazily: the tfjs stage reads plans without it
    import torch

    return torch.no_grad()


class _Evaluator:
    """The model with some tensors swapped, measured against its float32 results."""

    def __init__(self, model, resolutions: tuple[int, ...]) -> None:
        self.model = model
        content, style = bench_images()
        self.traces = {res: _Trace(model, content, style, res) for res in resolutions}
        self.references = {res: trace.reference for res, trace in self.traces.items()}
        self.parameters = dict(model.named_parameters())

    def _swapped(self, values: dict[str, np.ndarray], resolution: int) -> np.ndarray:
        """The stylization at `resolution` with `values` in place of those tensors."""
        import torch

        saved = {name: self.parameters[name].detach().clone() for name in values}
        try:
            with torch.no_grad():
                for name, value in values.items():
                    self.parameters[name].copy_(torch.from_numpy(value))
            start = min(map(_first_module, values))
            return self.traces[resolution].run_from(start)
        finally:
            with torch.no_grad():
                for name, value in saved.items():
                    self.parameters[name].copy_(value)

    def measure(self, values: dict[str, np.ndarray], resolution: int) -> dict[str, float]:
        """PSNR, SSIM, max abs and mean squared error at `resolution`."""
        result = self._swapped(values, resolution)
        reference = self.references[resolution]
        measured = quality(result, reference)
        measured["mse"] = float(np.mean((result - reference) ** 2))
        return measured

    def errors(self, values: dict[str, np.ndarray], resolution: int) -> dict[str, float]:
        """PSNR and mean squared error at `resolution`, without SSIM (the costly part: a
        1024-px picture's): what the greedy ranking uses, for each tensor alone."""
        result = self._swapped(values, resolution)
        reference = self.references[resolution]
        a, b = (np.clip(x, 0, 1).astype(np.float32) for x in (result, reference))
        clipped = float(np.mean(np.square(a - b), dtype=np.float64))  # as images.quality
        return {
            "psnr_db": 10 * math.log10(1 / clipped) if clipped > 0 else math.inf,
            "mse": float(np.mean((result - reference) ** 2)),
        }

    def worst_errors(self, values: dict[str, np.ndarray]) -> dict[str, float]:
        """The worst PSNR and mean squared error over every resolution (no SSIM)."""
        each = [self.errors(values, res) for res in self.references]
        return {"psnr_db": min(m["psnr_db"] for m in each), "mse": max(m["mse"] for m in each)}

    def worst(self, values: dict[str, np.ndarray]) -> tuple[dict[str, float], dict]:
        """The worst PSNR, SSIM and mean squared error over every resolution, and each one's."""
        each = {res: self.measure(values, res) for res in self.references}
        worst = {key: min(m[key] for m in each.values()) for key in ("psnr_db", "ssim")}
        worst["mse"] = max(m["mse"] for m in each.values())
        return worst, each


def _greedy_order(steps: list[Step]) -> list[Step]:
    """Steps by bytes saved per squared error, a tensor's float16 step before its uint8 one."""
    ranked = sorted(steps, key=lambda s: s.bytes_saved / max(s.squared_error, 1e-15), reverse=True)
    order, placed, waiting = [], set(), {}
    for step in ranked:
        if step.dtype == "uint8" and step.names not in placed:
            waiting[step.names] = step
            continue
        order.append(step)
        placed.add(step.names)
        if step.names in waiting:
            order.append(waiting.pop(step.names))
    return order


def choose_point(curve: list[dict], target: FidelityTarget, float32_bytes: int) -> int:
    """The curve point to ship: of those that meet the target (PLAN_HEADROOM_DB to spare),
    the best PSNR among the smallest (within the curve's resolution, CURVE_STEP_FRACTION of
    the float32 bytes: a few kB more can buy dB). The float32 start always meets it."""
    meeting = [
        i
        for i, point in enumerate(curve)
        if point["psnr_db"] is None or target.met_by(point, PLAN_HEADROOM_DB)
    ]
    smallest = min(curve[i]["bytes"] for i in meeting)
    near = [
        i for i in meeting if curve[i]["bytes"] <= smallest + CURVE_STEP_FRACTION * float32_bytes
    ]
    return max(near, key=lambda i: math.inf if curve[i]["psnr_db"] is None else curve[i]["psnr_db"])


def plan_quantization(
    model, target: FidelityTarget, log: Callable[[str], None] = print
) -> QuantizationPlan:
    """Choose float32, float16 or uint8 for every float tensor of `model` (a PatchedSANet),
    the fewest bytes whose stylization of the benchmark's pair meets `target` at each of its
    resolutions. Each tensor's uint8 is measured alone at all (float16's, 100x smaller, at
    the first): a tensor harmless at 256 px can dominate at 512 (the seeded model's first
    SANet key product: 32.6 dB alone at 512, ranked by 256 it cost 0.7 dB there and 6.6 at
    512 in one step); each curve point at all."""
    started = time.monotonic()
    ranking = target.resolutions[0]
    hessians = layer_hessians(model, calibration_pairs(), ranking)
    candidates = _candidates(model, hessians)
    del hessians
    log(
        f"  auto quantization: {len(candidates)} tensors encoded (GPTQ on the convolutions) "
        f"in {time.monotonic() - started:.0f} s"
    )
    evaluate = _Evaluator(model, target.resolutions)
    steps = []
    for names in measured_units(candidates):
        unit = [candidates[name] for name in names]
        half = evaluate.errors({c.name: c.value("float16") for c in unit}, ranking)
        whole = evaluate.worst_errors({c.name: c.value("uint8") for c in unit})
        for c in unit:
            c.alone.update(float16=half, uint8=whole)
        elements = sum(c.elements for c in unit)
        steps.append(Step(names, "float16", 2 * elements, half["mse"]))
        steps.append(Step(names, "uint8", elements, max(whole["mse"] - half["mse"], 0.0)))
    log(
        f"  auto quantization: each tensor's error measured alone "
        f"({time.monotonic() - started:.0f} s)"
    )

    float32_bytes = sum(DTYPE_BYTES["float32"] * c.elements for c in candidates.values())
    order = _greedy_order(steps)
    bytes_after = list(itertools.accumulate((s.bytes_saved for s in order), initial=0))
    bytes_after = [float32_bytes - saved for saved in bytes_after]  # after the first k steps
    measured: dict[int, dict] = {
        0: {"bytes": float32_bytes, "psnr_db": None, "ssim": 1.0, "steps": 0, "at": {}}
    }

    def point(k: int) -> dict:
        """The curve point after the first k steps of the greedy order, measured once."""
        if k not in measured:
            dtypes = {name: "float32" for name in candidates}
            dtypes |= {name: s.dtype for s in order[:k] for name in s.names}
            worst, each = evaluate.worst({n: candidates[n].value(d) for n, d in dtypes.items()})
            measured[k] = {
                "bytes": bytes_after[k],
                "psnr_db": _finite(worst["psnr_db"]),
                "ssim": round(worst["ssim"], 5),
                "steps": k,
                "at": {
                    str(res): {"psnr_db": _finite(m["psnr_db"]), "ssim": round(m["ssim"], 5)}
                    for res, m in each.items()
                },
            }
        return measured[k]

    def meets(k: int) -> bool:
        return k == 0 or target.met_by(point(k), PLAN_HEADROOM_DB)

    # The last point of the order that meets the target, by bisection: fidelity falls as
    # bytes fall along the greedy order (each step adds error), so the points that meet it
    # come first. A dozen points measured, where a point every CURVE_STEP_FRACTION of the
    # bytes took 57 at tiny width (and most of the stage's 571 s at full width).
    last = len(order)
    if not meets(last):
        low, high = 0, last
        while high - low > 1:
            middle = (low + high) // 2
            low, high = (middle, high) if meets(middle) else (low, middle)
        last = low
    # choose_point's window above it (a few kB more can buy dB), and a coarse curve for the
    # picture (quantization.png): a point every CURVE_PLOT_FRACTION of the float32 bytes.
    window = bytes_after[last] + CURVE_STEP_FRACTION * float32_bytes
    point(min(k for k in range(last + 1) if bytes_after[k] <= window))
    for fraction in np.arange(1 - CURVE_PLOT_FRACTION, 0, -CURVE_PLOT_FRACTION):
        below = [k for k in range(len(order) + 1) if bytes_after[k] <= fraction * float32_bytes]
        if below:
            point(below[0])
    curve = [measured[k] for k in sorted(measured)]
    chosen = choose_point(curve, target, float32_bytes)
    choices = {name: "float32" for name in candidates}
    for step in order[: curve[chosen]["steps"]]:
        choices.update(dict.fromkeys(step.names, step.dtype))
    point = curve[chosen]
    log(
        f"  auto quantization: {point['bytes'] / 1e6:.2f} MB "
        f"({point['bytes'] / float32_bytes:.1%} of float32), PSNR {point['psnr_db']} dB, "
        f"SSIM {point['ssim']} (the worst at {', '.join(map(str, target.resolutions))} px); "
        f"{len(curve)} curve points "
        f"({time.monotonic() - started:.0f} s)"
    )
    return QuantizationPlan(target, candidates, choices, curve, chosen, float32_bytes)


# --- the plan stored by stage `plan`, read by tfjs and bench --------------------------------

PLAN_JSON = "plan.json"  # the report: target, each tensor's dtype, the measured curve
UINT8_NPZ = "uint8.npz"  # each tensor's uint8 candidate: codes, min, scale


def save_plan(plan: QuantizationPlan, folder: Path) -> None:
    """`plan` into `folder`: its report as JSON and every uint8 candidate's codes (the float16
    and float32 values follow from the weights themselves)."""
    folder.mkdir(parents=True, exist_ok=True)
    originals = {name: c.original for name, c in plan.candidates.items()}
    stored = {**plan.report(), "weights_sha256": _weights_digest(originals)}
    (folder / PLAN_JSON).write_text(json.dumps(stored, indent=2, sort_keys=True) + "\n")
    arrays = {}
    for name, c in plan.candidates.items():
        arrays[f"{name}/codes"] = c.uint8.codes
        arrays[f"{name}/range"] = np.array([c.uint8.min, c.uint8.scale], np.float64)
    with open(folder / UINT8_NPZ, "wb") as out:  # numpy's zip entries carry a fixed date
        np.savez(out, **arrays)


def _weights_digest(values: dict[str, np.ndarray]) -> str:
    digest = hashlib.sha256()
    for name, array in values.items():
        digest.update(f"{name}{array.shape}".encode())
        digest.update(np.ascontiguousarray(array, np.float32).tobytes())
    return digest.hexdigest()


def load_plan(folder: Path | str | None, model) -> QuantizationPlan:
    """The plan `save_plan` stored in `folder`, for `model` (the PatchedSANet it was made
    for: it supplies the float32 values). What each tensor measured alone comes back as its
    PSNR only, the figure the report keeps."""
    if folder is None or not (Path(folder) / PLAN_JSON).is_file():
        raise QuantizationError(
            f"no quantization plan in {folder}: the auto bundle follows the plan stage's "
            "(`doit plan`, built first by the stages that read it)"
        )
    report = json.loads((Path(folder) / PLAN_JSON).read_text())
    parameters = {
        name: value.detach().numpy().astype(np.float32) for name, value in model.named_parameters()
    }
    layers = report["layers"]
    names = [layer["parameter"] for layer in layers]
    if not set(names) <= parameters.keys() or report.get("weights_sha256") != _weights_digest(
        {name: parameters[name] for name in names}
    ):
        raise QuantizationError(
            f"the plan in {folder} was made for other weights than the model's: make it again "
            "for these (`doit plan`)"
        )
    candidates, choices = {}, {}
    with np.load(Path(folder) / UINT8_NPZ) as stored:
        for layer in layers:
            name = layer["parameter"]
            low, scale = stored[f"{name}/range"]
            encoded = EncodedUint8(stored[f"{name}/codes"], float(low), float(scale))
            alone = {
                dtype: {"psnr_db": math.inf if psnr is None else psnr}
                for dtype, psnr in layer["alone_psnr_db"].items()
            }
            candidates[name] = Candidate(
                name, parameters[name], encoded, layer["uint8_method"], alone
            )
            choices[name] = layer["dtype"]
    target = FidelityTarget(**report["target"])
    curve = report["curve"]
    return QuantizationPlan(
        target, candidates, choices, curve, curve.index(report["chosen"]), report["float32_bytes"]
    )


# --- the plan applied to a TensorFlow.js bundle --------------------------------------------


def _layout(parameter: np.ndarray, weight: np.ndarray) -> tuple[int, ...] | None:
    """The axis order that turns the parameter into the bundle's weight (then reshaped), or
    None: the converter only transposes filters and drops or adds axes of size 1."""
    kept = [axis for axis, size in enumerate(parameter.shape) if size != 1]
    ones = [axis for axis, size in enumerate(parameter.shape) if size == 1]
    squeezed, target = np.squeeze(parameter), np.squeeze(weight)
    for order in itertools.permutations(range(squeezed.ndim)):
        moved = squeezed.transpose(order)
        if moved.shape == target.shape and np.array_equal(moved, target):
            return tuple(kept[i] for i in order) + tuple(ones)
    return None


def bundle_encodings(
    weights: dict[str, np.ndarray], plan: QuantizationPlan
) -> tuple[dict[str, str | dict], list[str]]:
    """The plan in the bundle's terms: weight name -> "float16" or a pre-quantized manifest
    entry; and the bundle's float tensors that match no parameter (left float32)."""
    encodings = plan.encodings()
    by_values: dict[tuple, list[str]] = {}
    for name, c in plan.candidates.items():
        key = (c.elements, np.sort(c.original, axis=None).tobytes())
        by_values.setdefault(key, []).append(name)
    out: dict[str, str | dict] = {}
    unmatched = []
    for weight_name, weight in weights.items():
        if weight.dtype != np.float32 or weight.size < QUANTIZE_MIN_ELEMENTS:
            continue
        if weight.min() == weight.max():  # a fill (the loop's zeros), not a learned tensor
            continue
        key = (weight.size, np.sort(weight, axis=None).tobytes())
        match = None
        for parameter in by_values.get(key, []):
            axes = _layout(plan.candidates[parameter].original, weight)
            if axes is not None:
                match = parameter, axes
                break
        if match is None:
            unmatched.append(weight_name)
            continue
        parameter, axes = match
        encoding = encodings.get(parameter)
        if isinstance(encoding, EncodedUint8):
            out[weight_name] = encoding.manifest_entry(weight_name, axes, weight.shape)
        elif encoding == "float16":
            out[weight_name] = "float16"
    return out, unmatched


def plot_curve(plan: QuantizationPlan, path: Path) -> None:
    """The measured size/quality curve, the target and the chosen point, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    points = [p for p in plan.curve if p["psnr_db"] is not None]
    figure, axes = plt.subplots(figsize=(7, 4.2))
    for res in plan.target.resolutions:
        axes.plot(
            [100 * p["bytes"] / plan.float32_bytes for p in points],
            [p["at"][str(res)]["psnr_db"] for p in points],
            marker="o",
            markersize=3,
            label=f"greedy plan, measured at {res} px",
        )
    axes.axhline(plan.target.psnr_db, color="grey", linestyle="--", label="target PSNR")
    chosen = plan.curve[plan.chosen]
    if chosen["psnr_db"] is not None:
        axes.plot(
            [100 * chosen["bytes"] / plan.float32_bytes],
            [chosen["psnr_db"]],
            marker="*",
            markersize=14,
            color="red",
            linestyle="none",
            label="chosen (its worst resolution)",
        )
    axes.invert_xaxis()
    axes.set_xlabel("bundle weights, % of float32")
    axes.set_ylabel("PSNR vs float32 (dB)")
    axes.set_title("Automatic quantization: size against fidelity")
    axes.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=110, metadata={"Software": None})
    plt.close(figure)
