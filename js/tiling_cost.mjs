// What the exact strips cost in time: one photo stylized as stylize() chooses (strips, bands
// and slices within js/sanet.mjs's budgets) and untiled (every budget unbounded: each chain
// and the transform in one piece), in turn, after a warm-up of each. Prints each run's time,
// the strips and bands it ran and its largest difference from the first untiled result, then
// the ratio of the median times. Node's wasm backend runs on one thread.
// Usage: node js/tiling_cost.mjs <model_dir> [content=1024] [style_side=512] [rounds=2]
// (content: a side, or HEIGHTxWIDTH). Untiled at 1024 the wasm heap grows to about 1.8 GB.
import * as tf from '@tensorflow/tfjs';
import { fromDisk, useBackend } from './disk_model.mjs';
import { loadModel, stylize, tilingStats, transformStats } from './sanet.mjs';

const [modelDir, size = '1024', styleSide = '512', rounds = '2'] = process.argv.slice(2);
if (!modelDir) {
  console.error('usage: node js/tiling_cost.mjs <model_dir> [content=1024] [style_side=512] [rounds=2]');
  process.exit(2);
}
await useBackend(tf, 'wasm');
const model = await loadModel(tf, fromDisk(modelDir));
const [height, width] = size.includes('x') ? size.split('x').map(Number) : [Number(size), Number(size)];
const content = tf.randomUniform([height, width, 3], 0, 1, 'float32', 1);
const style = tf.randomUniform([Number(styleSide), Number(styleSide), 3], 0, 1, 'float32', 2);
const settings = { untiled: { tileBudgetBytes: Infinity, bandBudgetBytes: Infinity }, strips: {} };
const times = { untiled: [], strips: [] };
let reference = null;

async function once(name, timed) {
  const [chains, transforms] = [{ ...tilingStats }, { ...transformStats }];
  const started = performance.now();
  const { result, styleFeatures } = await stylize(tf, model, content, style, 1, Math.max(height, width), settings[name]);
  const values = await result.data();
  const ms = performance.now() - started;
  tf.dispose([result, styleFeatures]);
  let maxAbs = 0;
  if (reference) values.forEach((value, i) => { maxAbs = Math.max(maxAbs, Math.abs(value - reference[i])); });
  else reference = values;
  if (timed) times[name].push(ms);
  console.log(`${timed ? name : `${name} (warm-up)`}: ${(ms / 1e3).toFixed(2)} s; ` +
    `${tilingStats.tiles - chains.tiles} strips out of ${tilingStats.calls - chains.calls} chains, ` +
    `${transformStats.bands - transforms.bands} transform bands; max abs vs untiled ${maxAbs.toExponential(2)}`);
}

function median(values) {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2;
}
await once('untiled', false);
await once('strips', false);
for (let round = 0; round < Number(rounds); round += 1) {
  await once('untiled', true);
  await once('strips', true);
}
console.log(`strips / untiled, median time: ${(median(times.strips) / median(times.untiled)).toFixed(3)} ` +
  `(${height}x${width} photo, ${styleSide}-px style, one thread)`);
