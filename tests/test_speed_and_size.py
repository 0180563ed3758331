"""The TFJS graph rewrites, the quantized bundles and the benchmark stage (tiny width)."""

from __future__ import annotations

import copy
import json
import re

import numpy as np
import pytest
import torch

from sanet_tfjs.architecture import FEATURES, scaled
from sanet_tfjs.bench import BASELINE_BUNDLE, PEER, WINOGRAD_BUNDLE, browser_plan
from sanet_tfjs.formats.tfjs_graph import (
    LOOP_PLUMBING,
    MATMUL_ADJOINTS,
    GraphBundle,
    GraphRewriteError,
    cancel_layout_transposes,
    constant_sources,
    fuse_conv_relu,
    matmul_adjoints,
    optimize,
    unfold_matmul_adjoints,
)
from sanet_tfjs.images import quality
from sanet_tfjs.model import ATTENTION_CHUNKS, PatchedSANet
from sanet_tfjs.quantize import (
    CURVE_STEP_FRACTION,
    PLAN_JSON,
    SMALL_TENSOR_ELEMENTS,
    FidelityTarget,
    QuantizationError,
    bundle_encodings,
    choose_point,
    gptq_uint8,
    load_plan,
    round_to_nearest_uint8,
)
from sanet_tfjs.stages.bench import run_bench_stage
from sanet_tfjs.tfjs_convert import (
    ATTENTION_MATMUL_RANK,
    ConversionError,
    finish_bundle,
    run_converter,
)
from sanet_tfjs.winograd import model_layers, winograd_choices
from tests.conftest import FIDELITY, TINY


@pytest.fixture(scope="module")
def raw_bundle(tiny_build, tmp_path_factory):
    """The converter's own bundle of the tiny TFStyle model, before any rewrite."""
    folder = tmp_path_factory.mktemp("raw") / "model"
    run_converter(tiny_build / "tfstyle" / "saved_model", folder)
    return folder


def test_a_converter_failure_names_the_saved_model(tmp_path):
    broken = tmp_path / "saved_model"
    broken.mkdir()
    (broken / "saved_model.pb").write_bytes(b"not a protocol buffer")
    with pytest.raises(ConversionError, match=re.escape(f"converter failed on {broken}")):
        run_converter(broken, tmp_path / "model")
    assert not (tmp_path / "model" / "model.json").exists()


def test_the_built_graph_has_no_transposed_matmul_operands(tiny_build, raw_bundle):
    """The converter folds the attention's transposes into adj_x/adj_y, which TensorFlow.js's
    wasm kernel runs 10-45x slower; the tfjs stage (whose parity check in Node passed in
    tiny_build) unfolds them all, and then runs the attention inside the transform's op."""
    raw = GraphBundle.load(raw_bundle)
    # one per slice of the relu4_1 attention, one for the relu5_1 attention
    adjoints = matmul_adjoints(raw)
    assert adjoints == ATTENTION_CHUNKS + 1
    # each flag becomes a Transpose of the operand
    transposed = transposed_matmul_operands(raw)
    assert unfold_matmul_adjoints(raw, ATTENTION_MATMUL_RANK) == adjoints
    assert matmul_adjoints(raw) == 0 and transposed_matmul_operands(raw) - transposed == adjoints
    # the built graph: no MatMul left at all (js/sanet.mjs's SanetTransform runs the attention)
    built = GraphBundle.load(tiny_build / "tfjs")
    assert not [node for node in built.nodes if node["op"] in MATMUL_ADJOINTS]


def transposed_matmul_operands(bundle: GraphBundle) -> int:
    op_of = {node["name"]: node["op"] for node in bundle.nodes}
    return sum(
        op_of[ref.split(":")[0]] == "Transpose"
        for node in bundle.nodes
        if node["op"] in MATMUL_ADJOINTS
        for ref in node["input"][:2]
    )


def large_weights(bundle: GraphBundle) -> list[bytes]:
    """Each filter and bias as its sorted values: the same list whatever the layout."""
    return sorted(
        np.sort(data.ravel()).tobytes()
        for data in bundle.weights.values()
        if data.dtype == np.float32 and data.size >= 64
    )


def test_rewrites_keep_every_weight_once_and_take_them_out_of_the_loop(raw_bundle):
    raw = GraphBundle.load(raw_bundle)
    rewritten = GraphBundle.load(raw_bundle)
    choices = winograd_choices(TINY)
    changes = optimize(rewritten, ATTENTION_MATMUL_RANK, choices)
    assert changes["matmul_adjoints_unfolded"] == ATTENTION_CHUNKS + 1
    # Winograd runs in the strips' ops, for every convolution there whose shape is chosen;
    # relu5_1's, the one left in the graph, stays direct
    relu5_1 = scaled(FEATURES, TINY)
    chosen = [(layer.in_channels, layer.out_channels) in choices for layer in model_layers(TINY)]
    assert changes["convolutions_made_winograd"] == sum(chosen) - int((relu5_1,) * 2 in choices)
    assert changes["convolutions_made_winograd"] > 0
    convolutions = sum(node["op"] in ("Conv2D", "_FusedConv2D") for node in raw.nodes)
    assert changes["weight_transposes_folded"] == convolutions  # one per convolution's filter
    assert changes["weight_inputs_bypassing_loop_plumbing"] > 0 and changes["nodes_pruned"] > 0
    # every Pad's cond (onnx-tf's) is gone: only the loop's and the iteration's remain
    assert changes["constant_switches_resolved"] > 0
    op_of = {node["name"]: node["op"] for node in rewritten.nodes}
    switches = [node for node in rewritten.nodes if node["op"] == "Switch"]
    assert switches and all(op_of[n["input"][1].split(":")[0]] != "Const" for n in switches)
    pads = [node for node in rewritten.nodes if node["op"] in ("MirrorPad", "PadV2")]
    assert pads and all(op_of[n["input"][0].split(":")[0]] != "Switch" for n in pads)
    # the activations stay NHWC between convolutions, with each Relu fused into its conv
    assert changes["layout_transposes_removed"] > 0 and changes["relus_fused_into_convolutions"] > 0
    assert cancel_layout_transposes(rewritten) == 0 and fuse_conv_relu(rewritten) == 0
    assert not [
        n
        for n in rewritten.nodes
        if n["op"] == "MirrorPad" and op_of[n["input"][0].split(":")[0]] == "Transpose"
    ]
    assert changes["nodes_after"] == len(rewritten.nodes)
    assert changes["transposes_after"] < changes["transposes_before"]
    # every filter and bias is still there exactly once (some transposed), nothing else added
    assert large_weights(rewritten) == large_weights(raw)
    # no weight is passed along the loop's plumbing, and no weight is transposed at run time
    nodes = {node["name"]: node for node in rewritten.nodes}
    sources = constant_sources(rewritten)
    for node in rewritten.nodes:
        if node["op"] not in LOOP_PLUMBING | {"Merge"}:
            assert not set(node.get("input", [])) & set(sources), node["name"]
        if node["op"] == "Transpose":
            assert node["input"][0] not in rewritten.weights, node["name"]
    assert set(rewritten.weights) <= set(nodes)  # no weight without its Const
    # every node is named by its position but those the signature names
    signature = rewritten.model["signature"]
    named = {spec["name"].split(":")[0] for part in signature.values() for spec in part.values()}
    assert changes["nodes_renamed"] == len(nodes) - len(named)
    assert all(len(name) <= 4 for name in set(nodes) - named) and named <= set(nodes)
    with pytest.raises(GraphRewriteError, match="rank >= 2"):
        optimize(rewritten, 1, {})


@pytest.mark.parametrize(
    ("quantization", "low", "high"), [("float16", 0.49, 0.51), ("uint8", 0.24, 0.26)]
)
def test_quantized_bundles_shrink_the_weights(raw_bundle, tmp_path, quantization, low, high):
    float32 = tmp_path / "float32"
    quantized = tmp_path / quantization
    finish_bundle(raw_bundle, float32, 4 * 1024 * 1024, "none", True)
    finish_bundle(raw_bundle, quantized, 4 * 1024 * 1024, quantization, True)

    def weight_bytes(folder):
        return sum(p.stat().st_size for p in folder.glob("*.bin"))

    assert low <= weight_bytes(quantized) / weight_bytes(float32) <= high
    manifest = json.loads((quantized / "model.json").read_text())["weightsManifest"]
    kinds = {w.get("quantization", {}).get("dtype") for g in manifest for w in g["weights"]}
    assert quantization in kinds
    # Small constants (shapes, the max-pool padding value) stay exact.
    loaded = GraphBundle.load(quantized)
    reference = GraphBundle.load(float32)
    small = [name for name, data in reference.weights.items() if data.size < 64]
    assert small
    for name in small:
        np.testing.assert_array_equal(loaded.weights[name], reference.weights[name])


def test_a_swap_reruns_from_its_module_with_the_whole_stylizations_result(tiny_model):
    """The plan's evaluator starts at the first module a swapped tensor changes; its result
    must be the whole stylization's, bit for bit (early, late and relu4_1-edge encoder
    tensors, the attention's, the decoder's first and last)."""
    from sanet_tfjs.images import bench_images
    from sanet_tfjs.quantize import _Evaluator
    from sanet_tfjs.stylize import reference_stylize

    content, style = bench_images()
    evaluator = _Evaluator(tiny_model, (64, 96))
    parameters = dict(tiny_model.named_parameters())
    rng = np.random.default_rng(3)
    swaps = [
        ("encoder.2.weight",),
        ("encoder.29.weight",),  # the first layer after relu4_1
        ("encoder.25.bias", "decoder.28.weight"),  # the earliest decides
        (next(n for n in parameters if n.startswith("transform.sanet4_1.")),),
        ("decoder.1.weight",),
        ("decoder.28.bias",),
    ]
    for resolution in (64, 96):
        reference = reference_stylize(tiny_model, content, style, 1, resolution)
        assert np.array_equal(evaluator.references[resolution], reference)
        for names in swaps:
            values = {
                name: (parameters[name].detach().numpy() * 1.01 + 1e-3).astype(np.float32)
                for name in names
            }
            values = {
                n: v + rng.normal(0, 1e-3, v.shape).astype(np.float32) for n, v in values.items()
            }
            swapped = evaluator._swapped(values, resolution)
            saved = {name: parameters[name].detach().clone() for name in names}
            with torch.no_grad():
                for name in names:
                    parameters[name].copy_(torch.from_numpy(values[name]))
            try:
                whole = reference_stylize(tiny_model, content, style, 1, resolution)
            finally:
                with torch.no_grad():
                    for name in names:
                        parameters[name].copy_(saved[name])
            assert not np.array_equal(whole, reference), names
            assert np.array_equal(swapped, whole), (names, resolution)
        # the kept inputs are left as they were: the reference again, from the decoder's end
        last = {"decoder.28.bias": parameters["decoder.28.bias"].detach().numpy().copy()}
        assert np.array_equal(evaluator._swapped(last, resolution), reference)


def test_small_tensors_are_measured_together_and_large_ones_alone(tiny_plan):
    report = json.loads((tiny_plan / PLAN_JSON).read_text())
    small = {
        layer["parameter"]
        for layer in report["layers"]
        if layer["elements"] < SMALL_TENSOR_ELEMENTS
    }
    assert small and set(report["measured_together"]) == small
    by_name = {layer["parameter"]: layer for layer in report["layers"]}
    assert len({by_name[name]["dtype"] for name in small}) == 1  # one unit, one dtype
    assert len({json.dumps(by_name[name]["alone_psnr_db"]) for name in small}) == 1


def test_gptq_keeps_a_layer_output_closer_than_rounding():
    """Same uint8 grid (same bytes) as tensorflowjs's own rounding, a smaller output error."""
    rng = np.random.default_rng(0)
    weight = rng.normal(0, 0.05, (16, 8, 3, 3)).astype(np.float32)
    # correlated, non-negative inputs, as after a ReLU: where GPTQ's error spreading pays
    inputs = np.maximum(rng.normal(size=(72, 72)) @ rng.normal(size=(72, 3000)), 0)
    gptq = gptq_uint8(weight, inputs @ inputs.T)
    nearest = round_to_nearest_uint8(weight)
    assert gptq.codes.dtype == np.uint8 and gptq.codes.shape == weight.shape
    assert (gptq.min, gptq.scale) == (nearest.min, nearest.scale)

    def output_error(encoded):
        return np.sum(((weight - encoded.dequantized()).reshape(16, -1) @ inputs) ** 2)

    assert output_error(gptq) < 0.6 * output_error(nearest)  # 10.7 against 21.1 here
    from tensorflowjs.quantization import dequantize_weights, quantize_weights

    data, metadata = quantize_weights(weight, np.uint8)  # what `tfjs.quantization: uint8` does
    np.testing.assert_array_equal(dequantize_weights(data, metadata), nearest.dequantized())


def test_the_chosen_point_is_the_best_of_the_smallest_that_meet_the_target():
    target = FidelityTarget(psnr_db=35.0, ssim=0.99, resolutions=(64,))
    curve = [
        {"bytes": 10000, "psnr_db": None, "ssim": 1.0},
        {"bytes": 5000, "psnr_db": 50.0, "ssim": 0.999},
        {"bytes": 2600, "psnr_db": 38.0, "ssim": 0.995},
        {"bytes": 2595, "psnr_db": 36.0, "ssim": 0.995},  # 0.05 % less for 2 dB: not taken
        {"bytes": 2500, "psnr_db": 34.0, "ssim": 0.999},  # below the target
    ]
    assert CURVE_STEP_FRACTION * 10000 == 10  # the window the test's figures straddle
    assert choose_point(curve, target, 10000) == 2
    curve[3]["bytes"] = 2580  # 0.2 % less: the smallest wins
    assert choose_point(curve, target, 10000) == 3
    assert choose_point(curve, FidelityTarget(60.0, 0.99, (64,)), 10000) == 0  # only float32
    with pytest.raises(QuantizationError, match="at least one resolution"):
        FidelityTarget(35.0, 0.99, ())


def test_auto_bundle_stores_exactly_the_plans_values(raw_bundle, tiny_model, tiny_plan, tmp_path):
    progress = (tiny_plan.parent / "progress.txt").read_text().splitlines()
    assert len(progress) == 3 and "of float32" in progress[-1]  # one line per phase
    plan = load_plan(tiny_plan, tiny_model)  # what the plan stage stored, read back whole
    stored = json.loads((tiny_plan / PLAN_JSON).read_text())
    assert {**plan.report(), "weights_sha256": stored["weights_sha256"]} == stored
    assert plan.target == FidelityTarget(**FIDELITY)
    other_weights = copy.deepcopy(tiny_model)
    with torch.no_grad():
        max(other_weights.parameters(), key=torch.numel)[0] += 1e-3  # one the plan covers
    for other in (PatchedSANet(2 * TINY, folded=True), other_weights):
        with pytest.raises(QuantizationError, match="made for other weights"):
            load_plan(tiny_plan, other)
    with pytest.raises(QuantizationError, match="no quantization plan in"):
        load_plan(tmp_path, tiny_model)
    chosen = plan.curve[plan.chosen]
    assert chosen["psnr_db"] >= FIDELITY["psnr_db"] and chosen["ssim"] >= FIDELITY["ssim"]
    # the target holds at every resolution, and the point's figures are the worst of them
    assert sorted(chosen["at"]) == ["64", "96"]
    assert chosen["psnr_db"] == min(m["psnr_db"] for m in chosen["at"].values())
    assert all(FidelityTarget(**FIDELITY).met_by(m) for m in chosen["at"].values())
    assert plan.curve[0]["bytes"] == plan.float32_bytes
    assert [p["bytes"] for p in plan.curve] == sorted(
        (p["bytes"] for p in plan.curve), reverse=True
    )
    assert {c.method for c in plan.candidates.values()} == {"gptq", "round-to-nearest"}
    float32, auto = tmp_path / "float32", tmp_path / "auto"
    finish_bundle(raw_bundle, float32, 4 * 1024 * 1024, "none", True)
    finish_bundle(raw_bundle, auto, 4 * 1024 * 1024, "auto", True, plan)
    reference, loaded = GraphBundle.load(float32), GraphBundle.load(auto)
    encodings, unmatched = bundle_encodings(reference.weights, plan)
    assert not unmatched  # every filter and bias of the bundle is a parameter of the model
    kinds = {"float16": 0, "uint8": 0}
    for name, value in reference.weights.items():
        encoding = encodings.get(name)
        if encoding == "float16":
            expected, kinds["float16"] = (
                value.astype(np.float16).astype(np.float32),
                kinds["float16"] + 1,
            )
        elif isinstance(encoding, dict):
            meta = encoding["quantization"]
            expected = (encoding["data"].astype(np.float64) * meta["scale"] + meta["min"]).astype(
                np.float32
            )
            kinds["uint8"] += 1
        else:
            expected = value
        np.testing.assert_array_equal(loaded.weights[name], expected, err_msg=name)
    assert kinds == {dtype: sum(1 for d in plan.choices.values() if d == dtype) for dtype in kinds}
    assert kinds["uint8"] > 0
    with pytest.raises(ConversionError, match="needs a plan"):
        finish_bundle(raw_bundle, tmp_path / "no-plan", 4 * 1024 * 1024, "auto", True)


def test_quality_measures():
    rng = np.random.default_rng(0)
    image = rng.random((40, 30, 3), dtype=np.float32)
    same = quality(image, image)
    assert same["max_abs"] == 0 and same["ssim"] == pytest.approx(1.0)
    noisy = np.clip(image + rng.normal(0, 0.01, image.shape).astype(np.float32), 0, 1)
    measured = quality(noisy, image)
    assert 38 < measured["psnr_db"] < 42  # 20 log10(1 / 0.01) = 40 dB, less the clipping
    assert measured["ssim"] < 1.0
    with pytest.raises(ValueError, match="at least 11 px"):
        quality(image[:10], image[:10])


def _ssim_by_definition(a: np.ndarray, b: np.ndarray) -> float:
    """SSIM straight from its definition, every 11x11 window in float64."""
    taps = np.arange(11) - 5.0
    window = np.exp(-0.5 * taps**2 / 1.5**2)
    window = np.outer(window, window) / window.sum() ** 2
    x, y = a.astype(np.float64), b.astype(np.float64)

    def average(image: np.ndarray) -> np.ndarray:  # (H-10, W-10, C): each window's mean
        views = np.lib.stride_tricks.sliding_window_view(image, (11, 11), axis=(0, 1))
        return np.einsum("hwcij,ij->hwc", views, window)

    mx, my = average(x), average(y)
    vx, vy, cxy = average(x * x) - mx**2, average(y * y) - my**2, average(x * y) - mx * my
    c1, c2 = 0.01**2, 0.03**2
    return float(
        np.mean((2 * mx * my + c1) * (2 * cxy + c2) / ((mx**2 + my**2 + c1) * (vx + vy + c2)))
    )


def test_ssim_matches_its_definition_on_large_pictures():
    # tf.image.ssim sums each channel's map in float32 and drifts at this size (0.9930 for
    # 0.9853 here); the quantization plan judges 1024 px pictures to 0.99.
    rng = np.random.default_rng(1)
    for side, noise in ((1024, 0.05), (300, 0.2), (11, 0.1)):
        a = rng.random((side, side + 7, 3), dtype=np.float32)
        b = np.clip(a + rng.normal(0, noise, a.shape), 0, 1).astype(np.float32)
        assert quality(b, a)["ssim"] == pytest.approx(_ssim_by_definition(b, a), abs=1e-6), side


def test_browser_plan():
    """float32 and the peer at every thread count, the other bundles at the first; the
    converter's graph at the first resolution only; webgl has no threads; the large
    resolution for wasm float32 and the peer at the most threads; the same style again for
    float32 and the peer, not at the large resolution."""
    plan = browser_plan(
        ["float32", "float16", BASELINE_BUNDLE], ["wasm", "webgl"], [256, 512], [1, 2], True, 1024
    )
    both = [256, 512]
    assert [
        (c.name, c.harness, c.bundle, c.threads, c.resolutions, c.restyle_resolutions) for c in plan
    ] == [
        ("TF.js wasm float32, 1 thread", "index.html", "float32", 1, both, both),
        ("TF.js wasm float32, 2 threads", "index.html", "float32", 2, [256, 512, 1024], both),
        ("TF.js wasm float16, 1 thread", "index.html", "float16", 1, both, []),
        (f"TF.js wasm {BASELINE_BUNDLE}, 1 thread", "index.html", BASELINE_BUNDLE, 1, [256], []),
        ("TF.js webgl float32", "index.html", "float32", None, both, both),
        ("TF.js webgl float16", "index.html", "float16", None, both, []),
        (f"TF.js webgl {BASELINE_BUNDLE}", "index.html", BASELINE_BUNDLE, None, [256], []),
        (f"{PEER} wasm, 1 thread", "ort.html", None, 1, both, both),
        (f"{PEER} wasm, 2 threads", "ort.html", None, 2, [256, 512, 1024], both),
    ]
    # page memory: at each resolution on one thread (and webgl), at the last one with threads,
    # once they are stopped
    assert [[res for res in c.resolutions if c.page_memory_at(res)] for c in plan] == [
        both, [1024], both, [256], both, both, [256], both, [1024],
    ]  # fmt: skip
    assert {c.page_memory_at(c.resolutions[-1]) for c in plan if c.threads == 2} == {
        "after-stopping-threads"
    }
    assert {c.page_memory_at(res) for c in plan if c.threads != 2 for res in c.resolutions} == {
        "now"
    }


def test_bench_stage_measures_every_runtime(tiny_build, patched_dir, tiny_plan, tmp_path):
    out = tmp_path / "bench"
    run_bench_stage(
        tfstyle_dir=str(tiny_build / "tfstyle"),
        onnx_dir=str(tiny_build / "onnx"),
        patched_dir=str(patched_dir),
        out_dir=str(out),
        width_divisor=TINY,
        profile="fixture",
        shard_bytes=4 * 1024 * 1024,
        resolutions=[64, 96],
        warmup=0,
        runs=2,
        runtimes=["pytorch", "onnxruntime", "tensorflow"],
        browser_backends=["wasm"],
        quantizations=["float16", "uint8", "auto"],
        unoptimized_baseline=True,
        winograd=False,
        threads=[1, 2],
        reported_cores=4,
        onnxruntime_web=True,
        large_resolution=128,
        plan_dir=str(tiny_plan),
        photo_sizes=["160x120"],
    )
    report = json.loads((out / "bench.json").read_text())
    rows = {row["name"]: row for row in report["rows"]}
    float32, float32_2 = "TF.js wasm float32, 1 thread", "TF.js wasm float32, 2 threads"
    assert set(rows) == {
        "PyTorch",
        "ONNX Runtime",
        "TF SavedModel",
        float32,
        float32_2,
        "TF.js wasm float16, 1 thread",
        "TF.js wasm uint8, 1 thread",
        "TF.js wasm auto, 1 thread",
        f"TF.js wasm {BASELINE_BUNDLE}, 1 thread",
        f"TF.js wasm {WINOGRAD_BUNDLE}, 1 thread",  # tfjs.winograd off: the twin has it on
        f"TF.js wasm {WINOGRAD_BUNDLE}, 2 threads",
        f"{PEER} wasm, 1 thread",
        f"{PEER} wasm, 2 threads",
    }
    assert rows[float32]["backend"] == "wasm"
    assert rows[float32]["threads"] == 1 and rows[float32_2]["threads"] == 2
    assert rows[f"{PEER} wasm, 2 threads"]["threads"] == 2
    large = {"PyTorch", "ONNX Runtime", "TF SavedModel", float32_2, f"{PEER} wasm, 2 threads"}
    for name, row in rows.items():
        expected = ["64"] if BASELINE_BUNDLE in name else ["64", "96"]
        expected += ["128"] if name in large else []
        assert sorted(row["resolutions"], key=int) == expected, name  # json sorts keys as text
        for res, measured in row["resolutions"].items():
            assert len(measured["ms"]) == 2
            assert measured["median_ms"] > 0
            if row["runtime"] != PEER:  # the peer's wasm heap is not reachable from the page
                assert measured["peak_memory_bytes"] > 0
            if "backend" in row:  # a browser row: the whole tab's memory, with threads
                # only after the last resolution, its threads stopped (js/bench/workers.js)
                if (row.get("threads") or 1) == 1 or res == max(row["resolutions"], key=int):
                    assert measured["page_memory_bytes"] > 0, name
                else:
                    assert measured["page_memory_bytes"] is None, name
            if row.get("bundle") not in ("float16", "uint8", "auto"):  # quality_vs_float32
                assert measured["max_abs_vs_pytorch"] <= 1 / 255, name
    assert rows["PyTorch"]["resolutions"]["64"]["ratio_to_pytorch"] == 1.0
    names = [f"TF.js wasm {n}, 1 thread" for n in ("float32", "float16", "uint8")]
    sizes = [rows[name]["download_bytes"] for name in names]
    assert sizes == sorted(sizes, reverse=True)  # (weights alone: the quantization test above)
    assert rows[names[1]]["resolutions"]["96"]["quality_vs_float32"]["psnr_db"] > 30
    # the rewrites change no result: the converter's graph gives the same picture
    before = rows[f"TF.js wasm {BASELINE_BUNDLE}, 1 thread"]["resolutions"]["64"]
    assert before["quality_vs_float32"]["max_abs"] < 1e-5
    # two threads give the one-thread picture
    assert rows[float32_2]["resolutions"]["96"]["quality_vs_float32"]["max_abs"] <= 1 / 255
    comparison = report["peer_comparison"]
    assert [(line["threads"], line["resolution"]) for line in comparison] == [
        (1, 64), (1, 96), (2, 64), (2, 96), (2, 128),
    ]  # fmt: skip
    for line in comparison:
        assert line["tfjs_over_peer"] == pytest.approx(line["tfjs_s"] / line["peer_s"])
        speedup = line["tfjs_speedup_vs_1_thread"]  # none at the large size: no 1-thread run
        assert speedup > 0 if line["resolution"] != 128 else speedup is None
        if line["threads"] == 1 or line["resolution"] == 128:
            assert line["peer_page_memory_bytes"] > 0 and line["tfjs_page_memory_bytes"] > 0
        else:
            assert line["peer_page_memory_bytes"] is line["tfjs_page_memory_bytes"] is None
    # the same style again: PyTorch, TF.js float32 and the peer, at the two resolutions; the
    # same picture as the first stylization (the bench times it; no timing is asserted here)
    again = report["same_style_again"]
    peers = (f"{PEER} wasm, 1 thread", f"{PEER} wasm, 2 threads")
    assert sorted((line["runtime"], line["resolution"]) for line in again) == sorted(
        (name, res) for name in ("PyTorch", float32, float32_2, *peers) for res in (64, 96)
    )
    for line in again:
        assert line["max_abs_vs_first"] <= 1e-6, line
        assert line["saved"] == pytest.approx(1 - line["again_s"] / line["first_s"])
    # by the photo's size: float32 and the peer at 2 threads, at the square sizes they ran and
    # the photo at its own size (a tab of its own: its page memory too)
    peer_2 = f"{PEER} wasm, 2 threads"
    by_size = {(line["runtime"], line["size"]): line for line in report["sizes"]}
    sizes = ("64x64", "96x96", "128x128", "160x120")
    assert set(by_size) == {(name, size) for name in (float32_2, peer_2) for size in sizes}
    for name in (float32_2, peer_2):
        photo = by_size[(name, "160x120")]
        assert photo["error"] is None and photo["s"] > 0 and photo["page_memory_bytes"] > 0
    assert by_size[(float32_2, "160x120")]["wasm_heap_bytes"] > 0
    # where the time goes: float32 (direct) and its Winograd twin, layer by layer, at each
    # thread count at 96 px; each graph's layers and the rest add up to its run's time
    layers = report["layers"]
    assert {(line["threads"], line["resolution"]) for line in layers} == {(1, 96), (2, 96)}
    convolutions = [line for line in layers if line["gflop"]]
    assert len(convolutions) == 2 * (len(model_layers(TINY)) - 1)  # relu5_1's is in the graph
    assert {line["variant"]["float32"] for line in convolutions} == {"direct"}
    assert any(line["variant"][WINOGRAD_BUNDLE] == "f2x2" for line in convolutions)
    for threads in (1, 2):
        parts = [line for line in layers if line["threads"] == threads]
        (total,) = [line for line in parts if line["layer"] == "total"]
        for bundle in ("float32", WINOGRAD_BUNDLE):
            spent = sum(line["ms"][bundle] for line in parts if line is not total)
            assert spent == pytest.approx(total["ms"][bundle])
            assert all(line["ms"][bundle] > 0 for line in convolutions)
    table = (out / "bench.md").read_text()
    assert f"| {WINOGRAD_BUNDLE} / float32 |" in table
    assert f"| 160x120 | {float32_2} |" in table and "time per pixel at 160x120" in table
    assert all(f"| {name} |" in table for name in rows)
    assert f"| TF.js / {PEER} |" in table
    assert "| same style again s |" in table
    assert (out / "bench.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # the auto bundle: the plan stage's plan and curve, its quality measured in TF.js
    plan = json.loads((tiny_plan / PLAN_JSON).read_text())
    assert plan["target"] == FIDELITY and plan["chosen"]["psnr_db"] >= FIDELITY["psnr_db"]
    assert (tiny_plan / "quantization.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    auto = rows["TF.js wasm auto, 1 thread"]
    assert auto["download_bytes"] < rows["TF.js wasm float16, 1 thread"]["download_bytes"]
    assert auto["resolutions"]["64"]["quality_vs_float32"]["psnr_db"] > 30
