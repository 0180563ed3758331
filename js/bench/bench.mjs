// The TensorFlow.js harness page: doit bench (src/sanet_tfjs/bench.py) drives window.bench
// through Playwright. It times the model the product page uses, through the same js/sanet.mjs
// call, on inputs fetched from the bench server, and hands back the last result.
import { fetchFloats, report, timeRuns } from './common.mjs';
import { layerProfile, loadModel, setWasmThreads, stylize } from './sanet.mjs';

const tf = window.tf;

// Bytes of the backend's own memory: the wasm heap only grows, so it is the peak so far.
function backendBytes() {
  const backend = tf.backend();
  if (backend.wasm && backend.wasm.HEAPU8) return backend.wasm.HEAPU8.buffer.byteLength;
  return tf.memory().numBytes;
}

let model = null;

window.bench = {
  // threads: null for the backend's default; wasm takes it once, before it starts.
  async init(backend, threads) {
    tf.wasm.setWasmPaths(new URL('vendor/', location.href).href);
    setWasmThreads(tf, threads);
    if (!(await tf.setBackend(backend))) throw new Error(`backend ${backend} is not offered`);
    await tf.ready();
    return {
      backend: tf.getBackend(),
      threads: backend === 'wasm' ? tf.wasm.getThreadsCount() : null,
      crossOriginIsolated: self.crossOriginIsolated,
    };
  },
  async load(modelUrl) {
    if (model) model.dispose();
    const started = performance.now();
    model = await loadModel(tf, modelUrl);
    return { loadMs: performance.now() - started };
  },
  // One case: warm-up runs, then timed runs; the last result comes back as base64 float32,
  // with the last run's time by layer of the ops (sanet.mjs layerProfile; [] off wasm).
  // With `restyle`, then `runs` more with the style's features from the first runs fed back;
  // with `pageMemory`, the page's memory after them (common.mjs: report).
  async run(spec, iters, maxResolution, warmup, runs, restyle, pageMemory, withResult = true) {
    const content = tf.tensor(await fetchFloats(spec.content.url), spec.content.shape);
    const style = tf.tensor(await fetchFloats(spec.style.url), spec.style.shape);
    let features = null;
    const once = async (styleFeatures) => {
      const out = await stylize(tf, model, content, style, iters, maxResolution, { styleFeatures });
      const values = await out.result.data(); // waits for the backend to finish
      out.result.dispose();
      if (out.styleFeatures !== features) tf.dispose(features);
      features = out.styleFeatures;
      return { values, shape: out.result.shape };
    };
    try {
      const first = await timeRuns(() => once(null), warmup, runs);
      const layers = [...layerProfile.values()]; // of the last run (wasm only)
      const restyled = restyle ? await timeRuns(() => once(features), 0, runs) : null;
      // tfjs's wasm threads: the pool's workers that run one (it starts 8 and keeps the rest idle)
      const threads = () => tf.backend().wasm.PThread.runningWorkers;
      return { ...(await report(first, restyled, pageMemory, threads, withResult)), backendBytes: backendBytes(), layers };
    } finally {
      tf.dispose([content, style, features]);
    }
  },
};
window.benchReady = true;
