// The built TensorFlow.js bundle on a GPU from Node: tfjs-backend-webgpu on Dawn (the npm
// package `webgpu`, a prebuilt dawn.node), timed per case, with the adapter named.
// Usage: node js/gpu_model.mjs <model_dir> <cases_dir> <runs> [--no-cpu-forward]
// cases_dir/cases.json: [{content: {file, shape}, style: {file, shape}, iters, max_resolution}]
// Writes cases_dir/result_<i>.bin (float32, the last run) and cases_dir/results.json: the
// adapter's info, and per case the times of a warm-up and `runs` runs, the GPU bytes tfjs
// holds after them, the process's resident memory, or the error.
// --no-cpu-forward: without js/sanet.mjs's small-int32 work-around (sizes kept on the CPU),
// to check whether this GPU still needs it.
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { create, globals } from 'webgpu';
import { fromDisk } from './disk_model.mjs';
import { loadModel, stylize } from './sanet.mjs';

const [modelDir, casesDir, runsArg, flag] = process.argv.slice(2);
const runs = Number(runsArg || 3);
const cpuForward = flag !== '--no-cpu-forward';

// tfjs-backend-webgpu looks for navigator.gpu and the WebGPU globals (GPUBufferUsage ...).
Object.assign(globalThis, globals);
const gpu = create([]);
Object.defineProperty(globalThis, 'navigator', { value: { gpu, userAgent: 'node' }, configurable: true });
const adapter = await gpu.requestAdapter({ powerPreference: 'high-performance' });
if (!adapter) {
  console.error('no WebGPU adapter: Dawn found neither a GPU nor its SwiftShader fallback');
  process.exit(2);
}
const info = adapter.info || {};
const adapterInfo = {
  vendor: info.vendor, architecture: info.architecture, device: info.device, description: info.description,
  isFallbackAdapter: Boolean(adapter.isFallbackAdapter || info.isFallbackAdapter),
};
adapterInfo.software = adapterInfo.isFallbackAdapter ||
  /swiftshader|llvmpipe|softpipe|software/i.test(Object.values(adapterInfo).join(' '));

const tf = await import('@tensorflow/tfjs');
await import('@tensorflow/tfjs-backend-webgpu');
await tf.setBackend('webgpu');
await tf.ready();

async function floats(spec) {
  const bytes = await readFile(join(casesDir, spec.file));
  return tf.tensor(new Float32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 4), spec.shape);
}

const loadStarted = performance.now();
const model = await loadModel(tf, fromDisk(modelDir)); // registers the tiled-chain op first
const loadMs = performance.now() - loadStarted;
const cases = JSON.parse(await readFile(join(casesDir, 'cases.json'), 'utf8'));
const results = [];
for (const [index, c] of cases.entries()) {
  const content = await floats(c.content);
  const style = await floats(c.style);
  try {
    const times = [];
    let data = null;
    let shape = null;
    for (let run = 0; run <= runs; run++) { // run 0: the warm-up (shader compilation)
      const started = performance.now();
      const out = await stylize(tf, model, content, style, c.iters, c.max_resolution, { cpuForward });
      data = await out.result.data(); // waits for the GPU
      times.push(performance.now() - started);
      shape = out.result.shape;
      tf.dispose([out.result, out.styleFeatures.style4_1, out.styleFeatures.style5_1]);
    }
    await writeFile(join(casesDir, `result_${index}.bin`), Buffer.from(data.buffer));
    const memory = tf.memory();
    results.push({
      shape, warmupMs: times[0], ms: times.slice(1),
      gpuBytes: memory.numBytesInGPUAllocated ?? memory.numBytesInGPU ?? null,
      rssBytes: process.memoryUsage().rss,
    });
  } catch (error) {
    results.push({ error: String(error && error.message ? error.message : error) });
  }
  tf.dispose([content, style]);
}
await writeFile(join(casesDir, 'results.json'), JSON.stringify({ adapter: adapterInfo, cpuForward, loadMs, results }));
process.exit(0); // dawn.node keeps the event loop alive
