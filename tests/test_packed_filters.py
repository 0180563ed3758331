"""The model's float32 filters freed once XNNPACK packed them (js/sanet.mjs
releasePackedFilters): the same pixels as a copy that keeps them, every filter freed, and
anything that would read a freed filter (or bias) refuses instead of computing with garbage."""

from __future__ import annotations

import json
import math

from sanet_tfjs.repo import ROOT
from tests.node import node_json

FILTERS_CHECK = ROOT / "js" / "filters_check.mjs"


def test_freed_filters_give_the_same_pixels_and_refuse_other_uses(reference):
    bundle = reference.pipeline.artifacts / "tfjs"
    result = node_json([str(FILTERS_CHECK), str(bundle.resolve()), "64"], timeout=300)
    # bit for bit: the larger run's activations reused the freed memory
    assert result["maxAbs"] == 0, result
    manifest = json.loads((bundle / "model.json").read_text())["weightsManifest"]
    weights = [w for group in manifest for w in group["weights"]]
    filters = sum(4 * math.prod(w["shape"]) for w in weights if len(w["shape"]) == 4)
    vectors = sum(4 * math.prod(w["shape"]) for w in weights if len(w["shape"]) == 1)
    # every filter is read only by convolutions (tfjs.winograd is off): all are freed, at once,
    # with their biases (vectors), and nothing else
    assert filters < result["freedBytes"] <= filters + vectors, (result, filters, vectors)
    assert result["freedLater"] == 0, result
    assert "freed once XNNPACK had packed it" in result["readRefused"]
    assert "a convolution with other parameters needs it" in result["otherConvRefused"]
    assert result["keptFilterReads"] is None  # {releaseFilters: false} keeps them
