// The onnxruntime-web harness page: the benchmark's peer. It runs this pipeline's own three
// ONNX files (encoder, transform, decoder) with the product's loop (model.stylize_loop: the
// style encoded once, or its features kept from an earlier run; each pass encodes, transforms,
// decodes, crops to the content size and clips to [0, 1]) on NCHW inputs that the bench has
// already scaled to the maximum resolution.
import * as ort from './vendor/ort/ort.wasm.min.mjs';
import { fetchFloats, report, timeRuns } from './common.mjs';

const PARTS = ['encoder', 'transform', 'decoder'];
let sessions = null;

// [1, C, H, W] -> the top-left [1, C, height, width], clipped to [0, 1].
function cropAndClip(tensor, height, width) {
  const [, channels, fullHeight, fullWidth] = tensor.dims;
  const source = tensor.data;
  const values = new Float32Array(channels * height * width);
  let index = 0;
  for (let c = 0; c < channels; c++) {
    for (let y = 0; y < height; y++) {
      const row = (c * fullHeight + y) * fullWidth;
      for (let x = 0; x < width; x++) values[index++] = Math.min(1, Math.max(0, source[row + x]));
    }
  }
  return new ort.Tensor('float32', values, [1, channels, height, width]);
}

async function encodeStyle(style) {
  const { relu4_1: s4, relu5_1: s5 } = await sessions.encoder.run({ image: style });
  return { s4, s5 };
}

async function stylize(content, { s4, s5 }, iters) {
  const [, , height, width] = content.dims;
  let image = content;
  for (let i = 0; i < iters; i++) {
    const { relu4_1: c4, relu5_1: c5 } = await sessions.encoder.run({ image });
    const { features } = await sessions.transform.run({
      content4_1: c4, style4_1: s4, content5_1: c5, style5_1: s5,
    });
    const { image: decoded } = await sessions.decoder.run({ features });
    image = cropAndClip(decoded, height, width);
    [c4, c5, features, decoded].forEach((t) => t.dispose());
  }
  return image;
}

const disposeFeatures = (features) => features && [features.s4, features.s5].forEach((t) => t.dispose());

window.bench = {
  async init(threads) {
    ort.env.wasm.wasmPaths = new URL('vendor/ort/', location.href).href;
    ort.env.wasm.numThreads = threads;
    return { backend: 'wasm', threads, crossOriginIsolated: self.crossOriginIsolated };
  },
  async load(folder) {
    const started = performance.now();
    sessions = {};
    for (const part of PARTS) {
      sessions[part] = await ort.InferenceSession.create(`${folder}/${part}.onnx`, {
        executionProviders: ['wasm'],
      });
    }
    return { loadMs: performance.now() - started };
  },
  // spec: {content, style: {url, shape}} of NCHW float32 inputs, already fitted. With
  // `restyle`, then `runs` more with the style's features from the first runs kept; with
  // `pageMemory`, the page's memory after them (common.mjs: report).
  async run(spec, iters, warmup, runs, restyle, pageMemory, withResult = true) {
    const content = new ort.Tensor('float32', await fetchFloats(spec.content.url), spec.content.shape);
    const style = new ort.Tensor('float32', await fetchFloats(spec.style.url), spec.style.shape);
    let features = null;
    const once = async (given) => {
      if (!given) {
        disposeFeatures(features);
        features = await encodeStyle(style);
      }
      const result = await stylize(content, features, iters);
      return { values: result.data, shape: result.dims };
    };
    try {
      const first = await timeRuns(() => once(null), warmup, runs);
      const restyled = restyle ? await timeRuns(() => once(features), 0, runs) : null;
      // onnxruntime-web starts one worker per extra thread and no idle pool: each runs a thread
      const threads = () => self.startedWorkers;
      return { ...(await report(first, restyled, pageMemory, threads, withResult)), backendBytes: null };
    } finally {
      disposeFeatures(features);
    }
  },
};
window.benchReady = true;
