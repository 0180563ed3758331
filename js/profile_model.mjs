// Where a TensorFlow.js graph model spends its time and memory: one stylization profiled by
// kernel. Usage: node js/profile_model.mjs <model_dir> [max_resolution=256] [backend=wasm] [tile_pixels] [style_side]
// (tile_pixels: the full- and half-resolution layers forced into tiles of about that side;
// unset or 0, as stylize() chooses: one tile while they fit its memory budget; style_side: the
// style image's side, default max_resolution)
// Runs one warm-up stylization of random square images, then tf.profile over a second one,
// and prints the milliseconds per kernel, largest first, then the peak of live tensor bytes,
// the wasm heap, the bytes of new tensors per kernel, and which tensors were alive at the
// peak, by the kernel that made them (how tfjs_graph.py's rewrites were chosen: the tensors
// that outlive their use are the ones the executor cannot free). Node's wasm backend runs on
// one thread.
import * as tf from '@tensorflow/tfjs';
import { fromDisk, useBackend } from './disk_model.mjs';
import { loadModel, stylize, tilingStats } from './sanet.mjs';

const [modelDir, resolution = '256', backend = 'wasm', tilePixels, styleSide] = process.argv.slice(2);
if (!modelDir) {
  console.error('usage: node js/profile_model.mjs <model_dir> [max_resolution=256] [backend=wasm] [tile_pixels] [style_side]');
  process.exit(2);
}
await useBackend(tf, backend);

const model = await loadModel(tf, fromDisk(modelDir)); // registers the tiled-chain op first

const [height, width] = resolution.includes('x') ? resolution.split('x').map(Number) : [Number(resolution), Number(resolution)];
const side = Math.max(height, width);
const content = tf.randomUniform([height, width, 3]);
const style = tf.randomUniform([Number(styleSide || side), Number(styleSide || side), 3]);
async function once() {
  const options = Number(tilePixels) ? { tilePixels: Number(tilePixels) } : {};
  const { result, styleFeatures } = await stylize(tf, model, content, style, 1, side, options);
  await result.data();
  tf.dispose([result, styleFeatures]);
}
let started = performance.now();
await once();
console.log(`warm-up run: ${(performance.now() - started).toFixed(0)} ms`);

// The tensors alive when the live bytes peaked: each new tensor is recorded with the kernel
// that made it, and the set of live ones is kept whenever the engine's byte count peaks.
const engine = tf.engine();
const madeBy = new Map();
let kernelName = 'input';
let peakBytes = 0;
let liveAtPeak = [];
const trackTensor = engine.trackTensor.bind(engine);
engine.trackTensor = (tensor, owner) => {
  madeBy.set(tensor, kernelName);
  return trackTensor(tensor, owner);
};
const runKernelFunc = engine.runKernelFunc.bind(engine);
engine.runKernelFunc = (params) => {
  const outer = kernelName;
  kernelName = params.kernelName || 'custom';
  try {
    return runKernelFunc(params);
  } finally {
    kernelName = outer;
    if (engine.state.numBytes > peakBytes) {
      peakBytes = engine.state.numBytes;
      for (const tensor of madeBy.keys()) if (tensor.isDisposed) madeBy.delete(tensor);
      liveAtPeak = [...madeBy];
    }
  }
};
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
console.log(`tiled chains (both runs): ${tilingStats.calls} calls, ${tilingStats.tiles} tiles`);
console.log(`peak of live tensors ${mb(profile.peakBytes)}${heap}; new tensors' bytes per kernel:`);
const bytesByKernel = {};
for (const kernel of profile.kernels) {
  if (kernel.name.endsWith('__op')) continue;
  bytesByKernel[kernel.name] = (bytesByKernel[kernel.name] || 0) + kernel.bytesAdded;
}
for (const [name, bytes] of Object.entries(bytesByKernel).sort((a, b) => b[1] - a[1]).slice(0, 10)) {
  console.log(`${name.padEnd(24)} ${mb(bytes)}`);
}
const seen = new Set(); // a tensor that shares another's buffer (Identity) adds no bytes
const alive = {};
for (const [tensor, kernel] of liveAtPeak) {
  if (seen.has(tensor.dataId)) continue;
  seen.add(tensor.dataId);
  const key = `${kernel} [${tensor.shape}]`;
  alive[key] = alive[key] || { count: 0, bytes: 0 };
  alive[key].count += 1;
  alive[key].bytes += tensor.size * 4;
}
console.log('tensors alive at the peak (weights excluded), by kernel and shape:');
for (const [key, { count, bytes }] of Object.entries(alive).sort((a, b) => b[1].bytes - a[1].bytes).slice(0, 10)) {
  console.log(`${mb(bytes)}  ${count} x ${key}`);
}
