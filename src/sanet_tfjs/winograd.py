"""SANet's 3x3 convolutions one at a time in TensorFlow.js: direct, and as Winograd F(2x2, 3x3)
(js/sanet.mjs `winogradConv`), to check it and to time each layer.

Each layer is a graph model of its own: one SanetTiledChain op of that one layer (reflection
padding, then the 3x3 convolution with its bias and ReLU, in the strips the model runs it in),
as tfjs_graph.py leaves each of SANet's layers, run in Node on the wasm backend by
js/run_graph.mjs. `python -m sanet_tfjs.winograd` times every 3x3 layer shape of the
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
    TILED_CHAIN_OP,
    WINOGRAD_ATTR,
    WINOGRAD_VARIANTS,
    GraphBundle,
    _b64,
    const_attr,
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
    """A graph model of one layer: input x [1, H, W, Cin] -> one SanetTiledChain op of that
    layer (reflection pad 1, 3x3 convolution, bias, ReLU), as tfjs_graph.py leaves each of
    SANet's layers, its convolution `variant` ("direct" or one of WINOGRAD_VARIANTS)."""
    cin = filters.shape[2]
    unknown = [{"size": "-1"}, {"size": "-1"}, {"size": "-1"}, {"size": str(cin)}]
    nodes = [
        {"name": "x", "op": "Placeholder",
         "attr": {"dtype": {"type": "DT_FLOAT"}, "shape": {"shape": {"dim": unknown}}}},
        {"name": "conv", "op": TILED_CHAIN_OP, "input": ["x", "filters", "bias"],
         "attr": {"T": {"type": "DT_FLOAT"},
                  "layers": {"list": {"s": [_b64("conv_relu" if relu else "conv")]}},
                  "input_layout": {"s": _b64("NHWC")}, "output_layout": {"s": _b64("NHWC")},
                  "image_stride": {"i": "1"}, WINOGRAD_ATTR: {"list": {"s": [_b64(variant)]}}}},
    ]  # fmt: skip
    weights = {
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
    return GraphBundle(model, weights)


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


# The 3x3 convolution the strips' ops leave in the graph, which runs direct: relu5_1's, the one
# layer at a sixteenth of the image's side (tfjs_graph.py tile_resolution_chains).
GRAPH_LAYER_DIVISOR = 16


def winograd_choices(width_divisor: int) -> dict[tuple[int, int], str]:
    """(in, out) channels at this width -> Winograd variant: the choice recorded from the
    full-width timings (formats/winograd_timings.py), for the same layers at any width.

    Every layer may take it: it runs inside the strips (js/sanet.mjs), which bound what its
    transformed tiles hold (its input four times over, its output twice) as they bound the
    direct convolution's activations. As a rewrite of the whole graph it had raised the
    page's memory at 512 px by 29 to 40 % (docs/model.md)."""
    from .formats.winograd_timings import CHOICES

    return {
        (scaled(cin, width_divisor), scaled(cout, width_divisor)): (
            variant if width_divisor == 1 else NARROW_VARIANTS.get(variant, variant)
        )
        for (cin, cout), variant in CHOICES.items()
    }


# F(4x4) rounds about four times as much as F(2x2) per layer. The full-width model keeps its
# parity with it (5.2e-5 max abs against PyTorch); the width-16 stand-in model did not (0.0051,
# over 1/255: with few channels per sum, and attention nearly one-hot on the seeded weights,
# a rounding difference moves whole positions), and the timings that choose it are full-width
# ones. So narrower models run F(2x2) where the full-width one runs F(4x4).
NARROW_VARIANTS = {"f4x4": "f2x2"}


def time_layers(resolutions: list[int], runs: int, seed: int = 0) -> list[dict]:
    """The median milliseconds of each 3x3 layer shape of the full-width model, on a square
    image of each resolution, in each of VARIANTS (Node, wasm, one thread)."""
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
            for variant in VARIANTS:
                bundle = layer_bundle(filters, bias, relu, variant)
                cases.append(LayerRun(bundle, image, runs=runs, keep_output=False))
                labels.append({
                    "in_channels": cin, "out_channels": cout, "divisor": divisor, "relu": relu,
                    "resolution": resolution, "side": side, "variant": variant,
                })  # fmt: skip
        print(f"  timing {len(cases)} layer models so far (resolution {resolution})", flush=True)
    results = run_layers(cases)
    return [
        {**label, "ms": round(float(np.median(result["ms"])), 2)}
        for label, result in zip(labels, results, strict=True)
    ]


# The transformed filters XNNPACK holds packed for the whole session: (m + 2)^2 / 9 of the
# filter for F(m x m, 3x3), F(2x2) 1.8 x and F(4x4) 4 x. The choice takes F(4x4) where it is
# faster only within WEIGHT_BUDGET_BYTES held beyond F(2x2)'s, first where it saves the most
# time per byte: taken everywhere it held 180 MB more than F(2x2) and raised the page's memory
# at 512 px by 41 % over the direct graph's (`doit bench`, 2026-12-07: 655 MB against 463). With
# this budget it takes every shape up to 256 channels and leaves the 512-channel ones to
# F(2x2); the wasm heap after a 512-px stylization is then the direct graph's (407 MB in Node).
WEIGHT_BUDGET_BYTES = 48 * 2**20
TRANSFORMED_TILE = {"f2x2": 16, "f4x4": 36}  # (m + 2)^2: products per channel pair and tile


def held_weight_bytes(cin: int, cout: int, variant: str) -> int:
    """The bytes of one layer's transformed filters (float32) that `variant` holds."""
    return 4 * TRANSFORMED_TILE[variant] * cin * cout


def choose_variants(
    timings: list[dict], weight_budget_bytes: int = WEIGHT_BUDGET_BYTES
) -> dict[tuple[int, int], str]:
    """(in, out) channels -> the variant each layer of that shape runs. Timed per layer shape,
    summed over the model's layers of those channels (the 512 -> 512 layers run at 1/8 and
    1/16 of the image's side); a Winograd variant is a candidate only if it is faster than
    direct at every resolution timed. Each shape takes its candidate that holds the fewest
    weights, then moves to a faster one while the weights held beyond those stay within
    `weight_budget_bytes`, the moves that save the most milliseconds per byte first."""
    counts = layer_shapes()
    totals: dict[tuple[int, int], dict[str, dict[int, float]]] = {}
    for entry in timings:
        key = (entry["in_channels"], entry["out_channels"])
        layers = counts[key + (entry["divisor"], entry["relu"])]
        by_resolution = totals.setdefault(key, {}).setdefault(entry["variant"], {})
        by_resolution[entry["resolution"]] = (
            by_resolution.get(entry["resolution"], 0.0) + layers * entry["ms"]
        )
    layer_counts: dict[tuple[int, int], int] = {}
    for (cin, cout, _, _), layers in counts.items():
        layer_counts[cin, cout] = layer_counts.get((cin, cout), 0) + layers
    choices, moves = {}, []
    for key, variants in totals.items():
        direct = variants["direct"]
        faster = {
            name: sum(times.values())
            for name, times in variants.items()
            if name != "direct" and all(times[r] < direct[r] for r in direct)
        }
        if not faster:
            continue

        def held(name: str, key: tuple[int, int] = key) -> int:
            return layer_counts[key] * held_weight_bytes(*key, name)

        choices[key] = min(faster, key=lambda name: (held(name), faster[name]))
        for name, ms in faster.items():
            saved, extra = faster[choices[key]] - ms, held(name) - held(choices[key])
            if saved > 0:
                moves.append((saved / extra if extra else float("inf"), key, name, extra))
    spent = 0
    for _, key, name, extra in sorted(moves, key=lambda move: move[0], reverse=True):
        if spent + extra <= weight_budget_bytes:
            choices[key], spent = name, spent + extra
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
        f"'runs': {runs!r}, 'weight_budget_bytes': {WEIGHT_BUDGET_BYTES!r}}}\n\n"
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
    print(f"{'in':>4} {'out':>4} {'side':>5} {'variant':>8} {'ms':>9} {'x direct':>9}")
    direct = {(e["in_channels"], e["out_channels"], e["side"]): e["ms"] for e in timings
              if e["variant"] == "direct"}  # fmt: skip
    for e in timings:
        ratio = e["ms"] / direct[e["in_channels"], e["out_channels"], e["side"]]
        print(f"{e['in_channels']:>4} {e['out_channels']:>4} {e['side']:>5} {e['variant']:>8} "
              f"{e['ms']:>9.1f} {ratio:>9.2f}")  # fmt: skip
    print("choice:", choose_variants(timings))
    if args.write:
        write_timings_module(timings, args.resolutions, args.runs)
        print(f"wrote {TIMINGS_MODULE.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
