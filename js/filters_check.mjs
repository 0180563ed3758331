// The float32 filters freed once XNNPACK packed them (js/sanet.mjs releasePackedFilters): a
// model stylizes a small pair (it packs every filter, then frees their float32 copies), then a
// larger one, whose activations reuse the freed memory; a second copy of the model that frees
// nothing stylizes the larger pair too. Then what must refuse is tried. Prints one JSON line:
// the two larger results' largest difference, the tensors and bytes freed, and the errors the
// refused uses threw (null: not refused).
// Usage: node js/filters_check.mjs <model_dir> [side=64]
import * as tf from '@tensorflow/tfjs';
import { fromDisk, useBackend } from './disk_model.mjs';
import { filterReleaseStats, loadModel, stylize } from './sanet.mjs';

const [modelDir, sideArg = '64'] = process.argv.slice(2);
await useBackend(tf, 'wasm');
const side = Number(sideArg);

async function stylized(model, height, width, options = {}) {
  const content = tf.randomUniform([height, width, 3], 0, 1, 'float32', 1);
  const style = tf.randomUniform([width, height, 3], 0, 1, 'float32', 2);
  const { result, styleFeatures } = await stylize(tf, model, content, style, 2, Math.max(height, width), options);
  const data = await result.data();
  tf.dispose([result, styleFeatures, content, style]);
  return data;
}

function refusal(action) {
  try {
    tf.dispose(action());
    return null;
  } catch (error) {
    return error.message;
  }
}

const freeing = await loadModel(tf, fromDisk(modelDir));
const keeping = await loadModel(tf, fromDisk(modelDir));
await stylized(freeing, 24, 21);
const freed = { ...filterReleaseStats };
const released = await stylized(freeing, side, side + 7);
const kept = await stylized(keeping, side, side + 7, { releaseFilters: false });
let maxAbs = released.length === kept.length ? 0 : Infinity;
kept.forEach((value, i) => {
  maxAbs = Math.max(maxAbs, Math.abs(value - released[i]));
});
// A freed filter: a weight whose only readers are _FusedConv2D nodes, as their filter.
const node = freeing.executor.graph.weights.find(
  (w) => w.children.length && w.children.every((c) => c.op === '_FusedConv2D' && c.inputs.indexOf(w) === 1),
);
const filter = freeing.executor.weightMap[node.name][0];
const input = tf.zeros([1, 9, 9, filter.shape[2]]);
console.log(JSON.stringify({
  maxAbs,
  freedTensors: freed.tensors,
  freedBytes: freed.bytes,
  freedLater: filterReleaseStats.tensors - freed.tensors,
  readRefused: refusal(() => filter.dataSync()),
  otherConvRefused: refusal(() => tf.conv2d(input, filter, 2, 'valid')),
  keptFilterReads: refusal(() => keeping.executor.weightMap[node.name][0].dataSync()),
}));
