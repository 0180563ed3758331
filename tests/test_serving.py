"""The tfstyle SavedModel and the TFJS bundle (tiny width): the serving contract and parity."""

from __future__ import annotations

import json

import numpy as np
import pytest
import tensorflow as tf
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sanet_tfjs.formats.tfjs_graph import GraphBundle, GraphRewriteError, expose_style_features
from sanet_tfjs.runtimes.node import run_in_node
from sanet_tfjs.runtimes.tensorflow import saved_model_stylize
from sanet_tfjs.stages.tfjs import run_tfjs_stage
from sanet_tfjs.stylize import (
    MIN_MAX_RESOLUTION,
    MIN_SIDE,
    StylizeInputError,
    check_inputs,
    reference_stylize,
)
from sanet_tfjs.tfjs_convert import UNSTABLE_NODE_ATTR
from tests.conftest import FIDELITY, ONE_LEVEL, TINY


@pytest.fixture(scope="module")
def model(tiny_model):
    return tiny_model


def image(seed: int, height: int, width: int) -> np.ndarray:
    return np.random.default_rng(seed).random((height, width, 3), dtype=np.float32)


# (content HxW, style HxW, iters, max_resolution): odd, strips, scaled down or not, iters 1..3.
CASES = [
    ((41, 67), (33, 29), 1, 512),
    ((120, 90), (64, 200), 3, 512),
    ((257, 181), (99, 131), 2, 100),
    ((300, 40), (40, 300), 1, 200),
    ((17, 17), (18, 25), 1, 25),
]

BAD = [
    # (content shape, style shape, iters, max_resolution, message fragment)
    ((0, 20, 3), (20, 20, 3), 1, 64, "content is empty"),
    ((20, 20, 3), (20, 20, 3), 0, 64, "iters must be"),
    ((20, 20, 3), (20, 20, 3), 1, 10, "max_resolution must be"),
    ((16, 40, 3), (20, 20, 3), 1, 64, "content is too small"),
    ((20, 20, 3), (400, 20, 3), 1, 256, "style is too small"),
    ((20, 20, 4), (20, 20, 3), 1, 64, "content must be [height, width, 3]"),
]


def test_signature_contract(tiny_build):
    signature = tf.saved_model.load(str(tiny_build / "tfstyle" / "saved_model")).signatures[
        "serving_default"
    ]
    inputs = signature.structured_input_signature[1]
    assert {name: (spec.dtype, spec.shape.as_list()) for name, spec in inputs.items()} == {
        "content": (tf.float32, [None, None, 3]),
        "style": (tf.float32, [None, None, 3]),
        "iters": (tf.int32, []),
        "max_resolution": (tf.int32, []),
    }
    assert list(signature.structured_outputs) == ["result", "style4_1", "style5_1"]
    text = (tiny_build / "tfjs" / "model.json").read_text()
    assert text == json.dumps(json.loads(text), sort_keys=True, separators=(",", ":"))
    nodes = json.loads(text)["modelTopology"]["node"]
    assert not [n["name"] for n in nodes if UNSTABLE_NODE_ATTR in n.get("attr", {})]
    topology = json.loads(text)["signature"]
    assert {name.split(":")[0] for name in topology["inputs"]} == set(inputs)
    assert sorted(topology["outputs"]) == ["result", "style4_1", "style5_1"]


def test_saved_model_matches_pytorch_on_any_sizes(tiny_build, model):
    run = saved_model_stylize(tiny_build / "tfstyle" / "saved_model")
    for index, (content_hw, style_hw, iters, max_resolution) in enumerate(CASES):
        content, style = image(index, *content_hw), image(50 + index, *style_hw)
        result = run(content, style, iters, max_resolution)
        assert result.shape == content.shape
        expected = reference_stylize(model, content, style, iters, max_resolution)
        assert np.abs(result - expected).max() <= ONE_LEVEL, (content_hw, iters, max_resolution)


def test_tfjs_matches_pytorch_on_any_sizes(tiny_build, model):
    cases = [
        (image(i, *c_hw), image(50 + i, *s_hw), iters, res)
        for i, (c_hw, s_hw, iters, res) in enumerate(CASES)
    ]
    report = run_in_node(tiny_build / "tfjs", cases)
    assert report["backend"] == "wasm"
    for (content, style, iters, res), entry in zip(cases, report["results"], strict=True):
        assert entry["shape"] == list(content.shape)
        expected = reference_stylize(model, content, style, iters, res)
        assert np.abs(entry["result"] - expected).max() <= ONE_LEVEL
        # again with the first run's style features fed back and a blank style image: the
        # style's picture still, so the features fed are the ones used
        assert np.abs(entry["restyled"] - expected).max() <= ONE_LEVEL


def test_tfjs_stylizes_a_1024_px_photo_with_a_512_px_style(tiny_build, model):
    """The case that ran wasm out of memory before the graph rewrites and the sliced
    attention (the tiny width shrinks the activations 8x, not the attention matrix)."""
    content, style = image(7, 1024, 1024), image(8, 512, 512)
    (entry,) = run_in_node(tiny_build / "tfjs", [(content, style, 1, 1024)])["results"]
    assert entry.get("error") is None and entry["shape"] == [1024, 1024, 3]
    expected = reference_stylize(model, content, style, 1, 1024)
    assert np.abs(entry["result"] - expected).max() <= ONE_LEVEL
    # wasm heap for this case: 821 MB with the converter's own graph, 424 MB rewritten
    assert entry["heapBytes"] < 600e6, entry["heapBytes"]


def test_bundle_stores_each_weight_once(tiny_build):
    report = json.loads((tiny_build / "tfjs.json").read_text())
    assert report["passed"] is True
    assert report["size"]["ratio"] <= 1.02
    manifest = json.loads((tiny_build / "tfjs" / "model.json").read_text())["weightsManifest"]
    names = [weight["name"] for group in manifest for weight in group["weights"]]
    assert len(names) == len(set(names))


def test_bundle_names_where_the_style_features_are_fed(tiny_build):
    """model.json tells the page where to feed an earlier run's style features: an Identity
    before each loop variable's Enter; the stage checked the fed-back runs against PyTorch."""
    model = json.loads((tiny_build / "tfjs" / "model.json").read_text())
    feeds = model["userDefinedMetadata"]["style_feature_inputs"]
    assert sorted(feeds) == ["style4_1", "style5_1"]
    nodes = model["modelTopology"]["node"]
    for name in feeds.values():
        (node,) = [n for n in nodes if n["name"] == name]
        assert node["op"] == "Identity"
        assert [n["op"] for n in nodes if name in n.get("input", [])] == ["Enter"]
    report = json.loads((tiny_build / "tfjs.json").read_text())
    assert report["style_features_fed_back"]["passed"] is True
    timings = json.loads((tiny_build / "tfjs_timings.json").read_text())
    assert [row["pair"] for row in timings["pairs"]] == [row["pair"] for row in report["pairs"]]
    assert all(row["restyled_ms"] > 0 for row in timings["pairs"])
    assert not any("ms" in key for row in report["pairs"] for key in row)  # not in the product
    older = GraphBundle({"signature": {"outputs": {"result": {}}}, "modelTopology": {"node": []}})
    with pytest.raises(GraphRewriteError, match=r"no output 'style4_1'.*rebuild the tfstyle"):
        expose_style_features(older)


def test_saved_model_rejects_bad_input_clearly(tiny_build):
    run = saved_model_stylize(tiny_build / "tfstyle" / "saved_model")
    for content_shape, style_shape, iters, max_resolution, fragment in BAD:
        with pytest.raises(tf.errors.InvalidArgumentError) as error:
            run(np.zeros(content_shape, np.float32), np.zeros(style_shape, np.float32), iters,
                max_resolution)  # fmt: skip
        assert fragment in str(error.value)


def test_tfjs_and_python_reject_the_same_inputs(tiny_build):
    report = run_in_node(
        tiny_build / "tfjs",
        [(np.zeros(c, np.float32), np.zeros(s, np.float32), it, res) for c, s, it, res, _ in BAD],
    )
    for (content_shape, style_shape, iters, max_resolution, fragment), entry in zip(
        BAD, report["results"], strict=True
    ):
        assert fragment in entry.get("error", ""), entry
        with pytest.raises(StylizeInputError, match=fragment.replace("[", r"\[")):
            check_inputs(content_shape, style_shape, iters, max_resolution)


@pytest.mark.parametrize("quantization", ["float16", "auto"])
def test_quantized_bundles_are_measured_not_enforced(
    tiny_build, patched_dir, tmp_path, quantization, request
):
    """The small bundle beside the exact one: its size (and an auto bundle's plan) reported;
    the exact one still held to the parity tolerance, from the same conversion."""
    report_path = tmp_path / "tfjs.json"
    plan_dir = str(request.getfixturevalue("tiny_plan")) if quantization == "auto" else None
    small_dir = tmp_path / "tfjs_small"
    run_tfjs_stage(
        str(tiny_build / "tfstyle"), str(patched_dir), str(tmp_path / "tfjs"), str(report_path),
        str(tmp_path / "timings.json"), TINY, 4 * 1024 * 1024, quantization, True, True, 1.02,
        ONE_LEVEL, plan_dir, str(small_dir),
    )  # fmt: skip
    report = json.loads(report_path.read_text())
    assert report["quantization"] == "none" and report["passed"] is True  # the exact bundle
    assert (tmp_path / "tfjs" / "model.json").read_bytes() != (
        small_dir / "model.json"
    ).read_bytes()
    small = report["small"]
    assert small["quantization"] == quantization
    if quantization == "float16":
        assert 0.49 <= small["size"]["ratio"] <= 0.52
        assert not (small_dir / "fidelity.json").exists()
        return
    plan = small["quantization_plan"]
    assert plan["chosen"]["psnr_db"] >= FIDELITY["psnr_db"]
    assert plan["chosen"]["ssim"] >= FIDELITY["ssim"]
    # the bundle is what the plan chose (plus the small constants it leaves alone)
    assert small["size"]["weights"] == pytest.approx(plan["chosen"]["bytes"], rel=0.02)
    assert small["size"]["ratio"] < 0.5
    assert {layer["dtype"] for layer in plan["layers"]} >= {"uint8"}
    fidelity = json.loads((small_dir / "fidelity.json").read_text())
    assert fidelity["psnr_db"] == plan["chosen"]["psnr_db"]


# Sides from 1 (strips) to 130, dense around the minimum side (16, 17, 18) and its
# scaled-down twin: a side that max_resolution shrinks to just under or over 17.
_sides = st.one_of(st.integers(1, 130), st.sampled_from([MIN_SIDE - 1, MIN_SIDE, MIN_SIDE + 1]))


@settings(
    max_examples=25,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    content_hw=st.tuples(_sides, _sides),
    style_hw=st.tuples(_sides, _sides),
    iters=st.integers(1, 3),
    max_resolution=st.one_of(st.integers(MIN_MAX_RESOLUTION, 140), st.just(512)),
    seed=st.integers(0, 2**16),
)
def test_signature_property_matches_the_pytorch_contract(
    saved_model_run, model, content_hw, style_hw, iters, max_resolution, seed
):
    """Any sizes, iters and max_resolution: the SavedModel either matches PyTorch within one
    level, or both refuse the input with the same message."""
    content, style = image(seed, *content_hw), image(seed + 1, *style_hw)
    try:
        check_inputs(content.shape, style.shape, iters, max_resolution)
    except StylizeInputError as refusal:
        with pytest.raises(tf.errors.InvalidArgumentError) as error:
            saved_model_run(content, style, iters, max_resolution)
        assert str(refusal).split(":")[0] in str(error.value)
        return
    result = saved_model_run(content, style, iters, max_resolution)
    expected = reference_stylize(model, content, style, iters, max_resolution)
    assert result.shape == content.shape
    assert np.abs(result - expected).max() <= ONE_LEVEL


@pytest.fixture(scope="module")
def saved_model_run(tiny_build):
    return saved_model_stylize(tiny_build / "tfstyle" / "saved_model")
