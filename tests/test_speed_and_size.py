"""The TFJS graph rewrites, the quantized bundles and the benchmark stage (tiny width)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from sanet_tfjs.bench import BASELINE_BUNDLE, browser_plan, quality, run_bench_stage
from sanet_tfjs.tfjs_convert import ATTENTION_MATMUL_RANK, finish_bundle, run_converter
from sanet_tfjs.tfjs_graph import GraphBundle, GraphRewriteError, matmul_adjoints, optimize
from tests.conftest import TINY


@pytest.fixture(scope="module")
def raw_bundle(tiny_build, tmp_path_factory):
    """The converter's own bundle of the tiny TFStyle model, before any rewrite."""
    folder = tmp_path_factory.mktemp("raw") / "model"
    run_converter(tiny_build / "tfstyle" / "saved_model", folder)
    return folder


def test_the_built_graph_has_no_transposed_matmul_operands(tiny_build, raw_bundle):
    """The converter folds the attention's transposes into adj_x/adj_y, which TensorFlow.js's
    wasm kernel runs 10-45x slower; the tfjs stage (whose parity check in Node passed in
    tiny_build) unfolds them all."""
    assert matmul_adjoints(GraphBundle.load(raw_bundle)) == 4  # two per SANet block
    built = GraphBundle.load(tiny_build / "tfjs")
    assert matmul_adjoints(built) == 0
    transposes = [n for n in built.nodes if n["name"].endswith(("/sanet_tfjs_adj_x", "_adj_y"))]
    assert len(transposes) == 4


def test_rewrites_keep_every_weight_and_change_only_the_graph(raw_bundle):
    raw = GraphBundle.load(raw_bundle)
    rewritten = GraphBundle.load(raw_bundle)
    assert optimize(rewritten, ATTENTION_MATMUL_RANK) == {"matmul_adjoints_unfolded": 4}
    added = set(rewritten.weights) - set(raw.weights)
    assert added == {f"sanet_tfjs/swap_last_two_of_rank{ATTENTION_MATMUL_RANK}"}
    for name, data in raw.weights.items():
        np.testing.assert_array_equal(rewritten.weights[name], data)
    with pytest.raises(GraphRewriteError, match="rank >= 2"):
        optimize(rewritten, 1)


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


def test_quality_measures():
    rng = np.random.default_rng(0)
    image = rng.random((40, 30, 3), dtype=np.float32)
    same = quality(image, image)
    assert same["max_abs"] == 0 and same["ssim"] == pytest.approx(1.0)
    noisy = np.clip(image + rng.normal(0, 0.01, image.shape).astype(np.float32), 0, 1)
    measured = quality(noisy, image)
    assert 38 < measured["psnr_db"] < 42  # 20 log10(1 / 0.01) = 40 dB, less the clipping
    assert measured["ssim"] < 1.0


def test_browser_plan_times_the_converter_graph_at_the_first_resolution_only():
    plan = browser_plan(["float32", "float16", BASELINE_BUNDLE], ["wasm", "webgl"], [256, 512])
    assert plan == [
        ("float32", "wasm", [256, 512]),
        ("float16", "wasm", [256, 512]),
        (BASELINE_BUNDLE, "wasm", [256]),
        ("float32", "webgl", [256, 512]),
        ("float16", "webgl", [256, 512]),
        (BASELINE_BUNDLE, "webgl", [256]),
    ]


def test_bench_stage_measures_every_runtime(tiny_build, patched_dir, tmp_path):
    out = tmp_path / "bench"
    run_bench_stage(
        tfstyle_dir=str(tiny_build / "tfstyle"),
        onnx_dir=str(tiny_build / "onnx"),
        patched_dir=str(patched_dir),
        out_dir=str(out),
        width_divisor=TINY,
        shard_bytes=4 * 1024 * 1024,
        resolutions=[64, 96],
        warmup=0,
        runs=2,
        runtimes=["pytorch", "onnxruntime", "tensorflow"],
        browser_backends=["wasm"],
        quantizations=["float16", "uint8"],
        unoptimized_baseline=True,
    )
    report = json.loads((out / "bench.json").read_text())
    rows = {row["name"]: row for row in report["rows"]}
    assert set(rows) == {
        "PyTorch",
        "ONNX Runtime",
        "TF SavedModel",
        "TF.js wasm float32",
        "TF.js wasm float16",
        "TF.js wasm uint8",
        f"TF.js wasm {BASELINE_BUNDLE}",
    }
    assert rows["TF.js wasm float32"]["backend"] == "wasm"
    for name, row in rows.items():
        expected = ["64"] if name.endswith(BASELINE_BUNDLE) else ["64", "96"]
        assert list(row["resolutions"]) == expected, name
        for measured in row["resolutions"].values():
            assert len(measured["ms"]) == 2
            assert measured["median_ms"] > 0 and measured["peak_memory_bytes"] > 0
            if row.get("bundle") not in ("float16", "uint8"):  # those: quality_vs_float32
                assert measured["max_abs_vs_pytorch"] <= 1 / 255, name
    assert rows["PyTorch"]["resolutions"]["64"]["ratio_to_pytorch"] == 1.0
    sizes = [rows[f"TF.js wasm {n}"]["download_bytes"] for n in ("float32", "float16", "uint8")]
    assert sizes == sorted(sizes, reverse=True)  # (weights alone: the quantization test above)
    assert rows["TF.js wasm float16"]["resolutions"]["96"]["quality_vs_float32"]["psnr_db"] > 30
    # the rewrites change no result: the converter's graph gives the same picture
    before = rows[f"TF.js wasm {BASELINE_BUNDLE}"]["resolutions"]["64"]
    assert before["quality_vs_float32"]["max_abs"] < 1e-5
    table = (out / "bench.md").read_text()
    assert all(f"| {name} |" in table for name in rows)
    assert (out / "bench.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
