// Runs one-input TensorFlow.js graph models in Node and times them: the convolution layers of
// src/sanet_tfjs/winograd.py (a layer direct, and the same layer as Winograd: js/sanet.mjs's op).
// Usage: node js/run_graph.mjs <cases_dir> [backend=wasm]
// cases_dir/cases.json: [{model: dir, input: {file, shape}, runs, output: file or null}]
// Each case: its model loaded, one warm-up run (XNNPACK packs the filters), then `runs` timed
// runs; writes the last output (float32) to `output` if named, and cases_dir/results.json:
// [{ms: [per run], outputShape, heapBytes}] (the wasm heap after the case: it only grows).
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { fromDisk, useBackend } from './disk_model.mjs';
import { loadModel } from './sanet.mjs';

const [casesDir, backend = 'wasm'] = process.argv.slice(2);
await useBackend(tf, backend);
const heapBytes = () => (tf.getBackend() === 'wasm' ? tf.backend().wasm.HEAPU8.buffer.byteLength : null);

const cases = JSON.parse(await readFile(join(casesDir, 'cases.json'), 'utf8'));
const results = [];
for (const c of cases) {
  const model = await loadModel(tf, fromDisk(join(casesDir, c.model)));
  const bytes = await readFile(join(casesDir, c.input.file));
  const input = tf.tensor(new Float32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 4), c.input.shape);
  const once = async () => {
    const output = model.execute(input);
    const values = await output.data(); // waits for the backend to finish
    output.dispose();
    return { values, shape: output.shape };
  };
  await once();
  const ms = [];
  let last = null;
  for (let run = 0; run < c.runs; run++) {
    const started = performance.now();
    last = await once();
    ms.push(performance.now() - started);
  }
  if (c.output) await writeFile(join(casesDir, c.output), Buffer.from(last.values.buffer));
  results.push({ ms, outputShape: last.shape, heapBytes: heapBytes() });
  input.dispose();
  model.dispose();
}
await writeFile(join(casesDir, 'results.json'), JSON.stringify({ backend: tf.getBackend(), results }));
