"""What js/sanet.mjs makes the wasm backend share instead of copy (shareIdentityOnWasm): an
Identity, and a bilinear resize to the image's own size (the page fits the photo before the
model, so the graph's first and last resizes were whole copies: 150 MB each at 4096x3072).
Real TensorFlow.js in Node; a resize to another size still resizes, exactly as before."""

from __future__ import annotations

from tests.node import node_json

CHECK = """
import * as tf from '@tensorflow/tfjs';
import { useBackend } from './js/disk_model.mjs';
import { shareIdentityOnWasm } from './js/sanet.mjs';
await useBackend(tf, 'wasm');
const image = tf.randomUniform([1, 37, 53, 3]);
const modes = [[false, false], [true, false], [false, true]];
const before = modes.map(([a, h]) => tf.image.resizeBilinear(image, [37, 53], a, h).dataSync());
const scaledBefore = tf.image.resizeBilinear(image, [20, 29], false, true).dataSync();
shareIdentityOnWasm(tf);
const out = {};
out.same = modes.map(([a, h], i) => {
  const resized = tf.image.resizeBilinear(image, [37, 53], a, h);
  const values = resized.dataSync();
  const shared = resized.dataId === image.dataId;
  resized.dispose();
  return { shared, equal: values.every((v, k) => v === before[i][k]) };
});
const scaled = tf.image.resizeBilinear(image, [20, 29], false, true);
out.scaled = { shared: scaled.dataId === image.dataId, shape: scaled.shape,
  equal: scaled.dataSync().every((v, k) => v === scaledBefore[k]) };
scaled.dispose();
out.imageIntact = image.dataSync().length === 37 * 53 * 3; // disposing a sharer kept the data
console.log(JSON.stringify(out));
"""


def test_a_resize_to_the_same_size_shares_the_image_and_others_resize():
    out = node_json(["--input-type=module", "-e", CHECK], timeout=120)
    # the same values as the kernel's own copy, in every mode, with no copy made
    assert out["same"] == [{"shared": True, "equal": True}] * 3, out
    assert out["scaled"] == {"shared": False, "shape": [1, 20, 29, 3], "equal": True}, out
    assert out["imageIntact"]
