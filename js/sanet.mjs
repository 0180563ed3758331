// The SANet stylization model in TensorFlow.js: input checks and the call.
// TensorFlow.js has no Assert op, so the graph's own checks are stripped at conversion; these
// are the same rules as src/sanet_tfjs/stylize.py (tests run both on the same bad inputs).

export const MIN_SIDE = 17; // relu5_1 is ceil(side / 16) pixels and needs at least 2
export const MIN_MAX_RESOLUTION = MIN_SIDE;

export class StylizeInputError extends Error {
  constructor(message) {
    super(message);
    this.name = 'StylizeInputError';
  }
}

// Bytes (a Uint8Array) as base64: how the page (with ?expose=1) and the benchmark harness hand
// pixels and results to Python.
export function bytesToBase64(bytes) {
  let text = '';
  for (let i = 0; i < bytes.length; i += 0x8000) text += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  return btoa(text);
}

// The size an image is scaled to: longer side at most maxResolution, rounded half up.
export function fittedSize(height, width, maxResolution) {
  const longer = Math.max(height, width);
  if (longer <= maxResolution) return [height, width];
  const half = Math.floor(longer / 2);
  return [
    Math.max(1, Math.floor((height * maxResolution + half) / longer)),
    Math.max(1, Math.floor((width * maxResolution + half) / longer)),
  ];
}

export function checkInputs(contentShape, styleShape, iters, maxResolution) {
  for (const [name, shape] of [['content', contentShape], ['style', styleShape]]) {
    if (shape.length !== 3 || shape[2] !== 3) {
      throw new StylizeInputError(`${name} must be [height, width, 3] RGB, got [${shape}]`);
    }
    if (shape[0] === 0 || shape[1] === 0) throw new StylizeInputError(`${name} is empty ([${shape}])`);
  }
  if (!Number.isInteger(iters) || iters < 1) {
    throw new StylizeInputError(`iters must be an integer >= 1, got ${iters}`);
  }
  if (!Number.isInteger(maxResolution) || maxResolution < MIN_MAX_RESOLUTION) {
    throw new StylizeInputError(`max_resolution must be an integer >= ${MIN_MAX_RESOLUTION}, got ${maxResolution}`);
  }
  for (const [name, shape] of [['content', contentShape], ['style', styleShape]]) {
    const size = fittedSize(shape[0], shape[1], maxResolution);
    if (Math.min(...size) < MIN_SIDE) {
      throw new StylizeInputError(
        `${name} is too small: ${shape[0]}x${shape[1]} scaled to max_resolution ${maxResolution} ` +
          `is ${size[0]}x${size[1]}; both sides must be >= ${MIN_SIDE}`,
      );
    }
  }
}

// tfjs-converter's control-flow executor clones each tensor that passes an Enter, Merge,
// Switch, NextIteration or Identity of the while loop, and tfjs-backend-wasm 4.22's Identity
// kernel copies the data, where the cpu and webgl backends share it (tensors are immutable,
// and the wasm backend counts references to a buffer as they do). This registers the sharing
// Identity on wasm. Measured in Node (full width, one stylization): wasm heap at 256x256
// 1,179 -> 775 MB, at 512x512 3,629 -> 2,100 MB; the same pixels.
function sharedIdentity({ inputs: { x }, backend }) {
  backend.incRef(x.dataId);
  return { dataId: x.dataId, shape: x.shape, dtype: x.dtype };
}

export function shareIdentityOnWasm(tf) {
  const kernel = tf.getKernel('Identity', 'wasm');
  if (!kernel || kernel.kernelFunc === sharedIdentity) return;
  tf.unregisterKernel('Identity', 'wasm');
  tf.registerKernel({ ...kernel, kernelFunc: sharedIdentity });
}

// tfjs-converter reads the shape arguments of some ops (ResizeBilinear's size, MirrorPad's
// paddings) synchronously, and the graph computes them from max_resolution with small int32
// ops. tfjs-backend-webgpu 4.22 runs an op on the CPU backend when every input is small and on
// the CPU, but only in the kernels that have a CPU path: SelectV2, Prod, RealDiv and others put
// the sizes on the GPU, and reading them back synchronously gave zeros on SwiftShader (a 0x0
// resize). This applies tfjs's own rule (WEBGPU_CPU_FORWARD, under its size threshold) to every
// kernel, so the size arithmetic stays on the CPU, as TensorFlow keeps int32 on the host.
const CPU_FORWARD_DTYPES = new Set(['float32', 'int32', 'bool']);

function cpuForwarded(kernel, cpuKernel, cpu) {
  const forwarded = (args) => {
    const { inputs, backend, attrs } = args;
    const tensors = Object.values(inputs).filter(Boolean);
    if (!tensors.every((t) => CPU_FORWARD_DTYPES.has(t.dtype)) || !backend.shouldExecuteOnCPU(tensors)) {
      return kernel.kernelFunc(args);
    }
    // Some kernels (Concat, Pack, AddN) take an array of inputs: keep the container's kind.
    const cpuInputs = Array.isArray(inputs) ? [] : {};
    for (const [name, t] of Object.entries(inputs)) {
      cpuInputs[name] = t && cpu.makeTensorInfo(t.shape, t.dtype, backend.readSync(t.dataId));
    }
    try {
      const out = cpuKernel.kernelFunc({ inputs: cpuInputs, backend: cpu, attrs });
      const outs = Array.isArray(out) ? out : [out];
      const results = outs.map((o) => backend.makeTensorInfo(o.shape, o.dtype, cpu.readSync(o.dataId)));
      outs.forEach((o) => cpu.disposeData(o.dataId));
      return Array.isArray(out) ? results : results[0];
    } finally {
      Object.values(cpuInputs).forEach((t) => t && cpu.disposeData(t.dataId));
    }
  };
  forwarded.cpuForwarded = true;
  return forwarded;
}

export function keepSmallTensorsOnCpuInWebGPU(tf) {
  const backend = tf.findBackend('webgpu');
  const cpu = tf.findBackend('cpu');
  if (!backend || !cpu) return;
  for (const kernel of tf.getKernelsForBackend('webgpu')) {
    const cpuKernel = tf.getKernel(kernel.kernelName, 'cpu');
    if (!cpuKernel || kernel.kernelFunc.cpuForwarded) continue;
    tf.unregisterKernel(kernel.kernelName, 'webgpu');
    tf.registerKernel({ ...kernel, kernelFunc: cpuForwarded(kernel, cpuKernel, cpu) });
  }
}

// tf.loadGraphModel, less the model's own copy of its weights: GraphModel keeps the fetched
// weight bytes (`artifacts.weightData`, the whole model) for `model.save()`, while every
// weight already lives in the backend's memory. Dropping them saves the model's size in page
// memory (84 MB at full width); this page never saves the model.
export async function loadModel(tf, url, options) {
  const model = await tf.loadGraphModel(url, options);
  model.artifacts.weightData = null;
  return model;
}

// The model's feed points for the style features of an earlier run (tfjs_graph.py
// expose_style_features writes them into model.json): {style4_1: node, style5_1: node}.
function styleFeatureInputs(model) {
  const inputs = model.metadata && model.metadata.style_feature_inputs;
  if (!inputs || !inputs.style4_1 || !inputs.style5_1) {
    throw new Error('this model cannot take style features back: rebuild it (doit tfjs)');
  }
  return inputs;
}

// content, style: float32 tensors [H, W, 3] in [0, 1]. Returns {result, styleFeatures}: the
// result tensor [H, W, 3], and the style's encoded features {style4_1, style5_1}. Passing
// those back as `options.styleFeatures` (same style, same maxResolution) skips encoding the
// style: one encoder pass of the 1 + iters. The caller disposes every tensor returned; given
// features are returned as they are, not copied.
export async function stylize(tf, model, content, style, iters, maxResolution, options = {}) {
  checkInputs(content.shape, style.shape, iters, maxResolution);
  shareIdentityOnWasm(tf);
  // options.cpuForward === false: without it (js/gpu_model.mjs, to check a GPU still needs it)
  if (tf.getBackend() === 'webgpu' && options.cpuForward !== false) keepSmallTensorsOnCpuInWebGPU(tf);
  const given = options.styleFeatures || null;
  const inputs = {
    content,
    style,
    iters: tf.scalar(iters, 'int32'),
    max_resolution: tf.scalar(maxResolution, 'int32'),
  };
  if (given) {
    const feeds = styleFeatureInputs(model);
    inputs[feeds.style4_1] = given.style4_1;
    inputs[feeds.style5_1] = given.style5_1;
  }
  try {
    if (given) return { result: await model.executeAsync(inputs, ['result']), styleFeatures: given };
    const [result, style4_1, style5_1] = await model.executeAsync(inputs, ['result', 'style4_1', 'style5_1']);
    return { result, styleFeatures: { style4_1, style5_1 } };
  } finally {
    inputs.iters.dispose();
    inputs.max_resolution.dispose();
  }
}
