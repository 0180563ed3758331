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
import sys
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


def layer_bundle(
    filters: np.ndarray,
    bias: np.ndarray,
    relu: bool,
    variant: str,
    filters_in_graph: bool = True,
) -> GraphBundle:
    """A graph model of one layer: input x [1, H, W, Cin] -> reflection pad 1 -> 3x3
    convolution (+ bias, + ReLU), as tensorflowjs's converter and tfjs_graph.py's rewrites
    leave each of SANet's layers; rewritten as `variant` unless "direct" (with the filters
    transformed in the graph, or, to measure what that costs, stored transformed)."""
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
        winograd_convolution(bundle, conv, WINOGRAD_VARIANTS[variant], filters_in_graph)
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


def layer_shapes(width_divisor: int = 1) -> dict[tuple[int, int, int, bool], int]:
    """(in, out, side divisor, relu) of the model's 3x3 layers -> how many layers have it."""
    counts: dict[tuple[int, int, int, bool], int] = {}
    for layer in model_layers(width_divisor):
        key = (layer.in_channels, layer.out_channels, layer.divisor, layer.relu)
        counts[key] = counts.get(key, 0) + 1
    return counts


# While a Winograd convolution runs it holds its input and its output four times over (16
# transformed tiles and 16 products, each a quarter of the pixels). With every faster shape
# rewritten, the page held 1,239 MB at 512 px against 881 MB direct (`doit bench`, full width,
# 2026-12-05): the full- and half-resolution layers' 64 and 128 channels dominate. At a
# quarter of the image's side and below, the tiles are smaller than what the full-resolution
# direct layers hold, and that is where most of the multiplications are. Even so the page
# held 1,138 MB at 512 px against 881 MB direct (same run, 0.66x the time): tfjs.winograd is
# off by default (docs/model.md). Since then the exact strips (tfjs_graph.tile_resolution_chains)
# and the banded transform run every 3x3 layer but one inside ops of their own, direct:
# Winograd applies to the one left in the graph, relu5_1's (at a sixteenth of the side).
WINOGRAD_MIN_DIVISOR = 8


def winograd_choices(width_divisor: int) -> dict[tuple[int, int], str]:
    """(in, out) channels at this width -> Winograd variant: the choice recorded from the
    full-width timings (formats/winograd_timings.py), for the shapes whose every layer runs
    at 1 / WINOGRAD_MIN_DIVISOR of the image's side or less; the same layers at any width."""
    from .formats.winograd_timings import CHOICES

    large = {
        (layer.in_channels, layer.out_channels)
        for layer in model_layers()
        if layer.divisor < WINOGRAD_MIN_DIVISOR
    }
    return {
        (scaled(cin, width_divisor), scaled(cout, width_divisor)): variant
        for (cin, cout), variant in CHOICES.items()
        if (cin, cout) not in large
    }


# Variants timed per shape: each way of running the layer, and the Winograd ones with their
# filters stored already transformed (what computing them at load time would give: a larger
# download or a load-time step, and more memory), to tell what the in-graph transform costs.
TIMED = [("direct", True), ("f2x2", True), ("f4x4", True), ("f2x2", False), ("f4x4", False)]


def time_layers(resolutions: list[int], runs: int, seed: int = 0) -> list[dict]:
    """The median milliseconds of each 3x3 layer shape of the full-width model, on a square
    image of each resolution, in each of TIMED (Node, wasm, one thread)."""
    rng = np.random.default_rng(seed)
    cases, labels = [], []
    for resolution in resolutions:
        for cin, cout, divisor, relu in layer_shapes():
            side = math.ceil(resolution / divisor)
            image = rng.standard_normal((1, side, side, cin), np.float32)
            filters = (rng.standard_normal((3, 3, cin, cout)) / math.sqrt(9 * cin)).astype(
                np.float32
            )
            bias = rng.standard_normal(cout).astype(np.float32)
            for variant, in_graph in TIMED:
                bundle = layer_bundle(filters, bias, relu, variant, in_graph)
                cases.append(LayerRun(bundle, image, runs=runs, keep_output=False))
                labels.append({
                    "in_channels": cin, "out_channels": cout, "divisor": divisor, "relu": relu,
                    "resolution": resolution, "side": side, "variant": variant,
                    "filters_in_graph": in_graph,
                })  # fmt: skip
        print(f"  timing {len(cases)} layer models so far (resolution {resolution})", flush=True)
    results = run_layers(cases)
    return [
        {**label, "ms": round(float(np.median(result["ms"])), 2)}
        for label, result in zip(labels, results, strict=True)
    ]


def choose_variants(timings: list[dict]) -> dict[tuple[int, int], str]:
    """(in, out) channels -> the variant each layer of that shape runs. Timed per layer shape,
    summed over the model's layers of those channels (the 512 -> 512 layers run at 1/8 and
    1/16 of the image's side); a Winograd variant (filters in the graph) is chosen only if it
    is faster than direct at every resolution timed, and then the fastest in total."""
    counts = layer_shapes()
    totals: dict[tuple[int, int], dict[str, dict[int, float]]] = {}
    for entry in timings:
        if not entry["filters_in_graph"]:
            continue
        key = (entry["in_channels"], entry["out_channels"])
        layers = counts[key + (entry["divisor"], entry["relu"])]
        by_resolution = totals.setdefault(key, {}).setdefault(entry["variant"], {})
        by_resolution[entry["resolution"]] = (
            by_resolution.get(entry["resolution"], 0.0) + layers * entry["ms"]
        )
    choices = {}
    for key, variants in totals.items():
        direct = variants["direct"]
        faster = {
            name: sum(times.values())
            for name, times in variants.items()
            if name != "direct" and all(times[r] < direct[r] for r in direct)
        }
        if faster:
            choices[key] = min(faster, key=faster.get)
    return dict(sorted(choices.items()))


TIMINGS_MODULE = Path(__file__).parent / "formats" / "winograd_timings.py"


def write_timings_module(timings: list[dict], resolutions: list[int], runs: int) -> None:
    """formats/winograd_timings.py: the timings, and the choice the tfjs stage applies."""
    import datetime

    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=ROOT
    ).stdout.strip()
    rows = "\n".join(f"    {entry!r}," for entry in timings)
    choices = "\n".join(
        f"    {key!r}: {value!r}," for key, value in choose_variants(timings).items()
    )
    TIMINGS_MODULE.write_text(
        '"""Per-layer-shape timings of the 3x3 convolutions, direct and Winograd, and the choice\n'
        "they give. Generated by `python -m sanet_tfjs.winograd --write` (src/sanet_tfjs/\n"
        'winograd.py): do not edit; rerun it when TensorFlow.js or the rewrite changes."""\n\n'
        f"MEASURED = {{'day': {datetime.date.today().isoformat()!r}, 'commit': {commit!r}, "
        f"'runtime': 'TensorFlow.js wasm in Node, 1 thread', 'resolutions': {resolutions!r}, "
        f"'runs': {runs!r}}}\n\n"
        "# One entry per (layer shape, resolution, variant): median milliseconds of `runs`.\n"
        f"TIMINGS = [\n{rows}\n]\n\n"
        "# Full-width (in, out) channels -> Winograd variant; the other shapes stay direct.\n"
        f"CHOICES = {{\n{choices}\n}}\n"
    )
    # the repository's formatter, so that the generated module passes `ruff format --check`
    subprocess.run([sys.executable, "-m", "ruff", "format", str(TIMINGS_MODULE)], check=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--resolutions", type=int, nargs="+", default=[256, 512])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--write", action="store_true", help="write formats/winograd_timings.py")
    args = parser.parse_args()
    timings = time_layers(args.resolutions, args.runs)
    print(
        f"{'in':>4} {'out':>4} {'side':>5} {'variant':>8} {'filters':>8} {'ms':>9} {'x direct':>9}"
    )
    direct = {(e["in_channels"], e["out_channels"], e["side"]): e["ms"] for e in timings
              if e["variant"] == "direct"}  # fmt: skip
    for e in timings:
        ratio = e["ms"] / direct[e["in_channels"], e["out_channels"], e["side"]]
        where = "graph" if e["filters_in_graph"] else "stored"
        print(f"{e['in_channels']:>4} {e['out_channels']:>4} {e['side']:>5} {e['variant']:>8} "
              f"{where:>8} {e['ms']:>9.1f} {ratio:>9.2f}")  # fmt: skip
    print("choice:", choose_variants(timings))
    if args.write:
        write_timings_module(timings, args.resolutions, args.runs)
        print(f"wrote {TIMINGS_MODULE.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
