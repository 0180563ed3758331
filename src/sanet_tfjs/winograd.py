"""SANet's 3x3 convolutions one at a time in TensorFlow.js: direct, and rewritten as Winograd
F(2x2, 3x3) or F(4x4, 3x3) by tfjs_graph.py, to check the rewrite and to time each layer.

Each layer is a graph model of its own, built here as the converter would write it (reflection
padding, then the fused convolution with its bias and ReLU), and run in Node on the wasm backend
by js/run_graph.mjs. `python -m sanet_tfjs.winograd` times every 3x3 layer shape of the
full-width model at the benchmark's resolutions and writes the timings and the choice they give
into formats/winograd_timings.py, which the tfjs stage reads (so a build never times anything,
and the same inputs give the same bundle).
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .architecture import DECODER_LAYERS, FEATURES, RELU5_1_END, VGG_LAYERS, scaled
from .formats.tfjs_graph import (
    WINOGRAD_VARIANTS,
    Convolution3x3,
    GraphBundle,
    _b64,
    const_attr,
    winograd_convolution,
)
from .repo import ROOT
from .runtimes.node import NodeRunError

GRAPH_RUNNER = ROOT / "js" / "run_graph.mjs"
VARIANTS = ("direct", *WINOGRAD_VARIANTS)


@dataclass(frozen=True)
class Layer3x3:
    """A 3x3 convolution of the model: channels, and its side as a fraction of the image's
    (1 / `divisor`; the encoder pools with ceil_mode, so sides round up)."""

    name: str
    in_channels: int
    out_channels: int
    divisor: int
    relu: bool = True

    def side(self, resolution: int) -> int:
        return math.ceil(resolution / self.divisor)

    def gflop(self, height: int, width: int) -> float:
        """Multiply-adds counted as two FLOPs, as torch's counter does."""
        return 2 * 9 * self.in_channels * self.out_channels * height * width / 1e9


def model_layers(width_divisor: int = 1) -> list[Layer3x3]:
    """The 3x3 convolutions of one stylization's graph, in order: encoder to relu5_1 (its
    1x1 input convolution is folded into the first), the transform's merge_conv, decoder."""
    layers, divisor, index = [], 1, 0
    for layer in VGG_LAYERS[:RELU5_1_END]:
        if layer.kind == "pool":
            divisor *= 2
        elif layer.kind == "conv" and layer.kernel == 3:
            index += 1
            cin, cout = (scaled(c, width_divisor) for c in (layer.in_channels, layer.out_channels))
            layers.append(Layer3x3(f"encoder {index}", cin, cout, divisor))
    merge = scaled(FEATURES, width_divisor)
    layers.append(Layer3x3("merge_conv", merge, merge, 8, relu=False))
    divisor, index = 8, 0
    for layer in DECODER_LAYERS:
        if layer.kind == "upsample":
            divisor //= 2
        elif layer.kind == "conv":
            index += 1
            cin, cout = (scaled(c, width_divisor) for c in (layer.in_channels, layer.out_channels))
            layers.append(Layer3x3(f"decoder {index}", cin, cout, divisor, relu=cout != 3))
    return layers


def layer_bundle(filters: np.ndarray, bias: np.ndarray, relu: bool, variant: str) -> GraphBundle:
    """A graph model of one layer: input x [1, H, W, Cin] -> reflection pad 1 -> 3x3
    convolution (+ bias, + ReLU), as tensorflowjs's converter and tfjs_graph.py's rewrites
    leave each of SANet's layers; rewritten as `variant` unless "direct"."""
    cin, cout = filters.shape[2:]
    unknown = [{"size": "-1"}, {"size": "-1"}, {"size": "-1"}, {"size": str(cin)}]
    fused = [_b64("BiasAdd"), *([_b64("Relu")] if relu else [])]
    ones = {"list": {"i": ["1", "1", "1", "1"]}}
    nodes = [
        {"name": "x", "op": "Placeholder",
         "attr": {"dtype": {"type": "DT_FLOAT"}, "shape": {"shape": {"dim": unknown}}}},
        {"name": "pad", "op": "MirrorPad", "input": ["x", "paddings"],
         "attr": {"mode": {"s": _b64("REFLECT")}, "T": {"type": "DT_FLOAT"},
                  "Tpaddings": {"type": "DT_INT32"}}},
        {"name": "conv", "op": "_FusedConv2D", "input": ["pad", "filters", "bias"],
         "attr": {"T": {"type": "DT_FLOAT"}, "strides": ones, "dilations": ones,
                  "padding": {"s": _b64("VALID")}, "data_format": {"s": _b64("NHWC")},
                  "fused_ops": {"list": {"s": fused}}, "num_args": {"i": "1"},
                  "epsilon": {"f": 0.0}}},
    ]  # fmt: skip
    weights = {
        "paddings": np.array([[0, 0], [1, 1], [1, 1], [0, 0]], np.int32),
        "filters": np.ascontiguousarray(filters, np.float32),
        "bias": np.ascontiguousarray(bias, np.float32),
    }
    for name, value in weights.items():
        nodes.append({"name": name, "op": "Const", "attr": const_attr(value)})
    model = {
        "format": "graph-model",
        "modelTopology": {"node": nodes, "library": {}, "versions": {"producer": 2129}},
        "signature": {
            "inputs": {
                "x:0": {"name": "x:0", "dtype": "DT_FLOAT", "tensorShape": {"dim": unknown}}
            },
            "outputs": {"y": {"name": "conv:0", "dtype": "DT_FLOAT"}},
        },
    }
    bundle = GraphBundle(model, weights)
    if variant != "direct":
        conv = Convolution3x3("conv", cin, cout, relu)
        winograd_convolution(bundle, conv, WINOGRAD_VARIANTS[variant])
    return bundle


@dataclass(frozen=True)
class LayerRun:
    """One layer model run on one input: `runs` timed runs after a warm-up."""

    bundle: GraphBundle
    image: np.ndarray  # [1, H, W, Cin] float32
    runs: int = 1
    keep_output: bool = True


def run_layers(runs: list[LayerRun]) -> list[dict]:
    """Each run's output (None unless kept), milliseconds per timed run, and the wasm heap
    after it (js/run_graph.mjs, Node, wasm: one thread)."""
    if shutil.which("node") is None:
        raise NodeRunError("node is not installed; run scripts/setup.sh")
    with tempfile.TemporaryDirectory(prefix="tfjs-layers-") as folder:
        folder = Path(folder)
        cases = []
        for index, run in enumerate(runs):
            (folder / f"model_{index}").mkdir()
            run.bundle.save(folder / f"model_{index}", shard_bytes=4 * 1024 * 1024)
            np.ascontiguousarray(run.image, np.float32).tofile(folder / f"input_{index}.bin")
            cases.append({
                "model": f"model_{index}", "runs": run.runs,
                "input": {"file": f"input_{index}.bin", "shape": list(run.image.shape)},
                "output": f"output_{index}.bin" if run.keep_output else None,
            })  # fmt: skip
        (folder / "cases.json").write_text(json.dumps(cases))
        done = subprocess.run(
            ["node", str(GRAPH_RUNNER), str(folder)], capture_output=True, text=True, cwd=ROOT
        )
        if done.returncode != 0:
            raise NodeRunError(f"TensorFlow.js in Node failed:\n{done.stderr[-3000:]}")
        results = json.loads((folder / "results.json").read_text())["results"]
        for index, (run, result) in enumerate(zip(runs, results, strict=True)):
            output = None
            if run.keep_output:
                output = np.fromfile(folder / f"output_{index}.bin", np.float32)
                output = output.reshape(result["outputShape"])
            result["output"] = output
    return results
