// Runs a TensorFlow.js graph model in Node on cases prepared by run_in_node (src/sanet_tfjs/runtimes/node.py).
// Usage: node js/run_model.mjs <model_dir> <cases_dir> [backend=wasm]
// cases_dir/cases.json: [{content: {file, shape}, style: {file, shape}, iters, max_resolution}]
// Each case runs twice: as it is, then with the first run's style features fed back (the same
// style again; the style image replaced by a blank one). Writes cases_dir/result_<i>.bin and restyled_<i>.bin (float32) and
// cases_dir/results.json (shapes, timings of both runs, the wasm heap after the first, errors).
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { fromDisk, useBackend } from './disk_model.mjs';
import { loadModel, stylize } from './sanet.mjs';

const [modelDir, casesDir, backend = 'wasm'] = process.argv.slice(2);

async function floats(spec) {
  const bytes = await readFile(join(casesDir, spec.file));
  return tf.tensor(new Float32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 4), spec.shape);
}

await useBackend(tf, backend);

const started = performance.now();
const model = await loadModel(tf, fromDisk(modelDir)); // registers the tiled-chain op first
const loadMs = performance.now() - started;
const cases = JSON.parse(await readFile(join(casesDir, 'cases.json'), 'utf8'));
const results = [];
// The wasm heap only grows: read after a case, it is the peak so far.
const heapBytes = () => (tf.getBackend() === 'wasm' ? tf.backend().wasm.HEAPU8.buffer.byteLength : null);
for (const [index, c] of cases.entries()) {
  const inputs = { content: await floats(c.content), style: await floats(c.style) };
  let styleFeatures = null;
  try {
    const t0 = performance.now();
    const first = await stylize(tf, model, inputs.content, inputs.style, c.iters, c.max_resolution);
    styleFeatures = first.styleFeatures;
    const data = await first.result.data();
    const ms = performance.now() - t0;
    await writeFile(join(casesDir, `result_${index}.bin`), Buffer.from(data.buffer));
    const entry = { shape: first.result.shape, ms, heapBytes: heapBytes() };
    first.result.dispose();
    // The same case again with the first run's style features fed back, and a blank style
    // image: a result that still matches the style's proves the fed features are the ones used.
    const blank = tf.zerosLike(inputs.style);
    const t1 = performance.now();
    const again = await stylize(tf, model, inputs.content, blank, c.iters, c.max_resolution, { styleFeatures });
    blank.dispose();
    const againData = await again.result.data();
    entry.restyledMs = performance.now() - t1;
    await writeFile(join(casesDir, `restyled_${index}.bin`), Buffer.from(againData.buffer));
    again.result.dispose();
    results.push(entry);
  } catch (error) {
    results.push({ error: String(error && error.message ? error.message : error) });
  }
  tf.dispose([inputs, styleFeatures]);
}
await writeFile(join(casesDir, 'results.json'), JSON.stringify({ backend: tf.getBackend(), loadMs, results }));
