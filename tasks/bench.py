"""Stage `bench` (asked for by name: `doit bench`): every runtime timed on the same images.

Reads: pipeline.yaml `bench`, `tfjs` (shard size), `model`. Writes: artifacts/bench/
(bench.json, bench.md, bench.png). A measurement, not a build product: it runs every time it is
asked for, after building what it measures (ONNX, TFStyle) if that is out of date.
"""

from __future__ import annotations

from sanet_tfjs.architecture import PATCHED_FILES

from . import ROOT, Pipeline, code, stage
from .onnx import ONNX_TARGETS


def task_bench(pipeline: Pipeline) -> dict:
    config = pipeline.config
    return stage(
        pipeline,
        doc="benchmark PyTorch, ONNX Runtime, TF and TF.js (Chromium): speed, size, quality",
        run="bench:run_bench_stage",
        args={
            "tfstyle_dir": pipeline.path("tfstyle"),
            "onnx_dir": pipeline.path("onnx"),
            "patched_dir": pipeline.path("patched"),
            "out_dir": pipeline.path("bench"),
            "width_divisor": config.model.width_divisor,
            "shard_bytes": config.tfjs.shard_bytes,
            **config.section("bench"),
        },
        outputs=[pipeline.path("bench")],
        file_dep=[pipeline.path("patched", name) for name in PATCHED_FILES]
        + [pipeline.path("onnx", name) for name in ONNX_TARGETS]
        + [pipeline.path("tfstyle", "saved_model", "saved_model.pb")]
        + [str(path.relative_to(ROOT)) for path in sorted((ROOT / "js" / "bench").iterdir())]
        + [str((ROOT / "js" / "sanet.mjs").relative_to(ROOT))]
        + code(
            "bench", "tfjs_convert", "tfjs_graph", "stylize", "parity", "browser", "server", "site"
        ),
        targets=[pipeline.path("bench", name) for name in ("bench.json", "bench.md", "bench.png")],
        uptodate=[False],
    )
