// Runs a TensorFlow.js graph model in Node on cases prepared by src/sanet_tfjs/tfjs_node.py.
// Usage: node js/run_model.mjs <model_dir> <cases_dir> [backend=wasm]
// cases_dir/cases.json: [{content: {file, shape}, style: {file, shape}, iters, max_resolution}]
// Writes cases_dir/result_<i>.bin (float32) and cases_dir/results.json (shapes, timings, the
// wasm heap after each case, errors).
import { readFile, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { createRequire } from 'node:module';
import * as tf from '@tensorflow/tfjs';
import { setWasmPaths } from '@tensorflow/tfjs-backend-wasm';
import { fromDisk } from './disk_model.mjs';
import { stylize } from './sanet.mjs';

const [modelDir, casesDir, backend = 'wasm'] = process.argv.slice(2);
const require = createRequire(import.meta.url);

async function floats(spec) {
  const bytes = await readFile(join(casesDir, spec.file));
  return tf.tensor(new Float32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 4), spec.shape);
}

if (backend === 'wasm') {
  setWasmPaths(dirname(require.resolve('@tensorflow/tfjs-backend-wasm/dist/tfjs-backend-wasm.wasm')) + '/');
}
await tf.setBackend(backend);
await tf.ready();

const started = performance.now();
const model = await tf.loadGraphModel(fromDisk(modelDir));
const loadMs = performance.now() - started;
const cases = JSON.parse(await readFile(join(casesDir, 'cases.json'), 'utf8'));
const results = [];
for (const [index, c] of cases.entries()) {
  const inputs = { content: await floats(c.content), style: await floats(c.style) };
  const t0 = performance.now();
  try {
    const result = await stylize(tf, model, inputs.content, inputs.style, c.iters, c.max_resolution);
    const data = await result.data();
    await writeFile(join(casesDir, `result_${index}.bin`), Buffer.from(data.buffer));
    // The wasm heap only grows: after each case it is the peak so far.
    const heapBytes = tf.getBackend() === 'wasm' ? tf.backend().wasm.HEAPU8.buffer.byteLength : null;
    results.push({ shape: result.shape, ms: performance.now() - t0, heapBytes });
    result.dispose();
  } catch (error) {
    results.push({ error: String(error && error.message ? error.message : error) });
  }
  Object.values(inputs).forEach((t) => t.dispose());
}
await writeFile(join(casesDir, 'results.json'), JSON.stringify({ backend: tf.getBackend(), loadMs, results }));
