// The onnxruntime-web harness page: the benchmark's peer. It runs this pipeline's own three
// ONNX files (encoder, transform, decoder) with the product's loop (model.stylize_loop: the
// style encoded once; each pass encodes, transforms, decodes, crops to the content size and
// clips to [0, 1]) on NCHW inputs that the bench has already scaled to the maximum resolution.
import * as ort from './vendor/ort/ort.wasm.min.mjs';
import { fetchFloats, pageMemoryBytes, timeRuns } from './common.mjs';

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

async function stylize(content, style, iters) {
  const [, , height, width] = content.dims;
  const { relu4_1: s4, relu5_1: s5 } = await sessions.encoder.run({ image: style });
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
  s4.dispose();
  s5.dispose();
  return image;
}

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
  // spec: {content, style: {url, shape}} of NCHW float32 inputs, already fitted.
  async run(spec, iters, warmup, runs) {
    const content = new ort.Tensor('float32', await fetchFloats(spec.content.url), spec.content.shape);
    const style = new ort.Tensor('float32', await fetchFloats(spec.style.url), spec.style.shape);
    const timed = await timeRuns(
      async () => {
        const result = await stylize(content, style, iters);
        return { values: result.data, shape: result.dims };
      },
      warmup,
      runs,
    );
    return { ...timed, backendBytes: null, pageBytes: await pageMemoryBytes() };
  },
};
window.benchReady = true;
