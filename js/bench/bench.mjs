// The benchmark harness page: doit bench (src/sanet_tfjs/bench.py) drives window.bench through
// Playwright. It times the model the product page uses, through the same js/sanet.mjs call,
// on inputs fetched from the bench server, and hands back the last result's float32 bytes.
import { stylize } from './sanet.mjs';

const tf = window.tf;

async function floats(url, shape) {
  const bytes = await (await fetch(url)).arrayBuffer();
  return tf.tensor(new Float32Array(bytes), shape);
}

function base64(bytes) {
  let text = '';
  for (let i = 0; i < bytes.length; i += 0x8000) {
    text += String.fromCharCode.apply(null, bytes.subarray(i, i + 0x8000));
  }
  return btoa(text);
}

// Bytes of the backend's own memory: the wasm heap only grows, so it is the peak so far.
function backendBytes() {
  const backend = tf.backend();
  if (backend.wasm && backend.wasm.HEAPU8) return backend.wasm.HEAPU8.buffer.byteLength;
  return tf.memory().numBytes;
}

let model = null;

window.bench = {
  async init(backend) {
    tf.wasm.setWasmPaths(new URL('vendor/', location.href).href);
    if (!(await tf.setBackend(backend))) throw new Error(`backend ${backend} is not offered`);
    await tf.ready();
    return {
      backend: tf.getBackend(),
      threads: backend === 'wasm' ? tf.wasm.getThreadsCount() : null,
    };
  },
  async load(modelUrl) {
    if (model) model.dispose();
    const started = performance.now();
    model = await tf.loadGraphModel(modelUrl);
    return { loadMs: performance.now() - started };
  },
  // One case: warm-up runs, then timed runs; the last result comes back as base64 float32.
  async run(spec, iters, maxResolution, warmup, runs) {
    const content = await floats(spec.content.url, spec.content.shape);
    const style = await floats(spec.style.url, spec.style.shape);
    const ms = [];
    let data = null;
    let shape = null;
    try {
      for (let i = 0; i < warmup + runs; i++) {
        const started = performance.now();
        const result = await stylize(tf, model, content, style, iters, maxResolution);
        const values = await result.data(); // waits for the backend to finish
        const elapsed = performance.now() - started;
        shape = result.shape;
        result.dispose();
        if (i >= warmup) ms.push(elapsed);
        data = values;
      }
    } finally {
      content.dispose();
      style.dispose();
    }
    return { ms, shape, result: base64(new Uint8Array(data.buffer)), backendBytes: backendBytes() };
  },
};
window.benchReady = true;
