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

// tfjs-backend-wasm runs min(requested (cores / 2 if unset), cores / 2, 8) threads, at least
// one (its backend.cc: "Many x86-64 processors have 2 threads per core"): the caller and
// `threads - 1` workers of its pool.
export function wasmThreadsFor(requested, cores) {
  const perCore = Math.floor(cores / 2);
  const count = requested == null || requested < 0 ? perCore : requested;
  return Math.max(1, Math.min(Math.max(count, 1), 8, perCore));
}

// The global the page's copy of the wasm backend reads for how many workers to start
// (src/sanet_tfjs/site.py WASM_WORKERS_GLOBAL; tfjs's own build starts 8, each 17 MB of page
// memory, most of them idle).
export const WASM_WORKERS_GLOBAL = 'sanetWasmWorkers';

// Before tf.setBackend('wasm'): asks for `requested` threads (null: tfjs's default) and
// sizes the worker pool to what they need, at least one: the 4.22 glue waits for every
// worker of its pool to load before the module starts, and with none it never starts.
export function setWasmThreads(tf, requested) {
  if (requested != null) tf.wasm.setThreadsCount(requested);
  const cores = (globalThis.navigator && navigator.hardwareConcurrency) || 1;
  globalThis[WASM_WORKERS_GLOBAL] = Math.max(1, wasmThreadsFor(requested, cores) - 1);
}

// Registers `kernelFunc` in place of `kernel`'s own, for the same op and backend.
function replaceKernelFunc(tf, kernel, kernelFunc) {
  tf.unregisterKernel(kernel.kernelName, kernel.backendName);
  tf.registerKernel({ ...kernel, kernelFunc });
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

// A bilinear resize to the image's own size is the image (each output pixel is its input
// pixel with weight 1, in every mode: align_corners, half_pixel_centers or neither), and the
// page always hands the model a photo already fitted to the maximum resolution: the graph's
// first resize (the content's fit) and its last (back to the content's size) copied the whole
// image (150 MB each at 4096x3072), the last one at the end of the run, where the heap is most
// cut up. On wasm such a resize shares the data as the Identity above; any other resizes.
function sameSizeSharingResize(resize) {
  const sharing = (args) => {
    const { inputs: { images }, attrs: { size }, backend } = args;
    const [, height, width] = images.shape;
    if (images.dtype !== 'float32' || height !== size[0] || width !== size[1]) return resize(args);
    return sharedIdentity({ inputs: { x: images }, backend });
  };
  sharing.sharesSameSize = true;
  return sharing;
}

export function shareIdentityOnWasm(tf) {
  const kernel = tf.getKernel('Identity', 'wasm');
  if (kernel && kernel.kernelFunc !== sharedIdentity) replaceKernelFunc(tf, kernel, sharedIdentity);
  const resize = tf.getKernel('ResizeBilinear', 'wasm');
  if (resize && !resize.kernelFunc.sharesSameSize) replaceKernelFunc(tf, resize, sameSizeSharingResize(resize.kernelFunc));
}

// XNNPACK packs a convolution's filter into its own buffer when tfjs-backend-wasm first runs
// that convolution, and tfjs 4.22 keeps a transposed copy besides, in its operator cache
// (conv2d_impl.cc; the cache key: the convolution's parameters and the filter's and bias's
// ids). From then on the model's own float32 copy of the filter is read by nothing: the
// weights sit in the wasm heap three times (240 MB at full width). Where a stylization
// releases filters (the default), that first copy of every filter that only convolutions read
// is freed as soon as a convolution has packed it (recordingConv; winogradFilters once it has
// transformed it), and `releasePackedFilters` frees what is left after the run: 80 MB of heap
// at full width, reused by the run's later activations. The convolution kernels are wrapped to record each filter's parameters; a freed
// filter asked for by a convolution with other parameters (which would need a new operator,
// packed from the freed memory) or read by anything throws instead of computing with garbage.
const CONV_KERNELS = ['FusedConv2D', 'Conv2D'];
// The graph ops that read a weight only as a convolution's filter: op -> which input(s).
const FILTER_CONSUMERS = {
  _FusedConv2D: (index) => index === 1 || index === 2, // filter, bias
  Conv2D: (index) => index === 1,
  SanetTiledChain: (index) => index >= 1, // its convolutions' filters and biases, nothing else
  SanetTransform: (index) => index >= 12, // the merge convolution's and the decoder's weights
};
const filterSignatures = new WeakMap(); // filter (or bias) dataId -> its convolution's parameters, or null
// dataId -> why its memory was freed (freeInPlace): a filter's, the parameters it was packed
// with ('winograd': a transformed filter); an input read by its one reader, INPUT_READ.
const releasedData = new WeakMap();
const INPUT_READ = 'input read';
const releasedModels = new WeakSet();

// What tfjs-backend-wasm's operator cache key holds besides the filter: null where it depends
// on the input's size (SAME padding), so the operator may be made again.
function convSignature(kernelName, { inputs, attrs, backend }) {
  if (attrs.pad !== 'valid') return null;
  const id = (tensor) => (tensor ? backend.dataIdMap.get(tensor.dataId).id : 0);
  return [
    kernelName, attrs.strides, attrs.dilations, attrs.dataFormat, attrs.activation || '',
    attrs.leakyreluAlpha ?? '', id(inputs.bias), id(inputs.preluActivationWeights), inputs.x.shape[3],
  ].join('|');
}

function recordingConv(kernel) {
  const recording = (args) => {
    const signature = convSignature(kernel.kernelName, args);
    // The filter and the bias: XNNPACK packs both (a bias freed too lets the freed filters'
    // memory join into larger free blocks).
    for (const weight of [args.inputs.filter, args.inputs.bias]) {
      if (!weight) continue;
      if (releasedData.has(weight.dataId) && releasedData.get(weight.dataId) !== signature) {
        throw new Error(
          `${kernel.kernelName}: this filter's float32 copy was freed once XNNPACK had packed it ` +
            `(releasePackedFilters), and a convolution with other parameters needs it: load the ` +
            `model again, or call stylize with {releaseFilters: false}`,
        );
      }
      const seen = filterSignatures.get(weight.dataId);
      if (seen === undefined) filterSignatures.set(weight.dataId, signature);
      else if (seen !== signature) filterSignatures.set(weight.dataId, null);
    }
    const out = kernel.kernelFunc(args);
    // packed now: freed at once where this run releases filters, not at the run's end, so that
    // the first run's peak does not hold them too
    if (signature && currentTiling.releaseFilters !== false) {
      for (const weight of [args.inputs.filter, args.inputs.bias]) {
        if (weight && filterSignatures.get(weight.dataId) === signature) releaseFilter(args.backend, weight, signature);
      }
    }
    return out;
  };
  recording.recordsFilters = true;
  return recording;
}

export function recordConvFiltersOnWasm(tf) {
  for (const name of CONV_KERNELS) {
    const kernel = tf.getKernel(name, 'wasm');
    if (!kernel || kernel.kernelFunc.recordsFilters) continue;
    replaceKernelFunc(tf, kernel, recordingConv(kernel));
  }
}

function refuseReleasedReads(backend) {
  if (backend.readSync.refusesReleased) return;
  const readSync = backend.readSync.bind(backend);
  backend.readSync = (dataId, ...rest) => {
    if (releasedData.get(dataId) === INPUT_READ) {
      throw new Error('this tensor was freed once the one op that reads it had run (release_input)');
    }
    if (releasedData.has(dataId)) {
      throw new Error("this weight's float32 copy was freed once XNNPACK had packed it (releasePackedFilters)");
    }
    return readSync(dataId, ...rest);
  };
  backend.readSync.refusesReleased = true;
}

// Frees `tensor`'s wasm memory where it is, for good: the engine still counts the tensor
// (tf.memory() is unchanged), and disposing it later frees nothing twice (free(0)). `why` is
// recorded for the reads that would find garbage there (refuseReleasedReads, recordingConv).
// Returns the bytes freed (0 where it was freed already).
function freeInPlace(backend, tensor, why) {
  const data = backend.dataIdMap.get(tensor.dataId);
  if (!data || !data.memoryOffset) return 0;
  refuseReleasedReads(backend);
  backend.wasm._free(data.memoryOffset);
  data.memoryOffset = 0;
  releasedData.set(tensor.dataId, why);
  return tensor.size * 4;
}

// What releasePackedFilters freed since the page loaded: tensors and bytes (tests read it).
export const filterReleaseStats = { tensors: 0, bytes: 0 };
// The dataIds of the model weights that only convolutions read (markFilters, at load).
const filterData = new WeakSet();

// Records which of `model`'s weights only convolutions read, as their filters or biases.
function markFilters(model) {
  const graph = model.executor && model.executor.graph;
  if (!graph) return;
  for (const node of graph.weights) {
    const onlyFilters = node.children.length > 0 && node.children.every((child) => {
      const reads = FILTER_CONSUMERS[child.op];
      return reads && child.inputs.every((input, index) => input !== node || reads(index));
    });
    if (!onlyFilters) continue;
    for (const tensor of model.executor.weightMap[node.name] || []) filterData.add(tensor.dataId);
  }
}

// Frees the float32 copy of a filter (or bias) that only convolutions read and that was packed
// (XNNPACK) or transformed (winogradConv) with `signature`: the one way to, so that
// filterReleaseStats counts every one. Returns the bytes freed.
function releaseFilter(backend, tensor, signature) {
  if (!filterData.has(tensor.dataId) || releasedData.has(tensor.dataId)) return 0;
  const bytes = freeInPlace(backend, tensor, signature);
  if (bytes) {
    filterReleaseStats.tensors += 1;
    filterReleaseStats.bytes += bytes;
  }
  return bytes;
}

// Frees the float32 copy of each of `model`'s filters that only convolutions read and that a
// convolution (with VALID padding, one set of parameters) has packed, where the run did not
// already (recordingConv, winogradFilters). wasm only; returns the bytes freed here.
export function releasePackedFilters(tf, model) {
  if (tf.getBackend() !== 'wasm' || !model.executor) return 0;
  const backend = tf.backend();
  let bytes = 0;
  for (const tensors of Object.values(model.executor.weightMap)) {
    for (const tensor of tensors) {
      // (a filter that winogradConv transformed is read by nothing again)
      const signature = winogradCache(tf).filters.has(tensor.dataId) ? 'winograd' : filterSignatures.get(tensor.dataId);
      if (signature) bytes += releaseFilter(backend, tensor, signature);
    }
  }
  return bytes;
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
    replaceKernelFunc(tf, kernel, cpuForwarded(kernel, cpuKernel, cpu));
  }
}

// Exact strips of the layers whose activations grow with the photo (tfjs_graph.py
// `tile_resolution_chains` replaces three chains by one SanetTiledChain node each: the
// encoder's from the image to relu4_1, its next from relu4_1 to the fourth max pool, and the
// decoder's from its first convolution to its output). The op streams its chain over strips
// of rows, every column, top to bottom (ChainStream): each layer computes its output rows as
// soon as the input rows they need have come, and keeps only the input rows that its next
// output rows still need (a reflection pad of 1 and a 3x3 convolution: the last two; a 2x2
// stride-2 ceil-mode max pool: an odd last one; a nearest x2 upsample: none), reflection-
// padding only at the true image border and convolving VALID. Every output pixel is the one
// the whole image gives, and no row is computed twice. One strip (the default while every
// activation fits `tileBudgetBytes`) is exactly the untiled graph: the same kernels on the
// same tensors. Attrs besides `layers`: `input_layout` and `output_layout` (NHWC, or NCHW
// where the graph holds the tensor so: the chain transposes each strip, never the whole),
// `image_stride` (image pixels per pixel of the chain's input).
export const TILED_CHAIN_OP = 'SanetTiledChain';
// The largest activation of a strip (any layer) in float32: 64 rows of the full-resolution
// layers' 64 channels at 1024 px wide and full width, 16 at 4096.
export const DEFAULT_TILE_BUDGET_BYTES = 8 * 1024 * 1024;

// The tiling of the stylize() call running now (stylize sets it, the op reads it):
// {tilePixels, tileBudgetBytes, ...}. tilePixels: a strip's height at the image's resolution
// (forcing strips, bands and slices); unset: strips only when the whole would exceed the budget.
let currentTiling = {};

// What the ops did since they were registered: chain runs (the transform's op, decoding,
// counts as one), and the strips their outputs came in (tests read it).
export const tilingStats = { calls: 0, tiles: 0, releasedBytes: 0 };
// The dataIds of the tensors a caller gave stylize(): never freed by an op (release_input).
const callerData = new WeakSet();

// Each layer's output length along one axis, from the chain's input length `n`.
function chainLengths(layers, n) {
  const lengths = [n];
  for (const kind of layers) {
    if (kind === 'pool') n = Math.ceil(n / 2);
    else if (kind === 'up') n *= 2;
    lengths.push(n);
  }
  return lengths;
}

// Splits [0, n) into `count` near-equal ranges.
function splitRange(n, count) {
  count = Math.max(1, Math.min(count, n));
  const size = Math.ceil(n / count);
  const ranges = [];
  for (let start = 0; start < n; start += size) ranges.push([start, Math.min(start + size, n)]);
  return ranges;
}

// The most output rows each layer of `spec` computes at once: tiling.tilePixels scaled to the
// layer (a side at the image's resolution), else as many as keep its output within
// tiling.tileBudgetBytes, and its input rows too. An upsample's are even: it makes two of each.
function stripRows(spec, tiling) {
  const { layers, rowLengths, colLengths, channels } = spec;
  // image_stride: image pixels per pixel of the chain's largest resolution
  const forced = tiling.tilePixels && tiling.tilePixels / spec.imageStride / Math.max(...rowLengths);
  const budget = tiling.tileBudgetBytes || DEFAULT_TILE_BUDGET_BYTES;
  return layers.map((kind, i) => {
    // the bytes of one output row, or of the input rows it reads, whichever is more
    const inputRows = kind === 'pool' ? 2 : kind === 'up' ? 0.5 : 1;
    const rowBytes = 4 * Math.max(colLengths[i + 1] * channels[i + 1], inputRows * colLengths[i] * channels[i]);
    const rows = Math.min(rowLengths[i + 1], forced ? Math.ceil(forced * rowLengths[i + 1]) : Math.floor(budget / rowBytes));
    return kind === 'up' ? Math.max(2, rows - (rows % 2)) : Math.max(1, rows);
  });
}

// Winograd F(m x m, 3x3) (Lavin & Gray, "Fast Algorithms for Convolutional Neural Networks",
// 2016) for the strips' 3x3 convolutions on wasm, where the build chose it for the layer
// (tfjs_graph.py `winograd_convolutions`, attr "winograd": a variant per convolution, from the
// timings in formats/winograd_timings.py). Each m x m block of output comes from an
// (m + 2) x (m + 2) tile of input at stride m, with (m + 2)^2 products per input-output channel
// pair where the direct convolution has 9 m^2 (F(2x2): 16 for 36; F(4x4): 36 for 144): the same
// outputs up to rounding. XNNPACK has no such kernel, so it is spelled in ops that run on its
// threaded kernels:
// - the input transform B^T d B as depthwise convolutions (rows, then columns; stride m);
// - the products as MatMuls [tiles, Cin] x [Cin, Cout] (XNNPACK's fully connected operator:
//   tfjs-backend-wasm takes that path only for two-dimensional, untransposed operands, and
//   caches the operator, its filter packed, per filter tensor), each written into its place in
//   one stack [1, (m + 2)^2, tiles, Cout] (matMulInto);
// - the output transform A^T M A as depthwise convolutions down that stack: over j (stride
//   m + 2), then over i, with the bias and ReLU fused into the second. (Elementwise adds would
//   be fewer operations, but tfjs-backend-wasm runs XNNPACK's binary ops on one thread.)
// Then the m^2 pixels of each block are copied into place within the wasm heap. A strip bounds
// what it holds at once: its input (m + 2)^2 / m^2 times over (the transformed tiles), and its
// output (m + 2)^2 / m^2 times over (the stack) and (m + 2) / m times over (the first sums).
// The matrices are Toom-Cook's at the points 0, 1, -1 and infinity (F(2x2)), and 0, 1, -1, 2,
// -1/2 and infinity (F(4x4): a third less rounding error than 0, +-1, +-2; Barabasz et al.,
// "Error analysis and improving the accuracy of Winograd convolution", 2020).
const WINOGRAD = {
  f2x2: {
    m: 2,
    input: [[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]], // B^T
    filter: [[1, 0, 0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0, 0, 1]], // G
    output: [[1, 1, 1, 0], [0, 1, -1, -1]], // A^T
  },
  f4x4: {
    m: 4,
    input: [
      [1, 1.5, -2, -1.5, 1, 0], [0, -1, -2.5, -0.5, 1, 0], [0, 1, 0.5, -2.5, 1, 0],
      [0, -0.5, -1, 0.5, 1, 0], [0, 2, -1, -2, 1, 0], [0, 1, 1.5, -2, -1.5, 1],
    ],
    filter: [
      [1, 0, 0], [-1 / 3, -1 / 3, -1 / 3], [1 / 3, -1 / 3, 1 / 3],
      [1 / 15, 2 / 15, 4 / 15], [-16 / 15, 8 / 15, -4 / 15], [0, 0, 1],
    ],
    output: [[1, 1, 1, 1, 1, 0], [0, 1, -1, 2, -0.5, 0], [0, 1, 1, 4, 0.25, 0], [0, 1, -1, 8, -0.125, 1]],
  },
};
export const WINOGRAD_VARIANTS = Object.keys(WINOGRAD);

// What the Winograd convolutions did since the page loaded: strips, and the filters they
// transformed (tests read it).
export const winogradStats = { strips: 0, filters: 0 };

// filters: filter dataId -> its (m + 2)^2 transformed matrices U_ij = G g G^T [Cin, Cout]
// (i (m + 2) + j), computed at the layer's first strip. Each becomes a tensor only for its
// first MatMul, and its float32 copy is freed once XNNPACK has packed it there; the model's own
// filter is freed once transformed where stylize releases filters (releasePackedFilters). So
// the weights are held once, as (m + 2)^2 / 9 of the filter (F(2x2) 1.8 x, F(4x4) 4 x), and
// the first run never holds the layer's weights twice over in the wasm heap.
// taps: variant and channels -> the depthwise filters of B^T's rows along rows
// [m + 2, 1, C, 1] and along columns [1, m + 2, C, 1], and of A^T's rows down the stack
// [m + 2, 1, C, 1] (constants: tfjs caches XNNPACK's operator per filter tensor).
// matMul: tfjs-backend-wasm's own BatchMatMul function, to write a product into the stack.
// All per backend instance: the page makes a new one after an out-of-memory, and the old one's
// tensors went with it.
const winogradCaches = new WeakMap(); // backend -> {filters: Map, taps: Map}

function winogradCache(tf) {
  const backend = tf.backend();
  if (!winogradCaches.has(backend)) winogradCaches.set(backend, { filters: new Map(), taps: new Map() });
  return winogradCaches.get(backend);
}

function winogradTaps(tf, variant, channels) {
  const { taps } = winogradCache(tf);
  const key = `${variant} ${channels}`;
  if (!taps.has(key)) {
    const { input, output } = WINOGRAD[variant];
    const span = FAST_DEPTHWISE_TAPS.find((taps) => taps >= input.length);
    const tap = (row, shape) => {
      const padded = [...row, ...new Array(span - row.length).fill(0)];
      return tf.keep(tf.tile(tf.tensor4d(padded, shape), [1, 1, channels, 1]));
    };
    taps.set(key, {
      span,
      rows: input.map((row) => tap(row, [span, 1, 1, 1])),
      columns: input.map((row) => tap(row, [1, span, 1, 1])),
      sums: output.map((row) => tap(row, [span, 1, 1, 1])),
    });
  }
  return taps.get(key);
}

// U_ij = sum_kl G[i][k] G[j][l] g[k][l] for every (Cin, Cout) pair, in float64 then rounded.
function winogradFilters(tf, filter, variant) {
  const { filters } = winogradCache(tf);
  const cached = filters.get(filter.dataId);
  if (cached && cached.variant === variant) return cached;
  if (cached) throw new Error(`winogradConv: one filter asked for as ${cached.variant} and ${variant}`);
  const G = WINOGRAD[variant].filter;
  const size = G.length;
  const [, , cin, cout] = filter.shape;
  const n = cin * cout;
  const g = filter.dataSync(); // [3, 3, Cin, Cout]: tap (k, l) at (3k + l) * n
  const u = Array.from({ length: size * size }, () => new Float32Array(n));
  const rows = new Float64Array(3 * size); // T = G g: [size][3]
  for (let e = 0; e < n; e += 1) {
    for (let i = 0; i < size; i += 1) {
      for (let l = 0; l < 3; l += 1) {
        let sum = 0;
        for (let k = 0; k < 3; k += 1) sum += G[i][k] * g[(3 * k + l) * n + e];
        rows[3 * i + l] = sum;
      }
    }
    for (let i = 0; i < size; i += 1) {
      for (let j = 0; j < size; j += 1) {
        u[size * i + j][e] = G[j][0] * rows[3 * i] + G[j][1] * rows[3 * i + 1] + G[j][2] * rows[3 * i + 2];
      }
    }
  }
  const entry = { variant, shape: [cin, cout], values: u, u: u.map(() => null), packed: new Set() };
  filters.set(filter.dataId, entry);
  winogradStats.filters += 1;
  if (currentTiling.releaseFilters !== false) releaseFilter(tf.backend(), filter, 'winograd');
  return entry;
}

// U_k as a tensor: made at its first use (its values are then dropped from JavaScript).
function winogradMatrix(tf, entry, k) {
  if (!entry.u[k]) {
    entry.u[k] = tf.keep(tf.tensor2d(entry.values[k], entry.shape));
    entry.values[k] = null;
  }
  return entry.u[k];
}

// Frees the float32 copy of a transformed filter matrix that XNNPACK has packed: its fully
// connected operator, cached on (this matrix, the bias, the activation), holds the packed
// weights, and every later MatMul with the matrix uses those (the input's size is not part of
// the operator). Nothing else reads the matrix.
function releaseWinogradMatrix(tf, entry, k) {
  if (entry.packed.has(k)) return;
  entry.packed.add(k);
  freeInPlace(tf.backend(), entry.u[k], 'winograd');
}

// Frees the transformed filters made from `model`'s weights (loadModel wraps model.dispose).
function disposeWinogradFilters(tf, model) {
  const { filters } = winogradCache(tf);
  for (const tensors of Object.values((model.executor && model.executor.weightMap) || {})) {
    for (const tensor of tensors) {
      const entry = filters.get(tensor.dataId);
      if (!entry) continue;
      entry.u.forEach((matrix) => matrix && matrix.dispose());
      filters.delete(tensor.dataId);
    }
  }
}

// XNNPACK's depthwise kernels in tfjs-backend-wasm 4.22 are fast for 3, 4, 9 and 25 taps
// only: 5 to 8 taps took 6 to 8 times as long as 9 (a [k, 1] filter over [1, 130, 130, 64],
// Node, one thread). A transform of 6 taps (F(4x4)) runs as 9, its last 3 zero, over 3 more
// rows or columns: zeros, or rows of the stack left zero (winogradConv).
const FAST_DEPTHWISE_TAPS = [3, 4, 9, 25];

// A [1, ...shape] float32 tensor in the wasm heap, its values from element `zeroFrom` on zero
// (the rest left for the kernels that write there).
function heapTensor(tf, shape, zeroFrom) {
  const backend = tf.backend();
  const tensor = tf.engine().makeTensorFromTensorInfo(backend.makeOutput(shape, 'float32'));
  const offset = backend.dataIdMap.get(tensor.dataId).memoryOffset;
  new Float32Array(backend.wasm.HEAPU8.buffer, offset, tensor.size).fill(0, zeroFrom);
  return tensor;
}

// Runs tfjs-backend-wasm's own kernel `name` with its output made at byte `offset` of the wasm
// heap (inside a tensor the caller holds) instead of in memory of its own; the output is then
// forgotten (the memory is the caller's).
function kernelInto(tf, name, inputs, attrs, offset) {
  const backend = tf.backend();
  const { kernelFunc } = tf.getKernel(name, 'wasm');
  const makeOutput = backend.makeOutput;
  let made = null;
  backend.makeOutput = (shape, dtype) => (made = makeOutput.call(backend, shape, dtype, offset));
  try {
    kernelFunc({ inputs, backend, attrs });
  } finally {
    backend.makeOutput = makeOutput;
  }
  const data = backend.dataIdMap.get(made.dataId);
  backend.wasm.tfjs.disposeData(data.id);
  backend.dataIdMap.delete(made.dataId);
}

// Copies block Y_ab ([1, 1, tiles, Cout]: pixel (a, b) of every m x m output block) into its
// pixels of `out` [1, height, width, Cout], cropped where the tiles overhang: copies within the
// wasm heap.
function placeBlock(tf, out, block, a, b, m, tileColumns) {
  const backend = tf.backend();
  const [, height, width, channels] = out.shape;
  const heap = backend.wasm.HEAPU8;
  const pixel = 4 * channels;
  const target = backend.dataIdMap.get(out.dataId).memoryOffset;
  const source = backend.dataIdMap.get(block.dataId).memoryOffset;
  const columns = Math.floor((width - b + m - 1) / m);
  for (let y = 0; m * y + a < height; y += 1) {
    const row = target + (m * y + a) * width * pixel + b * pixel;
    const from = source + y * tileColumns * pixel;
    for (let x = 0; x < columns; x += 1) {
      heap.copyWithin(row + m * x * pixel, from + x * pixel, from + (x + 1) * pixel);
    }
  }
}

// A VALID 3x3 convolution of `x` (already reflection-padded) with conv's filter and bias, and a
// ReLU where `relu`, as Winograd `conv.winograd` (a key of WINOGRAD). wasm only.
function winogradConv(tf, x, conv, relu) {
  const variant = conv.winograd;
  const { m } = WINOGRAD[variant];
  const size = m + 2;
  const [, paddedHeight, paddedWidth, cin] = x.shape;
  const [height, width] = [paddedHeight - 2, paddedWidth - 2];
  const [tileRows, tileColumns] = [Math.ceil(height / m), Math.ceil(width / m)];
  const tiles = tileRows * tileColumns;
  const cout = conv.filter.shape[3];
  const entry = winogradFilters(tf, conv.filter, variant);
  const inputTaps = winogradTaps(tf, variant, cin);
  const outputTaps = winogradTaps(tf, variant, cout);
  const { span } = inputTaps; // taps per transform: size, or more (FAST_DEPTHWISE_TAPS)
  const tileBytes = 4 * tiles * cout; // one product M_ij
  const offsetOf = (tensor) => tf.backend().dataIdMap.get(tensor.dataId).memoryOffset;
  const depthwiseAttrs = { strides: [1, 1], pad: 'valid', dilations: [1, 1], dataFormat: 'NHWC' };
  // whole tiles, and the transforms' spare taps: zeros, which reach only the outputs cropped off
  const [extraRows, extraColumns] = [m * (tileRows - 1) + span - paddedHeight, m * (tileColumns - 1) + span - paddedWidth];
  const input = extraRows || extraColumns
    ? tf.pad(x, [[0, 0], [0, extraRows], [0, extraColumns], [0, 0]])
    : x;
  // products: the row i of products M_ij, [tiles, Cout] each, at row j; its spare rows zero.
  // sums[b]: sum_j A^T[b][j] M_ij at row i, [1, span, tiles, Cout]; its spare rows zero.
  const products = heapTensor(tf, [1, span, tiles, cout], size * tiles * cout);
  const sums = outputTaps.sums.map(() => heapTensor(tf, [1, span, tiles, cout], size * tiles * cout));
  for (let i = 0; i < size; i += 1) {
    const rows = tf.depthwiseConv2d(input, inputTaps.rows[i], [m, 1], 'valid');
    for (let j = 0; j < size; j += 1) {
      const transformed = tf.depthwiseConv2d(rows, inputTaps.columns[j], [1, m], 'valid');
      const a = tf.reshape(transformed, [tiles, cin]);
      const k = size * i + j;
      kernelInto(tf, 'BatchMatMul', { a, b: winogradMatrix(tf, entry, k) }, { transposeA: false, transposeB: false }, offsetOf(products) + j * tileBytes);
      releaseWinogradMatrix(tf, entry, k);
      tf.dispose([transformed, a]);
    }
    rows.dispose();
    outputTaps.sums.forEach((taps, b) => {
      kernelInto(tf, 'DepthwiseConv2dNative', { x: products, filter: taps }, depthwiseAttrs, offsetOf(sums[b]) + i * tileBytes);
    });
  }
  products.dispose();
  if (input !== x) input.dispose();
  // Y_ab = sum_i A^T[a][i] sums[b][i], its bias added and ReLU applied, each put in place at once
  const out = tf.engine().makeTensorFromTensorInfo(tf.backend().makeOutput([1, height, width, cout], 'float32'));
  sums.forEach((sum, b) => {
    outputTaps.sums.forEach((taps, a) => {
      const block = tf.fused.depthwiseConv2d({
        x: sum, filter: taps, strides: [1, 1], pad: 'valid', bias: conv.bias, activation: relu ? 'relu' : 'linear',
      });
      placeBlock(tf, out, block, a, b, m, tileColumns);
      block.dispose();
    });
    sum.dispose();
  });
  winogradStats.strips += 1;
  return out;
}

// Where a stylization's time goes inside the ops, layer by layer, on wasm (its kernels run
// synchronously, so the clock around a layer's ops is that layer's time): per layer of each op,
// its kind, channels, variant, the fraction of the image's side it runs at, the multiply-adds a
// direct convolution would make (nine per output value and input channel, whatever the variant,
// so that rates compare), and milliseconds, each summed over the op's calls. stylize() clears
// it as it starts; doit bench reads it after a run (its per-layer table).
export const layerProfile = new Map();

function profiledLayers(tf, spec) {
  if (tf.getBackend() !== 'wasm') return null;
  const { layers, rowLengths, colLengths, channels } = spec;
  const largest = Math.max(...rowLengths);
  return layers.map((kind, i) => {
    const key = `${spec.label} ${i}`;
    if (!layerProfile.has(key)) {
      const divisor = 2 ** Math.round(Math.log2((spec.imageStride * largest) / rowLengths[i + 1]));
      layerProfile.set(key, {
        op: spec.label, index: i, kind, inChannels: channels[i], outChannels: channels[i + 1], divisor,
        variant: spec.convs[i] ? spec.convs[i].winograd || 'direct' : null,
        multiplyAdds: 0, ms: 0, calls: 0,
      });
    }
    const entry = layerProfile.get(key);
    entry.calls += 1;
    if (spec.convs[i]) entry.multiplyAdds += 9 * channels[i] * channels[i + 1] * rowLengths[i + 1] * colLengths[i + 1];
    return entry;
  });
}

// A chain run over strips of rows, top to bottom. push(x): the chain's next input rows (NHWC,
// every column; taken over: disposed here). Each layer makes the output rows that its input so
// far determines, in strips of at most stripRows, and passes each strip on to the next layer
// at once (so a strip's rows go through the whole chain before the next strip is made). Before
// it passes on its last strip it frees its input but the rows its later output still needs:
// what the chain holds at once is the strips in flight, the layers' few kept rows, and the
// input of the layers that make several strips of one (an upsample, whose input is small).
// The last layer's strips go to emit(strip).
class ChainStream {
  constructor(tf, spec, tiling, emit) {
    Object.assign(this, { tf, spec, emit, rows: stripRows(spec, tiling), profile: profiledLayers(tf, spec) });
    // per layer: input rows gathered (from row `start`), rows received, rows made
    this.state = spec.layers.map(() => ({ parts: [], start: 0, received: 0, made: 0 }));
  }

  push(x) {
    this.feed(0, x);
  }

  feed(i, x) {
    const { tf, spec } = this;
    if (i === spec.layers.length) {
      this.emit(x);
      return;
    }
    const state = this.state[i];
    const kind = spec.layers[i];
    const [n, m] = [spec.rowLengths[i], spec.rowLengths[i + 1]];
    state.parts.push(x);
    state.received += x.shape[1];
    const complete = state.received === n;
    // the output rows that the input received so far determines
    let ready = m;
    if (!complete) {
      if (kind === 'pool') ready = Math.floor(state.received / 2);
      else if (kind === 'up') ready = 2 * state.received;
      else ready = state.received - 1; // row r reads input row r + 1
    }
    if (ready === state.made) { // nothing new yet (a complete input has made everything)
      if (complete) {
        tf.dispose(state.parts);
        state.parts = [];
      }
      return;
    }
    const buffer = state.parts.length === 1 ? state.parts[0] : tf.concat(state.parts, 1);
    if (state.parts.length > 1) tf.dispose(state.parts);
    const start = state.start;
    for (let r0 = state.made; r0 < ready; r0 += this.rows[i]) {
      const r1 = Math.min(r0 + this.rows[i], ready);
      const started = this.profile && performance.now();
      const strip = tf.tidy(() => this.layer(i, buffer, start, r0, r1));
      if (this.profile) this.profile[i].ms += performance.now() - started;
      // the buffer's rows that no later output reads are freed before the strip goes on: a
      // layer that ran whole holds nothing while the rest of the chain runs
      if (r1 === ready) this.keep(i, buffer, ready);
      this.feed(i + 1, strip);
    }
  }

  // Keeps the input rows of layer i (in `buffer`, from row state.start on) that its output rows
  // from `made` on read; frees the rest.
  keep(i, buffer, made) {
    const { tf, spec } = this;
    const state = this.state[i];
    const kind = spec.layers[i];
    const first = kind === 'pool' ? 2 * made : kind === 'up' ? made / 2 : Math.max(made - 1, 0);
    state.parts = [];
    if (first < state.received && made < spec.rowLengths[i + 1]) { // (all made: nothing to keep)
      state.parts.push(first === state.start ? buffer
        : tf.slice(buffer, [0, first - state.start, 0, 0], [-1, state.received - first, -1, -1]));
    }
    if (state.parts[0] !== buffer) buffer.dispose();
    Object.assign(state, { start: first, made });
  }

  // Output rows [r0, r1) of layer i, from `buffer`: its input from row `start` on.
  layer(i, buffer, start, r0, r1) {
    const { tf, spec } = this;
    const kind = spec.layers[i];
    const n = spec.rowLengths[i];
    const [a, b] = kind === 'pool' ? [2 * r0, Math.min(2 * r1, n)]
      : kind === 'up' ? [r0 / 2, r1 / 2]
        : [Math.max(r0 - 1, 0), Math.min(r1 + 1, n)];
    const x = a === start && b - a === buffer.shape[1] ? buffer : tf.slice(buffer, [0, a - start, 0, 0], [-1, b - a, -1, -1]);
    if (kind === 'pool') return tf.maxPool(x, 2, 2, 'same'); // odd only at the true far border: ceil mode
    if (kind === 'up') {
      return tf.image.resizeNearestNeighbor(x, [2 * x.shape[1], 2 * x.shape[2]], spec.alignCorners, spec.halfPixelCenters);
    }
    // a reflection pad of 1 (top and bottom only at the image's), then a VALID 3x3 convolution
    const padded = tf.mirrorPad(x, [[0, 0], [r0 === 0 ? 1 : 0, r1 === n ? 1 : 0], [1, 1], [0, 0]], 'reflect');
    const conv = spec.convs[i];
    if (conv.winograd && tf.getBackend() === 'wasm') return winogradConv(tf, padded, conv, kind === 'conv_relu');
    return tf.fused.conv2d({
      x: padded,
      filter: conv.filter,
      bias: conv.bias,
      strides: [1, 1],
      pad: 'valid',
      dataFormat: 'NHWC',
      activation: kind === 'conv_relu' ? 'relu' : 'linear',
    });
  }
}

// Bands of rows of one tensor of `shape`, assembled in order as they come (each is disposed).
// On wasm each band is copied into the output at once: concatenating them at the end would
// hold the output twice (403 MB a copy for relu4_1 at 4096x3072). A first band that is the
// whole is the output itself.
class RowBands {
  constructor(tf, shape, rowAxis) {
    Object.assign(this, { tf, shape, rowAxis, row: 0, parts: [], out: null });
    this.inPlace = tf.getBackend() === 'wasm';
  }

  add(band) {
    const { tf, shape, rowAxis } = this;
    const rows = band.shape[rowAxis];
    if (this.row === 0 && rows === shape[rowAxis]) this.out = band;
    else if (!this.inPlace) this.parts.push(band);
    else {
      this.out = this.out || tf.fill(shape, 0);
      const backend = tf.backend();
      const rowBytes = shape.slice(rowAxis + 1).reduce((a, b) => a * b, 1) * 4;
      const segments = shape.slice(0, rowAxis).reduce((a, b) => a * b, 1);
      const source = backend.dataIdMap.get(band.dataId).memoryOffset;
      const target = backend.dataIdMap.get(this.out.dataId).memoryOffset;
      const heap = backend.wasm.HEAPU8;
      for (let s = 0; s < segments; s += 1) {
        const from = source + s * rows * rowBytes;
        heap.copyWithin(target + (s * shape[rowAxis] + this.row) * rowBytes, from, from + rows * rowBytes);
      }
      band.dispose();
    }
    this.row += rows;
  }

  result() {
    if (this.out) return this.out;
    const out = this.tf.concat(this.parts, this.rowAxis);
    this.tf.dispose(this.parts);
    return out;
  }
}

// The chain's output: `pushAll(stream)` pushes its input into the stream, strip by strip; the
// strips that come out are written in order into the output (RowBands), transposed to NCHW
// where the spec says so.
function runChain(tf, spec, tiling, pushAll) {
  const { layers, rowLengths, colLengths, channels } = spec;
  const last = layers.length;
  const outShape = spec.outputNCHW
    ? [1, channels[last], rowLengths[last], colLengths[last]]
    : [1, rowLengths[last], colLengths[last], channels[last]];
  const out = new RowBands(tf, outShape, spec.outputNCHW ? 2 : 1);
  tilingStats.calls += 1;
  const stream = new ChainStream(tf, spec, tiling, (strip) => {
    tilingStats.tiles += 1;
    out.add(spec.outputNCHW ? replaced(strip, (y) => tf.transpose(y, [0, 3, 1, 2])) : strip);
  });
  pushAll(stream);
  return out.result();
}

// The chain's spec from a node's attrs, its weights (a filter and a bias per convolution), its
// input's shape, and what layerProfile calls it.
function chainSpec(attrs, weights, inputShape, label) {
  const attr = (name) => attrs[name];
  const layers = attr('layers');
  const spec = {
    label, // what layerProfile calls the op
    layers,
    alignCorners: Boolean(attr('align_corners')),
    halfPixelCenters: Boolean(attr('half_pixel_centers')),
    // (tfjs-converter lower-cases a custom op's string attrs)
    inputNCHW: String(attr('input_layout')).toUpperCase() === 'NCHW',
    outputNCHW: String(attr('output_layout')).toUpperCase() === 'NCHW',
    imageStride: attr('image_stride') || 1,
    convs: {},
  };
  if (inputShape.length !== 4 || inputShape[0] !== 1) {
    throw new Error(`${TILED_CHAIN_OP}: expected an input of [1, H, W, C] or [1, C, H, W], got [${inputShape}]`);
  }
  const [height, width, inChannels] = spec.inputNCHW
    ? [inputShape[2], inputShape[3], inputShape[1]]
    : inputShape.slice(1);
  spec.channels = [inChannels]; // each layer's output channels, after the input's
  // each convolution's variant, in order: "direct" (or none) or a key of WINOGRAD (winogradConv,
  // on wasm)
  const variants = attr('winograd') || [];
  let next = 0;
  layers.forEach((kind, i) => {
    if (kind !== 'conv' && kind !== 'conv_relu') {
      spec.channels.push(spec.channels[i]);
      return;
    }
    const [filter, bias] = [weights[next], weights[next + 1]];
    next += 2;
    const variant = String(variants[next / 2 - 1] || 'direct').toLowerCase();
    if (variant !== 'direct' && !WINOGRAD[variant]) {
      throw new Error(`${TILED_CHAIN_OP}: unknown convolution variant "${variant}" (known: direct, ${WINOGRAD_VARIANTS.join(', ')})`);
    }
    spec.convs[i] = { filter, bias, winograd: variant === 'direct' ? null : variant };
    spec.channels.push(filter.shape[3]);
  });
  if (next !== weights.length) throw new Error(`${TILED_CHAIN_OP}: expected a filter and bias per convolution`);
  spec.rowLengths = chainLengths(layers, height);
  spec.colLengths = chainLengths(layers, width);
  return spec;
}

function tiledChain(tf, node, tiling) {
  const [input, ...weights] = node.inputs;
  const stride = node.attrs.image_stride || 1;
  const spec = chainSpec(node.attrs, weights, input.shape, stride === 1 ? 'encoder' : `encoder from 1/${stride}`);
  const out = runChain(tf, spec, tiling, (stream) => {
    // strips of the input as tall as the first layer's strips need
    const [n, m] = [spec.rowLengths[0], spec.rowLengths[1]];
    const rows = Math.max(1, Math.ceil((stream.rows[0] * n) / m));
    const axis = spec.inputNCHW ? 2 : 1;
    for (const [a, b] of splitRange(n, Math.ceil(n / rows))) {
      stream.push(tf.tidy(() => {
        const begin = [0, 0, 0, 0];
        const size = [-1, -1, -1, -1];
        [begin[axis], size[axis]] = [a, b - a];
        const strip = b - a === n ? input : tf.slice(input, begin, size);
        if (spec.inputNCHW) return tf.transpose(strip, [0, 2, 3, 1]);
        return strip === input ? tf.clone(input) : strip; // the stream disposes what it is given
      }));
    }
  });
  // tfjs_graph.py sets `release_input` where this op alone reads its input's data: the
  // encoder's image (150 MB at 4096x3072), kept by tfjs-converter to the run's end otherwise.
  // Never a tensor the caller gave (stylize records them).
  if (node.attrs.release_input && tf.getBackend() === 'wasm' && !callerData.has(input.dataId)) {
    tilingStats.releasedBytes += freeInPlace(tf.backend(), input, INPUT_READ);
  }
  return out;
}

// The transform in bands (tfjs_graph.py `band_transform` replaces the two SANet blocks and the
// merge convolution by one SanetTransform node). Inputs: per block (relu4_1's, then
// relu5_1's) its content features [1, C, H, W] and their mean (the graph computes it), the
// style's keys [1, C, Ns], key bias [1, 1, Ns] and values [1, C, Ns], the output bias
// [1, C, 1, 1]; then the merge convolution's filter and bias. The op computes the features'
// unbiased variance (squared differences summed band by band), then, band after band of
// relu4_1 rows [r0, r1), the sum of relu4_1's block on those rows and relu5_1's on rows
// [floor(r0 / 2), ceil(r1 / 2)) upsampled (nearest x2), each block's attention in slices of
// content positions, and streams those rows into the merge convolution (a ChainStream: its
// one-row halo is kept, not recomputed). The softmax is per position, and every other step is
// per position or the convolution, so each band is what the whole gives. One band with one
// slice is the graph it replaced, op for op.
export const TRANSFORM_OP = 'SanetTransform';
// One band's relu4_1-level rows (C x rows x W float32): one band up to 1024x512 at full
// width; 16 rows of 403 MB at 4096x3072. A band's attention and sums take about five times
// its rows while it runs.
export const DEFAULT_BAND_BUDGET_BYTES = 16 * 1024 * 1024;
// One attention slice's scores (positions x style positions float32): 512 positions with a
// 512-px style at full width, as the exported graph's eight slices at 512 px.
export const DEFAULT_ATTENTION_BUDGET_BYTES = 8 * 1024 * 1024;
const WASM32_BYTES = 2 ** 32;

// What the op did since it was registered: calls, bands, attention slices, and the bytes of
// features it freed (tests read it).
export const transformStats = { calls: 0, bands: 0, slices: 0, releasedBytes: 0 };

// f(x), with x disposed once f made its successor.
function replaced(x, f) {
  const y = f(x);
  if (y !== x) x.dispose();
  return y;
}

// model.py mean_variance_norm's scale, rsqrt(mean((x - mean)^2) * n / (n - 1) + epsilon), with
// the graph's ops; the squared differences in bands of `bandRows` rows where the features are
// taller (the graph's are a whole copy of them: 403 MB for relu4_1 at 4096x3072).
function reciprocalStd(tf, content, mean, epsilon, bandRows) {
  const [, channels, height, width] = content.shape;
  return tf.tidy(() => {
    let average;
    if (bandRows >= height) average = tf.mean(tf.squaredDifference(content, mean), [2, 3], true);
    else {
      let total = null;
      for (const [a, b] of splitRange(height, Math.ceil(height / bandRows))) {
        const part = tf.tidy(() =>
          tf.sum(tf.squaredDifference(tf.slice(content, [0, 0, a, 0], [1, channels, b - a, width]), mean), [2, 3], true));
        total = total ? tf.add(total, part) : part;
      }
      average = tf.div(total, height * width);
    }
    const count = tf.scalar(height * width);
    return tf.rsqrt(tf.add(tf.div(tf.mul(average, count), tf.sub(count, 1)), epsilon));
  });
}

// One SANet block on content rows [a, b): [1, C, b - a, W] = attention + out_bias + content.
function sanetRows(tf, block, a, b, slicePositions) {
  const [, channels, height, width] = block.content.shape;
  const content = a === 0 && b === height
    ? block.content
    : tf.slice(block.content, [0, 0, a, 0], [1, channels, b - a, width]);
  const positions = (b - a) * width;
  let queries = replaced(tf.sub(content, block.mean), (centred) => tf.mul(centred, block.rstd));
  queries = replaced(queries, (normalized) =>
    tf.tidy(() => tf.transpose(tf.reshape(normalized, [1, channels, positions]), [0, 2, 1])));
  const parts = [];
  for (let start = 0; start < positions; start += slicePositions) {
    const count = Math.min(slicePositions, positions - start);
    if (count * block.keys.shape[2] * 4 >= WASM32_BYTES) {
      // tfjs-backend-wasm's malloc takes a 32-bit size: a larger one would wrap around
      throw new Error(`${TRANSFORM_OP}: out of memory: an attention slice of ` +
        `${(count * block.keys.shape[2] * 4 / 1e9).toFixed(1)} GB is more than wasm32 can address; ` +
        'lower attentionBudgetBytes');
    }
    parts.push(tf.tidy(() => {
      const rows = count === positions ? queries : tf.slice(queries, [0, start, 0], [1, count, channels]);
      const weights = tf.softmax(tf.add(tf.matMul(rows, block.keys), block.keyBias));
      // (weights x values^T)^T: XNNPACK packs values^T once per stylization, and what is
      // transposed is [count, C], not the weights [count, Ns] (Ns / C = 8 times as large)
      return tf.transpose(tf.matMul(weights, block.valuesT), [0, 2, 1]);
    }));
  }
  queries.dispose();
  transformStats.slices += parts.length;
  let attention = parts[0];
  if (parts.length > 1) {
    attention = tf.concat(parts, 2);
    tf.dispose(parts);
  }
  const out = replaced(
    replaced(attention, (x) => tf.tidy(() => tf.add(tf.reshape(x, [1, channels, b - a, width]), block.outBias))),
    (x) => tf.add(x, content),
  );
  if (content !== block.content) content.dispose();
  return out;
}

// Rows [r0, r1) of the merge convolution's input (the blocks' sum), NHWC.
function transformBand(tf, spec, r0, r1) {
  const [block4, block5] = spec.blocks;
  const [, channels, , width] = block4.content.shape;
  const [a5, b5] = [Math.floor(r0 / 2), Math.ceil(r1 / 2)];
  const branch4 = sanetRows(tf, block4, r0, r1, spec.slicePositions[0]);
  const branch5 = sanetRows(tf, block5, a5, b5, spec.slicePositions[1]);
  const up = tf.tidy(() => {
    const nhwc = tf.transpose(branch5, [0, 2, 3, 1]);
    const [rows5, width5] = [nhwc.shape[1], nhwc.shape[2]];
    const resized = tf.image.resizeNearestNeighbor(nhwc, [2 * rows5, 2 * width5], spec.alignCorners, spec.halfPixelCenters);
    return tf.slice(tf.transpose(resized, [0, 3, 1, 2]), [0, 0, r0 - 2 * a5, 0], [1, channels, r1 - r0, width]);
  });
  branch5.dispose();
  const merged = tf.add(branch4, up);
  tf.dispose([branch4, up]);
  return replaced(merged, (x) => tf.transpose(x, [0, 2, 3, 1]));
}

// x [1, R, C] transposed to [1, C, R] in x's own wasm memory, through a copy in JavaScript:
// x's values are then the transpose's, so only where nothing reads x again.
function transposedInPlace(tf, x) {
  const [, rows, columns] = x.shape;
  const backend = tf.backend();
  const values = new Float32Array(backend.wasm.HEAPU8.buffer, backend.dataIdMap.get(x.dataId).memoryOffset, x.size);
  const copy = values.slice();
  for (let r = 0; r < rows; r += 1) {
    for (let c = 0; c < columns; c += 1) values[c * rows + r] = copy[r * columns + c];
  }
  return tf.reshape(x, [1, columns, rows]);
}

function bandedTransform(tf, node, tiling) {
  const names = ['content', 'mean', 'keys', 'keyBias', 'values', 'outBias'];
  const blocks = [0, 1].map((b) => Object.fromEntries(names.map((name, i) => [name, node.inputs[b * names.length + i]])));
  const [filter, bias, ...decoderWeights] = node.inputs.slice(2 * names.length);
  const [block4] = blocks;
  if (!bias || blocks.some((b) => b.content.shape.length !== 4 || b.content.shape[0] !== 1)) {
    throw new Error(`${TRANSFORM_OP}: expected two blocks of [1, C, H, W] features and the merge convolution's weights`);
  }
  const [, channels, height, width] = block4.content.shape;
  // tiling.tilePixels (a side at the image's resolution, 8x relu4_1's) forces bands and
  // slices of about that side; otherwise the budgets decide. Even bands: relu5_1's rows
  // (half as many) then start where the last band's ended.
  const forced = tiling.tilePixels ? Math.max(1, Math.ceil(tiling.tilePixels / 8)) : 0;
  let bandRows = Math.min(height, forced || Math.max(1, Math.floor((tiling.bandBudgetBytes || DEFAULT_BAND_BUDGET_BYTES) / (channels * width * 4))));
  if (!forced && bandRows > 1 && bandRows < height) bandRows -= bandRows % 2;
  const slicePositions = blocks.map((b) => forced * forced || Math.max(1, Math.floor(
    (tiling.attentionBudgetBytes || DEFAULT_ATTENTION_BUDGET_BYTES) / (b.keys.shape[2] * 4))));
  const spec = {
    blocks,
    slicePositions,
    alignCorners: Boolean(node.attrs.align_corners),
    halfPixelCenters: Boolean(node.attrs.half_pixel_centers),
  };
  transformStats.calls += 1;
  const epsilon = node.attrs.epsilon;
  blocks.forEach((block, i) => {
    // the same bands' bytes for relu5_1 (a quarter of the positions: twice the rows, about)
    const rows = i === 0 ? bandRows : Math.max(1, Math.floor((bandRows * width) / block.content.shape[3]));
    block.rstd = reciprocalStd(tf, block.content, block.mean, epsilon, rows);
    // [1, Ns, C]: where nothing else reads the values (tfjs_graph.py sets release_values), in
    // their own memory on wasm (a copy beside them had raised the heap's peak a step)
    const inPlace = node.attrs.release_values && tf.getBackend() === 'wasm' && !callerData.has(block.values.dataId);
    block.valuesT = inPlace ? transposedInPlace(tf, block.values) : tf.transpose(block.values, [0, 2, 1]);
  });
  try {
    // the merge convolution, then the decoder's chain where the graph merged it in
    // (tfjs_graph.py decode_in_bands): one stream, so the transform's output never exists whole
    const decoding = decoderWeights.length > 0;
    const attr = (name) => node.attrs[(decoding ? 'decoder_' : '') + name];
    const chain = chainSpec({
      layers: [node.attrs.activation === 'relu' ? 'conv_relu' : 'conv', ...(decoding ? attr('layers') : [])],
      align_corners: attr('align_corners'),
      half_pixel_centers: attr('half_pixel_centers'),
      image_stride: decoding ? attr('image_stride') : 8,
      winograd: node.attrs.winograd, // the merge convolution's, then the decoder's
    }, [filter, bias, ...decoderWeights], [1, height, width, channels], decoding ? 'merge and decoder' : 'merge');
    const out = runChain(tf, chain, tiling, (stream) => {
      for (const [r0, r1] of splitRange(height, Math.ceil(height / bandRows))) {
        transformStats.bands += 1;
        stream.push(transformBand(tf, spec, r0, r1));
      }
    });
    if (node.attrs.release_features) releaseNow(tf, blocks.map((block) => block.content));
    return out;
  } finally {
    blocks.forEach((block) => tf.dispose([block.rstd, block.valuesT]));
  }
}

// Frees the wasm memory of `tensors` at once, whatever still refers to them. The transform's
// features pass the loop's cond (a Switch), and tfjs-converter keeps what passed control flow
// until the run ends (relu4_1's and relu5_1's: 403 + 101 MB at 4096x3072). tfjs_graph.py's
// band_transform sets `release_features` where everything else that reads them runs before
// the transform; a read after this finds no data and throws.
//
// The engine counts each tensor sharing the data (Identity's and Reshape's outputs, each a
// reference) off when it is disposed, but only while the data is still known: the first
// tensor disposed after this forgets it, and the others would stay counted in tf.memory()
// forever. They are counted off here instead.
function releaseNow(tf, tensors) {
  if (tf.getBackend() !== 'wasm') return;
  const backend = tf.backend();
  const state = tf.engine().state;
  for (const tensor of tensors) {
    const data = backend.dataIdMap.get(tensor.dataId);
    if (!data) continue;
    transformStats.releasedBytes += tensor.size * 4;
    const others = data.refCount - 1;
    backend.disposeData(tensor.dataId, true);
    state.numTensors -= others;
    state.numBytes -= others * tensor.size * 4;
  }
}

// Registers SanetTiledChain with tfjs-converter: before a model is loaded (the converter
// resolves each node's op when it reads the graph). loadModel calls it.
export function registerSanetOps(tf) {
  tf.registerOp(TILED_CHAIN_OP, (node) => tiledChain(tf, node, currentTiling));
  tf.registerOp(TRANSFORM_OP, (node) => bandedTransform(tf, node, currentTiling));
}

// tf.loadGraphModel, less the model's own copy of its weights: GraphModel keeps the fetched
// weight bytes (`artifacts.weightData`, the whole model) for `model.save()`, while every
// weight already lives in the backend's memory. Dropping them saves the model's size in page
// memory (84 MB at full width); this page never saves the model. A copy of the artifacts
// object is changed, not the object itself: tf.io.fromMemory hands the caller's own object to
// every model loaded from it (the page's backend trials load one fetch several times).
export async function loadModel(tf, url, options) {
  registerSanetOps(tf);
  const model = await tf.loadGraphModel(url, options);
  model.artifacts = { ...model.artifacts, weightData: null };
  markFilters(model);
  const dispose = model.dispose.bind(model);
  model.dispose = () => {
    disposeWinogradFilters(tf, model);
    dispose();
  };
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
//
// options.tilePixels: run the full- and half-resolution layers on tiles of about this side (at
// the image's resolution), whatever the memory; options.tileBudgetBytes: the most one
// activation of those layers may take before they run in tiles (DEFAULT_TILE_BUDGET_BYTES).
// options.bandBudgetBytes, options.attentionBudgetBytes: the transform's band of relu4_1 rows
// and attention slice (DEFAULT_BAND_BUDGET_BYTES, DEFAULT_ATTENTION_BUDGET_BYTES); tilePixels
// forces those too. The result is the same either way (within float rounding). options.releaseFilters === false:
// keep the model's float32 filters after the first run (releasePackedFilters).
export async function stylize(tf, model, content, style, iters, maxResolution, options = {}) {
  checkInputs(content.shape, style.shape, iters, maxResolution);
  shareIdentityOnWasm(tf);
  if (tf.getBackend() === 'wasm') recordConvFiltersOnWasm(tf);
  // options.cpuForward === false: without it (js/gpu_model.mjs, to check a GPU still needs it)
  if (tf.getBackend() === 'webgpu' && options.cpuForward !== false) keepSmallTensorsOnCpuInWebGPU(tf);
  const given = options.styleFeatures || null;
  for (const tensor of [content, style, ...(given ? [given.style4_1, given.style5_1] : [])]) callerData.add(tensor.dataId);
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
  layerProfile.clear();
  const tiling = currentTiling;
  currentTiling = {
    tilePixels: options.tilePixels,
    tileBudgetBytes: options.tileBudgetBytes,
    bandBudgetBytes: options.bandBudgetBytes,
    attentionBudgetBytes: options.attentionBudgetBytes,
    releaseFilters: options.releaseFilters, // (winogradFilters frees a filter once transformed)
  };
  try {
    let out;
    if (given) out = { result: await model.executeAsync(inputs, ['result']), styleFeatures: given };
    else {
      const [result, style4_1, style5_1] = await model.executeAsync(inputs, ['result', 'style4_1', 'style5_1']);
      out = { result, styleFeatures: { style4_1, style5_1 } };
    }
    if (options.releaseFilters !== false && !releasedModels.has(model)) {
      releasePackedFilters(tf, model);
      releasedModels.add(model);
    }
    return out;
  } finally {
    currentTiling = tiling;
    inputs.iters.dispose();
    inputs.max_resolution.dispose();
  }
}
