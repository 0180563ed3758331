"""Exact tiling of the full- and half-resolution layers (tfjs_graph.tile_resolution_chains and
js/sanet.mjs's SanetTiledChain op) and the transform's bands (tfjs_graph.band_transform, the
SanetTransform op): forced small tiles, bands and attention slices give the untiled result."""

from __future__ import annotations

import json
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import pytest

from sanet_tfjs.formats.tfjs_graph import (
    TILED_CHAIN_OP,
    TRANSFORM_OP,
    GraphBundle,
    GraphRewriteError,
    _input_read_only_by,
    _reachable,
    _read_before,
    band_transform,
    tile_resolution_chains,
)
from sanet_tfjs.repo import ROOT
from sanet_tfjs.stylize import fitted_size

TILES_CHECK = ROOT / "js" / "tiles_check.mjs"
HALF_LEVEL = 0.5 / 255

# (content HxW, style HxW, iters, max_resolution, forced tile sides): odd sides, sides not
# divisible by 16 (ceil-mode pools at both levels), a strip, and one scaled down.
CASES = [
    ((67, 45), (40, 33), 2, 512, [16, 24, 37]),
    ((101, 130), (50, 61), 2, 512, [32, 50]),
    ((150, 23), (29, 40), 2, 512, [16]),
    ((257, 181), (99, 131), 2, 150, [40]),
]


def tiles_check(model_dir: Path, cases: list[tuple]) -> list[dict]:
    """js/tiles_check.mjs on `cases`: each run untiled and with each forced tile side."""
    rng = np.random.default_rng(32)
    with tempfile.TemporaryDirectory(prefix="tfjs-tiles-") as folder:
        folder = Path(folder)
        specs = []
        for index, (content, style, iters, max_resolution, sides) in enumerate(cases):
            entry = {"iters": iters, "max_resolution": max_resolution, "tile_pixels": sides}
            for name, (height, width) in (("content", content), ("style", style)):
                image = rng.random((height, width, 3), dtype=np.float32)
                image.tofile(folder / f"{name}_{index}.bin")
                entry[name] = {"file": f"{name}_{index}.bin", "shape": [height, width, 3]}
            specs.append(entry)
        (folder / "cases.json").write_text(json.dumps(specs))
        done = subprocess.run(
            ["node", str(TILES_CHECK), str(Path(model_dir).resolve()), str(folder)],
            capture_output=True,
            text=True,
            cwd=ROOT,
        )
        assert done.returncode == 0, done.stderr[-3000:]
        return json.loads((folder / "results.json").read_text())["results"]


def test_tiled_chains_give_the_untiled_result(reference):
    # the reference build's bundle: the folded model, as the pipeline ships it
    results = tiles_check(reference.pipeline.artifacts / "tfjs", CASES)
    for (content, style, iters, max_resolution, sides), entry in zip(CASES, results, strict=True):
        # Untiled: one tile per chain call (the encoder's two chains run 1 + iters times, the
        # decoder's iters), one band and one attention slice per block in each transform.
        assert entry["tiles"] == entry["calls"] == 2 * (1 + iters) + iters, (content, entry)
        assert entry["bands"] == entry["transforms"] == iters, (content, entry)
        assert entry["slices"] == 2 * iters, (content, entry)
        assert entry["released"] > 0, (content, entry)  # the features freed after the transform
        # the encoder's image freed once the encoder read it: the style's, then each pass's
        (height, width) = fitted_size(*content, max_resolution)
        images = iters * height * width + np.prod(fitted_size(*style, max_resolution))
        assert entry["releasedInputs"] == 3 * 4 * images, (content, entry)
        for side, tiled in zip(sides, entry["tiled"], strict=True):
            assert tiled["shape"] == entry["shape"]
            # really tiled and banded (each band's attention in one slice or more per block)
            assert tiled["tiles"] > tiled["calls"], (content, side, tiled)
            assert tiled["bands"] > tiled["transforms"] == iters, (content, side, tiled)
            assert tiled["slices"] >= 2 * tiled["bands"], (content, side, tiled)
            assert tiled["maxAbs"] <= HALF_LEVEL, (content, side, tiled)
            assert tiled["releasedInputs"] == entry["releasedInputs"], (content, side, tiled)
            # the chosen convolutions ran as Winograd, in more strips than untiled
            assert tiled["winogradStrips"] > entry["winogradStrips"] > 0, (content, side, tiled)
        # and sliced: at the smallest side, a band's attention takes several slices
        smallest = entry["tiled"][0]
        assert smallest["slices"] > 2 * smallest["bands"], (content, smallest)


def test_bundle_runs_its_large_chains_as_tiled_ops(reference):
    nodes = json.loads((reference.pipeline.artifacts / "tfjs" / "model.json").read_text())[
        "modelTopology"
    ]["node"]
    # the encoder's two chains; the decoder's runs inside the transform's op, band by band
    chains = [node for node in nodes if node["op"] == TILED_CHAIN_OP]
    assert len(chains) == 2
    # the transform is one op: no attention left in the graph
    (transform,) = [node for node in nodes if node["op"] == TRANSFORM_OP]
    assert "decoder_layers" in transform["attr"]
    assert not [node for node in nodes if node["op"] in ("Softmax", "BatchMatMulV2")]
    # VGG has 4 pools up to relu5_1: all run inside the encoder's chains, and the only 3x3
    # convolution left in the graph is relu5_1's
    assert not [node for node in nodes if node["op"] == "MaxPool"]
    assert sum(node["op"] == "_FusedConv2D" for node in nodes) == 1


def test_a_graph_without_the_chains_is_refused(reference):
    bundle = GraphBundle.load(reference.pipeline.artifacts / "tfjs")  # no chain left
    with pytest.raises(GraphRewriteError, match="found 0 encoder chains"):
        tile_resolution_chains(bundle)
    with pytest.raises(GraphRewriteError, match="found 0 transforms"):
        band_transform(bundle)


def test_the_transform_frees_its_features_only_where_nothing_reads_them_later(reference):
    bundle = GraphBundle.load(reference.pipeline.artifacts / "tfjs")
    transform = next(node for node in bundle.nodes if node["op"] == TRANSFORM_OP)
    assert transform["attr"]["release_features"]["b"]
    assert transform["attr"]["release_values"]["b"]  # each block's values, read only by it
    features = transform["input"][0]  # relu4_1's
    needed = _reachable(bundle)
    assert _read_before(bundle, needed, transform, [features])
    # a reader that runs after the transform (here: after it, by a control input) forbids it
    bundle.nodes.append({"name": "late", "op": "Neg", "input": [features, f"^{transform['name']}"]})
    assert not _read_before(bundle, needed | {"late"}, transform, [features])


def test_the_encoder_frees_its_image_only_where_nothing_else_reads_it(reference):
    bundle = GraphBundle.load(reference.pipeline.artifacts / "tfjs")
    chains = {
        node["attr"]["image_stride"]["i"]: node
        for node in bundle.nodes
        if node["op"] == TILED_CHAIN_OP
    }
    # the image (the style's, then each pass's) reaches the encoder alone; relu4_1 does not
    assert chains["1"]["attr"]["release_input"]["b"]
    assert not chains["8"]["attr"]["release_input"]["b"]
    needed = _reachable(bundle)
    image = chains["1"]["input"][0]
    bundle.nodes.append({"name": "size", "op": "Shape", "input": [image]})
    assert _input_read_only_by(bundle, needed | {"size"}, chains["1"])  # reads no data
    bundle.nodes.append({"name": "late", "op": "Neg", "input": [image]})
    assert not _input_read_only_by(bundle, needed | {"late"}, chains["1"])
