"""Winograd 3x3 convolutions (js/sanet.mjs winogradConv, inside the strips' op) against the
direct one, run in TensorFlow.js (Node, wasm) on random shapes, and the choice the tfjs stage
records."""

from __future__ import annotations

import json

import numpy as np
import pytest

from sanet_tfjs.architecture import FEATURES, scaled
from sanet_tfjs.formats.tfjs_graph import (
    TILED_CHAIN_OP,
    TRANSFORM_OP,
    WINOGRAD_ATTR,
    WINOGRAD_VARIANTS,
    _b64,
)
from sanet_tfjs.formats.winograd_timings import CHOICES, MEASURED, TIMINGS
from sanet_tfjs.winograd import (
    LayerRun,
    choose_variants,
    held_weight_bytes,
    layer_bundle,
    model_layers,
    run_layers,
    winograd_choices,
)
from tests.conftest import TINY

# (height, width, in, out, relu): odd and even sides, sides one pixel past a tile (m k + 1),
# the smallest the model meets (2: relu5_1 of a 17-pixel image), channels not multiples of 4.
SHAPES = [
    (5, 7, 3, 5, True),
    (2, 2, 6, 7, False),
    (9, 4, 13, 6, True),
    (1, 3, 5, 3, True),
    (17, 13, 11, 9, False),
    (4, 8, 8, 4, True),
    (6, 11, 1, 10, True),
    # an output of 8.5 MiB: the op runs it in two strips (DEFAULT_TILE_BUDGET_BYTES, 8 MiB)
    (131, 129, 20, 132, True),
]


def reflect_conv(image: np.ndarray, filters: np.ndarray, bias: np.ndarray, relu: bool):
    """The layer in float64: reflection pad 1, 3x3 convolution, bias, ReLU."""
    padded = np.pad(image.astype(np.float64), ((0, 0), (1, 1), (1, 1), (0, 0)), mode="reflect")
    height, width = image.shape[1:3]
    out = sum(
        np.einsum("nhwc,cd->nhwd", padded[:, k : k + height, l : l + width], filters[k, l])
        for k in range(3)
        for l in range(3)  # noqa: E741
    )
    out = out + bias
    return np.maximum(out, 0) if relu else out


def relative_l2(value: np.ndarray, reference: np.ndarray) -> float:
    return float(np.linalg.norm(value - reference) / np.linalg.norm(reference))


def test_winograd_matches_the_direct_convolution_on_random_shapes():
    rng = np.random.default_rng(35)
    runs, references = [], []
    for height, width, cin, cout, relu in SHAPES:
        if height == 1:  # reflection padding needs 2 pixels: the model never has 1
            height = 2
        image = rng.standard_normal((1, height, width, cin), np.float32)
        filters = (rng.standard_normal((3, 3, cin, cout)) / np.sqrt(9 * cin)).astype(np.float32)
        bias = rng.standard_normal(cout).astype(np.float32)
        reference = reflect_conv(image, filters, bias, relu)
        for variant in ("direct", *WINOGRAD_VARIANTS):
            runs.append(LayerRun(layer_bundle(filters, bias, relu, variant), image))
            references.append((variant, (height, width, cin, cout), reference))
    results = run_layers(runs)
    direct_outputs = {}
    for (variant, shape, reference), result in zip(references, results, strict=True):
        output = result["output"]
        assert output.shape == reference.shape, (variant, shape)
        if variant == "direct":
            direct_outputs[shape] = output
            continue
        direct = direct_outputs[shape]
        # the targets of the rewrite against the direct graph: relative L2 and max abs (the
        # issue's 1e-5 and 0.5 / 255 of an image), and the same against float64
        assert relative_l2(output, direct) < 1e-5, (variant, shape)
        assert np.abs(output - direct).max() < 0.5 / 255, (variant, shape)
        assert relative_l2(output, reference) < 1e-5, (variant, shape)


def test_a_layer_differs_only_in_its_variant_attr():
    rng = np.random.default_rng(0)
    filters = rng.standard_normal((3, 3, 64, 48)).astype(np.float32)
    bias = rng.standard_normal(48).astype(np.float32)
    direct = layer_bundle(filters, bias, True, "direct")
    for variant in WINOGRAD_VARIANTS:
        bundle = layer_bundle(filters, bias, True, variant)
        assert bundle.weights.keys() == direct.weights.keys()  # nothing added to the download
        (op,) = [node for node in bundle.nodes if node["op"] == TILED_CHAIN_OP]
        assert op["attr"][WINOGRAD_ATTR] == {"list": {"s": [_b64(variant)]}}


def test_the_recorded_choice_follows_the_recorded_timings():
    assert MEASURED["resolutions"] and TIMINGS
    assert CHOICES == choose_variants(TIMINGS, MEASURED["weight_budget_bytes"])
    shapes = {(layer.in_channels, layer.out_channels) for layer in model_layers()}
    assert set(CHOICES) <= shapes and set(CHOICES.values()) <= set(WINOGRAD_VARIANTS)
    for (cin, cout), variant in CHOICES.items():  # faster at every resolution, never slower
        for resolution in MEASURED["resolutions"]:
            times = {
                name: sum(
                    entry["ms"]
                    for entry in TIMINGS
                    if (entry["in_channels"], entry["out_channels"]) == (cin, cout)
                    and entry["resolution"] == resolution
                    and entry["variant"] == name
                )
                for name in ("direct", variant)
            }
            assert times[variant] < times["direct"], (cin, cout, resolution)


def test_the_choice_holds_the_transformed_weights_within_its_budget():
    counts = {}
    for layer in model_layers():
        key = (layer.in_channels, layer.out_channels)
        counts[key] = counts.get(key, 0) + 1

    def beyond_f2x2(choices):
        return sum(
            counts[key] * (held_weight_bytes(*key, variant) - held_weight_bytes(*key, "f2x2"))
            for key, variant in choices.items()
        )

    unbounded = choose_variants(TIMINGS, 2**40)  # the fastest candidate of every shape
    none = choose_variants(TIMINGS, 0)
    assert set(unbounded) == set(none) == set(CHOICES)  # the budget picks among candidates only
    assert beyond_f2x2(none) < beyond_f2x2(unbounded)
    assert beyond_f2x2(CHOICES) <= MEASURED["weight_budget_bytes"] < beyond_f2x2(unbounded)
    assert "f4x4" in CHOICES.values() and "f2x2" in CHOICES.values()
    # the 512-channel shapes, whose transformed weights are the largest, are left at F(2x2)
    assert CHOICES[512, 512] == "f2x2"


@pytest.mark.parametrize("variant", [*WINOGRAD_VARIANTS])
def test_every_timed_entry_names_a_model_layer(variant):
    shapes = {(layer.in_channels, layer.out_channels, layer.divisor) for layer in model_layers()}
    entries = [entry for entry in TIMINGS if entry["variant"] == variant]
    assert {(e["in_channels"], e["out_channels"], e["divisor"]) for e in entries} == shapes


def test_the_tfjs_stage_records_each_convolution_and_keeps_its_parity(tiny_build):
    report = json.loads((tiny_build / "tfjs.json").read_text())
    assert report["passed"]  # the stage's parity against PyTorch, with Winograd on
    record = report["convolutions_3x3"]
    assert record["winograd"] is True and record["chosen_by"] == MEASURED
    layers = record["layers"]
    # every 3x3 convolution of the model, each once: inside the strips' ops but relu5_1's,
    # which the graph runs direct
    expected = [(layer.in_channels, layer.out_channels) for layer in model_layers(TINY)]
    assert sorted((layer["in_channels"], layer["out_channels"]) for layer in layers) == sorted(
        expected
    )
    relu5_1 = scaled(FEATURES, TINY)
    in_graph = [layer for layer in layers if layer["runs_in"] == "graph"]
    assert [(layer["in_channels"], layer["out_channels"]) for layer in in_graph] == [(relu5_1,) * 2]
    assert in_graph[0]["variant"] == "direct"
    choices = winograd_choices(TINY)
    for layer in layers:
        if layer["runs_in"] != "graph":
            assert layer["runs_in"] in (TILED_CHAIN_OP, TRANSFORM_OP)
            assert layer["variant"] == choices.get(
                (layer["in_channels"], layer["out_channels"]), "direct"
            )
    assert any(layer["variant"] != "direct" for layer in layers) == bool(CHOICES)
    assert report["graph_rewrites"]["convolutions_made_winograd"] == sum(
        layer["variant"] != "direct" for layer in layers
    )
