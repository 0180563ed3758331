// Where a TensorFlow.js graph model spends its time and memory: one stylization profiled by
// kernel. Usage: node js/profile_model.mjs <model_dir> [max_resolution=256] [backend=wasm]
// Runs one warm-up stylization of random square images, then tf.profile over a second one,
// and prints the milliseconds per kernel, largest first, then the peak of live tensor bytes,
// the wasm heap, and the bytes of new tensors per kernel (how tfjs_graph.py's rewrites were
// chosen). Node's wasm backend runs on one thread.
import { dirname } from 'node:path';
import { createRequire } from 'node:module';
import * as tf from '@tensorflow/tfjs';
import { setWasmPaths } from '@tensorflow/tfjs-backend-wasm';
import { fromDisk } from './disk_model.mjs';
import { stylize } from './sanet.mjs';

const [modelDir, resolution = '256', backend = 'wasm'] = process.argv.slice(2);
if (!modelDir) {
  console.error('usage: node js/profile_model.mjs <model_dir> [max_resolution=256] [backend=wasm]');
  process.exit(2);
}
const require = createRequire(import.meta.url);
if (backend === 'wasm') {
  setWasmPaths(dirname(require.resolve('@tensorflow/tfjs-backend-wasm/dist/tfjs-backend-wasm.wasm')) + '/');
}
await tf.setBackend(backend);
await tf.ready();

const model = await tf.loadGraphModel(fromDisk(modelDir));

const side = Number(resolution);
const content = tf.randomUniform([side, side, 3]);
const style = tf.randomUniform([side, side, 3]);
async function once() {
  const result = await stylize(tf, model, content, style, 1, side);
  await result.data();
  result.dispose();
}
let started = performance.now();
await once();
console.log(`warm-up run: ${(performance.now() - started).toFixed(0)} ms`);
started = performance.now();
const profile = await tf.profile(once);
console.log(`profiled run: ${(performance.now() - started).toFixed(0)} ms (${tf.getBackend()})`);
const byKernel = {};
for (const kernel of profile.kernels) {
  // wasm's fused convolution is profiled twice (the op and its kernel): keep the kernel.
  if (kernel.name.endsWith('__op')) continue;
  byKernel[kernel.name] = (byKernel[kernel.name] || 0) + (await kernel.kernelTimeMs);
}
for (const [name, ms] of Object.entries(byKernel).sort((a, b) => b[1] - a[1])) {
  console.log(`${name.padEnd(24)} ${ms.toFixed(0).padStart(7)} ms`);
}
const mb = (bytes) => `${(bytes / 1e6).toFixed(0).padStart(7)} MB`;
const heap = tf.getBackend() === 'wasm' ? `, wasm heap ${mb(tf.backend().wasm.HEAPU8.buffer.byteLength)}` : '';
console.log(`peak of live tensors ${mb(profile.peakBytes)}${heap}; new tensors' bytes per kernel:`);
const bytesByKernel = {};
for (const kernel of profile.kernels) {
  if (kernel.name.endsWith('__op')) continue;
  bytesByKernel[kernel.name] = (bytesByKernel[kernel.name] || 0) + kernel.bytesAdded;
}
for (const [name, bytes] of Object.entries(bytesByKernel).sort((a, b) => b[1] - a[1]).slice(0, 10)) {
  console.log(`${name.padEnd(24)} ${mb(bytes)}`);
}
