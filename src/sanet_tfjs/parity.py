"""Numerical parity of converted models against the patched PyTorch model.

Each conversion stage runs its converted encoder, transform and decoder on a fixed set of image
pairs (odd, non-square, content and style of different sizes), feeding every part the
PyTorch reference inputs so that each part's own error is measured, and fails the build when
an error exceeds the tolerance set in pipeline.yaml's `parity` section.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from .errors import PipelineError
from .images import load_rgb, sample_photo_path, synthetic_painting
from .model import PatchedSANet, stylize_loop
from .reports import ParityReport, PartsRow, StylizationRow

# (iters, max_resolution) of each whole-stylization check: one and two passes, and scaling.
STYLIZE_SETTINGS = ((1, 512), (2, 512), (1, 80))
# (content height, width), (style height, width): square, odd and non-square, mismatched.
PARITY_PAIRS = (
    ((64, 64), (64, 64)),
    ((97, 131), (80, 48)),
    ((181, 257), (99, 131)),
)

Array = np.ndarray


class ParityError(PipelineError):
    """A converted model computes something else than the PyTorch model."""


@dataclass(frozen=True)
class PartsBackend:
    """A converted model as three functions on NCHW float32 arrays."""

    encode: Callable[[Array], tuple[Array, Array]]
    transform: Callable[[Array, Array, Array, Array], Array]
    decode: Callable[[Array], Array]

    def stylize(self, content, style, iters: int) -> Array:
        """The product's loop (model.stylize_loop) over these parts; NCHW tensors or arrays."""
        content, style = np.asarray(content, np.float32), np.asarray(style, np.float32)
        return stylize_loop(self.encode, self.transform, self.decode, content, style, iters)


def parity_images() -> list[tuple[str, Array, Array]]:
    """The fixed (name, content, style) pairs, HWC float32 in [0, 1]."""
    pairs = []
    for index, (content_hw, style_hw) in enumerate(PARITY_PAIRS):
        content = load_rgb(sample_photo_path(), (content_hw[1], content_hw[0]))
        style = synthetic_painting(100 + index, *style_hw)
        name = f"{content_hw[0]}x{content_hw[1]}+{style_hw[0]}x{style_hw[1]}"
        pairs.append((name, content, style))
    return pairs


def errors(actual: Array, expected: Array) -> dict[str, float]:
    actual, expected = np.asarray(actual, np.float64), np.asarray(expected, np.float64)
    if actual.shape != expected.shape:
        raise ParityError(f"shape {actual.shape} differs from PyTorch's {expected.shape}")
    scale = np.linalg.norm(expected)
    return {
        "max_abs": float(np.abs(actual - expected).max()),
        "rel_l2": float(np.linalg.norm(actual - expected) / scale) if scale else 0.0,
    }


def _nchw(image: Array) -> Array:
    return np.ascontiguousarray(image.transpose(2, 0, 1)[None])


@torch.no_grad()
def compare_parts(backend: PartsBackend, model: PatchedSANet) -> ParityReport:
    """Errors of each converted part against PyTorch on every parity pair."""
    rows: list[PartsRow] = []
    for name, content, style in parity_images():
        c, s = torch.from_numpy(_nchw(content)), torch.from_numpy(_nchw(style))
        c4, c5 = model.encoder(c)
        s4, s5 = model.encoder(s)
        features = model.transform(c4, s4, c5, s5)
        image = model.decoder(features)
        got_c4, got_c5 = backend.encode(c.numpy())
        got_features = backend.transform(c4.numpy(), s4.numpy(), c5.numpy(), s5.numpy())
        got_image = backend.decode(features.numpy())
        rows.append(
            {
                "pair": name,
                "relu4_1": errors(got_c4, c4.numpy()),
                "relu5_1": errors(got_c5, c5.numpy()),
                "transform": errors(got_features, features.numpy()),
                "image": errors(got_image, image.numpy()),
            }
        )
    return {"pairs": rows}


def worst(rows: list[PartsRow], key: str, metric: str) -> float:
    return max(row[key][metric] for row in rows)


def enforce_parts(
    report: ParityReport, stage: str, feature_rel_l2: float, image_max_abs: float
) -> ParityReport:
    """Add the verdict to a `compare_parts` report; raise ParityError if out of tolerance."""
    rows = report["pairs"]
    checks = {
        f"{key} rel_l2": (worst(rows, key, "rel_l2"), feature_rel_l2)
        for key in ("relu4_1", "relu5_1", "transform")
    }
    checks["image max_abs"] = (worst(rows, "image", "max_abs"), image_max_abs)
    report["stage"] = stage
    report["worst"] = {name: {"value": v, "tolerance": t} for name, (v, t) in checks.items()}
    report["passed"] = all(v <= t for v, t in checks.values())
    print(format_report(report))
    if not report["passed"]:
        failed = [f"{n} = {v:.3g} > {t:.3g}" for n, (v, t) in checks.items() if v > t]
        raise ParityError(
            f"stage {stage}: converted model differs from PyTorch beyond the tolerances in "
            f"pipeline.yaml `parity`: {'; '.join(failed)}"
        )
    return report


def format_report(report: ParityReport) -> str:
    lines = [f"parity of stage {report['stage']} against PyTorch (worst over the pairs):"]
    for name, entry in report["worst"].items():
        mark = "ok" if entry["value"] <= entry["tolerance"] else "FAIL"
        lines.append(
            f"  {name:<18} {entry['value']:.3g}  (tolerance {entry['tolerance']:.3g}) {mark}"
        )
    return "\n".join(lines)


def stylization_runs() -> list[tuple[str, Array, Array, int, int]]:
    """(pair name, content, style, iters, max_resolution) of every whole-stylization check."""
    return [
        (name, content, style, iters, max_resolution)
        for name, content, style in parity_images()
        for iters, max_resolution in STYLIZE_SETTINGS
    ]


def reference_results(model, runs: list[tuple]) -> list[Array]:
    """The PyTorch reference stylization of each (name, content, style, iters, max_res) run."""
    from .stylize import reference_stylize

    return [reference_stylize(model, *run[1:]) for run in runs]


def compare_stylizations(
    stage: str,
    runs: list[tuple],
    results: list[Array],
    model,
    result_max_abs: float | None,
    references: list[Array] | None = None,
) -> ParityReport:
    """Whole-stylization errors against the PyTorch reference (`references`, computed from
    `model` when not given). With a tolerance, raise ParityError beyond it; without one
    (quantized models) the errors are only reported."""
    if references is None:
        references = reference_results(model, runs)
    rows: list[StylizationRow] = []
    for (name, _, _, iters, max_resolution), actual, expected in zip(
        runs, results, references, strict=True
    ):
        rows.append(
            {
                "pair": name,
                "iters": iters,
                "max_resolution": max_resolution,
                "result": errors(actual, expected),
            }
        )
    worst_error = max(row["result"]["max_abs"] for row in rows)
    checked = result_max_abs is not None
    report: ParityReport = {
        "stage": stage,
        "pairs": rows,
        "worst": {"result max_abs": {"value": worst_error, "tolerance": result_max_abs}},
        "passed": worst_error <= result_max_abs if checked else None,
    }
    limit = f"tolerance {result_max_abs:.3g}" if checked else "reported only"
    print(
        f"parity of stage {stage} against PyTorch: worst result max_abs {worst_error:.3g} "
        f"({limit}) over {len(rows)} runs"
    )
    if report["passed"] is False:
        raise ParityError(
            f"stage {stage}: stylization differs from PyTorch by {worst_error:.3g} > "
            f"{result_max_abs:.3g} (pipeline.yaml parity.result_max_abs)"
        )
    return report
