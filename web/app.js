// The stylization page: everything runs here, in the browser; no image leaves the page.
// tf (TensorFlow.js) and its wasm backend come from the page's own vendor/ copy (no CDN).
import {
  DEFAULT_ATTENTION_BUDGET_BYTES, MIN_SIDE, StylizeInputError, bytesToBase64, checkInputs, fittedSize,
  loadModel, setWasmThreads, stylize,
} from './sanet.mjs';

const tf = window.tf;
const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);

// The memory one stylization takes, modelled on the tab's page memory and wasm heap measured
// at full width (scripts/page-memory.sh, js/profile_model.mjs; docs/page.md, "Memory"): the
// page itself, the wasm thread pool's workers, an empty wasm module, the weights' copies
// (XNNPACK's and tfjs's), the working set of the strips, bands and slices (js/sanet.mjs
// SanetTiledChain and SanetTransform: bounded by their budgets) with what the allocator cannot
// reuse, what grows with the whole image (the images, relu4_1's and relu5_1's features), and
// one attention slice per block with its softmax. Fitted to the page memory in Chromium after
// one stylization (2026-12-07: the strips of 8 MiB, the image freed once encoded and resizes
// to the same size shared): the bundled photo and paintings at 256, 384 and 512 px (one
// thread; 332, 333 and 390 MB; the heap grows in steps, 256 and 384 took the same) and a
// 4096x3072 photo with a 512 painting at 1024x768, 2048x1536 and 4096x3072 (two threads; 446,
// 645 and 1,331 MB). The estimates: docs/page.md, "What it takes, measured". A run the device cannot afford is refused before it starts, naming a maximum
// resolution that fits.
const MB = 1e6;
// The page, TensorFlow.js, images: page memory less heap and workers (34 MB at 512 px), and
// room for the heap's growth in steps (emscripten grows it by a fifth, at most 96 MB past
// what was asked).
const PAGE_BYTES = 50 * MB;
const WASM_WORKER_BYTES = 18 * MB; // each worker of the wasm thread pool (js/sanet.mjs setWasmThreads)
const HEAP_BASE_BYTES = 17 * MB; // an empty wasm module
// The weights' transposed and packed copies and scratch: their own float32 copy is freed after
// the first run (js/sanet.mjs releasePackedFilters; three copies until then).
const HEAP_PER_WEIGHT_BYTE = 2.2;
const HEAP_WORKING_BYTES = 54 * MB; // the strips', bands' and slices' working set
const HEAP_PER_PIXEL = 78; // per pixel of the larger image
// More per pixel up to these sizes of the larger image (fitted: the strips and bands grow with
// the photo's width until their budgets bind, and the heap grows in steps of a fifth).
const KNEES = [[2048 * 1536, 13], [512 * 512, 249]]; // [pixels, bytes per pixel up to them]
const WASM_CEILING_BYTES = 4 * 2 ** 30; // wasm32, and tfjs's MAXIMUM_MEMORY
// What a tab may use: most of wasm32's 4 GB, or half of what the device reports having
// (navigator.deviceMemory: Chromium, in GB, capped at 8); ?memory_mb= sets it by hand.
const MEMORY_BUDGET_BYTES = params.has('memory_mb')
  ? Number(params.get('memory_mb')) * MB
  : Math.min(0.8 * WASM_CEILING_BYTES, navigator.deviceMemory ? (navigator.deviceMemory * 2 ** 30) / 2 : Infinity);
// ?attention_budget_mb= moves the transform's attention slice budget (js/sanet.mjs
// DEFAULT_ATTENTION_BUDGET_BYTES): larger slices, fewer MatMuls, more memory. The guard counts it.
const ATTENTION_BUDGET_BYTES = params.has('attention_budget_mb')
  ? Number(params.get('attention_budget_mb')) * MB
  : DEFAULT_ATTENTION_BUDGET_BYTES;
const WARMUP_SIDE = 32;
const THREADS_KEY = 'sanet.threads'; // localStorage: the user's thread count, or 'auto'
const BACKEND_KEY = 'sanet.backend'; // localStorage: the backend chosen by hand, or 'auto'
const AUTO_KEY = 'sanet.auto'; // localStorage: auto's measured choice, per build and device
const BUNDLE_KEY = 'sanet.bundle'; // localStorage: the model bundle chosen by hand
const BACKENDS = ['auto', 'webgpu', 'webgl', 'wasm', 'cpu'];
// What a software renderer calls itself: WebGL's unmasked renderer (SwiftShader, Mesa's
// llvmpipe and softpipe, Windows' "Microsoft Basic Render Driver") or a WebGPU adapter's info.
// On the CPU they are many times slower than wasm: a 256-px stylization took 67.8 s on
// SwiftShader's WebGL and 244 s on its WebGPU against 4.4 s on wasm with one thread (the
// smoke stage, full width, 2 cores).
const SOFTWARE_RENDERER = /swiftshader|llvmpipe|softpipe|software|basic render/i;
// auto's trial where more than one real backend remains: a stylization this large on each,
// after a warm-up; no new step starts once the budget is spent (a step is never cut short).
const TRIAL_SIDE = 64;
const TRIAL_BUDGET_MS = 6000;
const RELOAD_KEY = 'sanet.isolationReload'; // sessionStorage: reloaded once for the worker
const SERVICE_WORKER_TIMEOUT_MS = 10_000;

const images = { content: null, style: null }; // {name, bitmap}
let model = null;
let weightBytes = 0; // the model's float32 weights (build.json)
let busy = false;
let lastResult = null; // {content, style}: the images of the result shown
// The style's encoded features from the last run, to stylize again with the same style (any
// content, iterations) without encoding it again: {style: images.style, shape, features}.
let styleMemo = null;
const stats = {
  backend: null, threads: null, isolated: null, offline: null, modelLoadMs: null, warmupMs: null, runs: [],
  choice: null, // how the backend was chosen: {by: 'hand' | 'auto', why, trials, remembered}
  bundle: null, // the model bundle loaded: {name, path, bytes}
  examplesPreselected: false, waitedForConsent: false,
};
// For the smoke test and the curious: timings, state, and (with ?expose=1) the model inputs.
window.sanet = { stats, phase: 'loading', status: '', lastInputs: null };

function setStatus(text, kind = 'info') {
  $('status').textContent = text;
  $('status').dataset.kind = kind;
  window.sanet.status = text;
  if (kind === 'error') window.sanet.phase = 'error';
}

class UserError extends Error {}

function neededBytes(contentShape, styleShape, weightBytes) {
  const cells = ([h, w], f) => Math.ceil(h / f) * Math.ceil(w / f);
  // one slice of each block's attention scores and their softmax (js/sanet.mjs SanetTransform)
  const slice = (f) => 2 * Math.min(ATTENTION_BUDGET_BYTES, 4 * cells(contentShape, f) * cells(styleShape, f));
  const [attention4, attention5] = [slice(8), slice(16)];
  const pixels = Math.max(contentShape[0] * contentShape[1], styleShape[0] * styleShape[1]);
  return PAGE_BYTES + WASM_WORKER_BYTES * wasmWorkers() + HEAP_BASE_BYTES + HEAP_PER_WEIGHT_BYTE * weightBytes +
    HEAP_WORKING_BYTES + HEAP_PER_PIXEL * pixels + KNEES.reduce((sum, [knee, bytes]) => sum + bytes * Math.min(pixels, knee), 0) +
    Math.max(attention4, attention5);
}

// The workers the wasm backend started for its threads (none on other backends, or before
// the backend starts: the page's own budget then).
function wasmWorkers() {
  const backend = tf.getBackend() === 'wasm' ? tf.backend() : null;
  const pool = backend && backend.wasm && backend.wasm.PThread;
  return pool ? pool.unusedWorkers.length + pool.runningWorkers.length : 0;
}

// The default maximum resolution: the largest (a multiple of 16) at which a square photo and
// painting fit the device's budget, up to DEFAULT_RESOLUTION_CAP; the user's own choice stays.
const DEFAULT_RESOLUTION_CAP = 1024;
function setDefaultResolution() {
  const field = $('max-resolution');
  if (field.value !== field.defaultValue) return;
  for (let res = DEFAULT_RESOLUTION_CAP; res >= 256; res -= 16) {
    if (neededBytes([res, res], [res, res], weightBytes) <= MEMORY_BUDGET_BYTES) {
      field.value = String(res);
      field.defaultValue = String(res);
      return;
    }
  }
}

// The largest maximum resolution (a multiple of 16) whose stylization of the chosen images
// needs at most `budget` bytes, or null.
function largestResolutionWithin(budget) {
  const { content, style } = images;
  for (let res = 4096; res >= MIN_SIDE; res -= 16) {
    const c = fittedSize(content.bitmap.height, content.bitmap.width, res);
    const s = fittedSize(style.bitmap.height, style.bitmap.width, res);
    if (neededBytes(c, s, weightBytes) <= budget) return res;
  }
  return null;
}

// How a wasm module that ran out of memory fails: a trap, an abort, or a refused grow.
const OUT_OF_MEMORY = /out of memory|memory access out of bounds|Cannot enlarge memory|Maximum memory size|Array buffer allocation failed|\bOOM\b/i;

function advice(resolution) {
  return resolution ? `choose ${resolution} or less` : 'these images are too large for this device';
}

function tooBigMessage(maxResolution, needed) {
  return `Maximum resolution ${maxResolution} needs about ${Math.round(needed / MB)} MB of memory ` +
    `(this tab can use about ${Math.round(MEMORY_BUDGET_BYTES / MB)} MB): ` +
    `${advice(largestResolutionWithin(MEMORY_BUDGET_BYTES))}.`;
}

// The estimate fitted but the device still ran out: suggest half the memory.
function outOfMemoryMessage(maxResolution, needed) {
  return `This device ran out of memory at maximum resolution ${maxResolution}: ` +
    `${advice(largestResolutionWithin(needed / 2))}.`;
}

// After a wasm out-of-memory the backend's module is not to be trusted: make a fresh one and
// load the model into it again (from the browser's cache), so the page stays usable.
async function restartBackend() {
  styleMemo = null; // its tensors lived in the old module
  const name = tf.getBackend();
  const engine = tf.engine();
  const { factory, priority } = engine.registryFactory[name];
  model = null; // its weights lived in the old module
  try {
    tf.removeBackend(name);
  } catch {
    // the old module aborted and cannot dispose itself: forget it
    delete engine.registry[name];
    delete engine.registryFactory[name];
  }
  tf.registerBackend(name, factory, priority);
  await tf.setBackend(name);
  await tf.ready();
  model = await loadModel(tf, `${stats.bundle.path}/model.json`);
}

// An image at most maxResolution on its longer side, alpha composited over white, as a
// uint8 RGB canvas. Large photos are scaled here, with the browser's high-quality filter.
function fittedCanvas(bitmap, maxResolution) {
  const [height, width] = fittedSize(bitmap.height, bitmap.width, maxResolution);
  const canvas = document.createElement('canvas');
  canvas.width = width;
  canvas.height = height;
  const context = canvas.getContext('2d', { willReadFrequently: true });
  context.fillStyle = '#ffffff';
  context.fillRect(0, 0, width, height);
  context.imageSmoothingEnabled = true;
  context.imageSmoothingQuality = 'high';
  context.drawImage(bitmap, 0, 0, width, height);
  return canvas;
}

function rgbBase64(canvas) {
  const { data } = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height);
  const rgb = new Uint8Array((data.length / 4) * 3);
  for (let i = 0, j = 0; i < data.length; i += 4, j += 3) {
    rgb[j] = data[i];
    rgb[j + 1] = data[i + 1];
    rgb[j + 2] = data[i + 2];
  }
  return bytesToBase64(rgb);
}

async function decode(file) {
  try {
    // Applies EXIF orientation, so phone photos come out upright.
    return await createImageBitmap(file, { imageOrientation: 'from-image' });
  } catch {
    throw new UserError(`"${file.name}" is not an image this browser can read: choose a PNG, JPEG, WebP or GIF file.`);
  }
}

function forgetStyle() {
  if (styleMemo) tf.dispose(styleMemo.features);
  styleMemo = null;
}

async function useImage(role, file) {
  if (role === 'style' && !busy) forgetStyle(); // a run in progress may be using them
  try {
    const bitmap = await decode(file);
    images[role] = { name: file.name, bitmap };
    const preview = $(`${role}-preview`);
    const small = fittedCanvas(bitmap, 440);
    preview.width = small.width;
    preview.height = small.height;
    preview.getContext('2d').drawImage(small, 0, 0);
    preview.hidden = false;
    if (Math.min(bitmap.width, bitmap.height) < MIN_SIDE) {
      throw new UserError(`"${file.name}" is ${bitmap.width}x${bitmap.height}: too small, both sides must be at least ${MIN_SIDE} pixels.`);
    }
    setStatus(`${role === 'content' ? 'Content' : 'Style'}: ${file.name} (${bitmap.width}x${bitmap.height}).`);
  } catch (error) {
    if (!(error instanceof UserError)) throw error;
    images[role] = null;
    setStatus(error.message, 'error');
  }
  updateButton();
}

function updateButton() {
  $('stylize').disabled = busy || !model || !images.content || !images.style;
  if (!model || busy) return;
  const shown = lastResult && lastResult.content === images.content && lastResult.style === images.style;
  showStep(!images.content || !images.style ? 'choose' : shown ? 'done' : 'stylize');
}

// The steps listed on the page (#phases), in order: the current one is marked for the eye and
// for screen readers (aria-current), the earlier ones done.
const STEPS = ['download', 'warmup', 'choose', 'stylize', 'done'];

function showStep(current) {
  const at = STEPS.indexOf(current);
  for (const item of $('phases').children) {
    const index = STEPS.indexOf(item.dataset.phase);
    item.dataset.state = index < at ? 'done' : index === at ? 'active' : 'pending';
    if (index === at) item.setAttribute('aria-current', 'step');
    else item.removeAttribute('aria-current');
  }
}

// The progress bar: a fraction, or null for work whose length is not known (it then moves).
function showProgress(fraction) {
  if (fraction === null) $('progress').removeAttribute('value');
  else $('progress').value = fraction;
}

// The comparison: the result over the content photo, shown from the left edge up to the
// slider's position (100: all result).
function showComparison() {
  const after = Number($('compare').value);
  $('result').style.clipPath = `inset(0 0 0 ${100 - after}%)`;
  $('compare').setAttribute('aria-valuetext', `${after}% of the width shows the result`);
}

// The result at the content photo's own size (the model ran at most at maxResolution), as the
// PNG the download link gives.
async function resultAtContentSize(resultCanvas, bitmap) {
  const canvas = document.createElement('canvas');
  canvas.width = bitmap.width;
  canvas.height = bitmap.height;
  const context = canvas.getContext('2d');
  context.imageSmoothingEnabled = true;
  context.imageSmoothingQuality = 'high';
  context.drawImage(resultCanvas, 0, 0, canvas.width, canvas.height);
  const blob = await new Promise((done) => canvas.toBlob(done, 'image/png'));
  return { blob, width: canvas.width, height: canvas.height };
}

async function run() {
  const iters = Number($('iters').value);
  const maxResolution = Number($('max-resolution').value);
  busy = true;
  updateButton();
  window.sanet.phase = 'running';
  $('output').hidden = true;
  showStep('stylize');
  showProgress(null);
  let content, style, result;
  let needed = null;
  let ticker = null;
  try {
    if (!Number.isInteger(maxResolution) || maxResolution < MIN_SIDE) {
      throw new UserError(`Maximum resolution must be a whole number of at least ${MIN_SIDE}.`);
    }
    const chosen = { ...images }; // the user may choose others while this runs
    const contentCanvas = fittedCanvas(chosen.content.bitmap, maxResolution);
    const styleCanvas = fittedCanvas(chosen.style.bitmap, maxResolution);
    const contentShape = [contentCanvas.height, contentCanvas.width, 3];
    const styleShape = [styleCanvas.height, styleCanvas.width, 3];
    checkInputs(contentShape, styleShape, iters, maxResolution);
    needed = neededBytes(contentShape, styleShape, weightBytes);
    if (needed > MEMORY_BUDGET_BYTES) throw new UserError(tooBigMessage(maxResolution, needed));
    if (params.has('expose')) {
      window.sanet.lastInputs = {
        content: rgbBase64(contentCanvas), contentShape,
        style: rgbBase64(styleCanvas), styleShape, iters, maxResolution,
      };
    }
    content = tf.tidy(() => tf.browser.fromPixels(contentCanvas).toFloat().div(255));
    style = tf.tidy(() => tf.browser.fromPixels(styleCanvas).toFloat().div(255));
    setStatus(`Stylizing ${contentShape[1]}x${contentShape[0]} with ${iters} iteration(s) on ${stats.backend}…`);
    await tf.nextFrame();
    // The features depend on the style and its scaled size only.
    const styleImage = chosen.style;
    const styleKey = styleShape.join('x');
    const styleReused = Boolean(styleMemo && styleMemo.style === styleImage && styleMemo.shape === styleKey);
    const started = performance.now();
    ticker = setInterval(() => {
      $('elapsed').textContent = `Elapsed: ${((performance.now() - started) / 1000).toFixed(1)} s…`;
    }, 250);
    const out = await stylize(tf, model, content, style, iters, maxResolution, {
      styleFeatures: styleReused ? styleMemo.features : null,
      attentionBudgetBytes: ATTENTION_BUDGET_BYTES,
    });
    result = out.result;
    if (!styleReused) {
      forgetStyle();
      styleMemo = { style: styleImage, shape: styleKey, features: out.styleFeatures };
    }
    const canvas = $('result');
    canvas.width = result.shape[1];
    canvas.height = result.shape[0];
    await tf.browser.toPixels(result, canvas);
    const ms = performance.now() - started;
    const heapBytes = stats.backend === 'wasm' ? tf.backend().wasm.HEAPU8.buffer.byteLength : null;
    stats.runs.push({ ms, iters, maxResolution, contentShape, styleShape, styleReused, backend: stats.backend, neededBytes: needed, heapBytes });
    const before = $('before');
    before.width = canvas.width;
    before.height = canvas.height;
    before.getContext('2d').drawImage(contentCanvas, 0, 0);
    const download = $('download');
    if (download.href) URL.revokeObjectURL(download.href);
    const png = await resultAtContentSize(canvas, chosen.content.bitmap);
    download.href = URL.createObjectURL(png.blob);
    download.textContent = `Download PNG (${png.width}x${png.height}, the content photo's size)`;
    stats.runs.at(-1).downloadSize = [png.height, png.width];
    // Shown at the content photo's width where the screen has room, like the download.
    $('compare-view').style.width = `min(100%, ${chosen.content.bitmap.width}px)`;
    $('output').hidden = false;
    lastResult = chosen;
    showComparison();
    showProgress(1);
    const reuseNote = styleReused ? ', the style encoded in an earlier run' : '';
    $('elapsed').textContent = `Elapsed: ${(ms / 1000).toFixed(2)} s (${stats.backend}${reuseNote})`;
    setStatus(`Done in ${(ms / 1000).toFixed(2)} s${styleReused ? ' (same style: not encoded again)' : ''}.`, 'done');
    window.sanet.phase = 'done';
  } catch (error) {
    showProgress(0);
    if (error instanceof UserError || error instanceof StylizeInputError) {
      setStatus(error.message, 'error');
    } else if (OUT_OF_MEMORY.test(String(error && error.message))) {
      console.error(error);
      const message = outOfMemoryMessage(maxResolution, needed);
      setStatus(`${message} Loading the model again…`, 'error');
      window.sanet.phase = 'recovering'; // 'error' again once the model is back
      try {
        await restartBackend();
        setStatus(message, 'error');
      } catch (restartError) {
        console.error(restartError);
        setStatus('This device ran out of memory, and the model could not be loaded again: reload the page.', 'error');
      }
    } else {
      console.error(error);
      setStatus(`Stylization failed: ${error.message}`, 'error');
    }
  } finally {
    clearInterval(ticker);
    [content, style, result].forEach((t) => {
      try {
        if (t) t.dispose();
      } catch {
        // it belonged to a backend that was restarted
      }
    });
    busy = false;
    updateButton();
  }
}

function withTimeout(promise, ms, message) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(message)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

// The page's service worker (sw.js) answers every request of the page: from its cache of this
// build once fetched, so the page works offline after one visit, and with the COOP/COEP
// headers that make the page cross-origin isolated (wasm threads need SharedArrayBuffer) on
// hosts that cannot send them (GitHub Pages, most static hosts). Whatever fails here, the page
// still runs, online, and says why.
async function startServiceWorker() {
  if (!window.isSecureContext) return { running: false, why: 'the page is not served over HTTPS' };
  if (!('serviceWorker' in navigator)) return { running: false, why: 'this browser gives the page no service worker' };
  const workers = navigator.serviceWorker;
  try {
    // Offline, the worker already installed answers; the update check fails, harmlessly.
    await workers.register('sw.js', { updateViaCache: 'none' }).catch((error) => {
      if (!workers.controller) throw error;
    });
    await withTimeout(workers.ready, SERVICE_WORKER_TIMEOUT_MS, 'it did not start');
    if (!workers.controller) {
      // First visit: the worker takes the page over once active, before the model is fetched
      // (so the model goes into its cache).
      const claimed = new Promise((resolve) => workers.addEventListener('controllerchange', resolve, { once: true }));
      await withTimeout(claimed, SERVICE_WORKER_TIMEOUT_MS, 'it did not take the page over');
    }
  } catch (error) {
    return { running: false, why: `the service worker could not run (${error.message})` };
  }
  return { running: true };
}

async function crossOriginIsolate(worker, servedByWorker) {
  if (window.crossOriginIsolated) {
    sessionStorage.removeItem(RELOAD_KEY);
    return { isolated: true, how: servedByWorker ? 'by its service worker' : 'by the server' };
  }
  if (!worker.running) return { isolated: false, why: worker.why };
  if (sessionStorage.getItem(RELOAD_KEY)) return { isolated: false, why: 'the service worker did not isolate the page' };
  // Isolation is decided when a page is loaded: load it again, through the worker.
  sessionStorage.setItem(RELOAD_KEY, '1');
  location.reload();
  return new Promise(() => {}); // never settles: the page is reloading
}

// A new build's worker took the page over (the host was updated). Before the model is loaded,
// load the page again, so that it does not mix two builds' files; after, keep what the user
// has and say that a reload gives the new version.
function followNewBuilds() {
  navigator.serviceWorker.addEventListener('controllerchange', () => {
    if (window.sanet.phase === 'loading') {
      location.reload();
    } else {
      $('offline').textContent = 'A new version of this page is ready: reload the page to use it.';
    }
  });
}

// What the worker holds of this build: {version, files, cached}, or null without a worker.
async function offlineStatus() {
  const controller = navigator.serviceWorker && navigator.serviceWorker.controller;
  if (!controller) return null;
  const channel = new MessageChannel();
  const answered = new Promise((resolve) => {
    channel.port1.onmessage = (event) => resolve(event.data);
  });
  // The worker keeps the chosen bundle only: it drops the other's files from its cache.
  controller.postMessage({ type: 'offline-status', keep: `${stats.bundle.path}/` }, [channel.port2]);
  return withTimeout(answered, SERVICE_WORKER_TIMEOUT_MS, 'the service worker did not answer');
}

async function showOffline(worker) {
  const line = $('offline');
  if (!worker.running) {
    line.textContent = `Not saved for offline use: ${worker.why}.`;
    return;
  }
  const status = await offlineStatus().catch(() => null);
  stats.offline = status;
  if (!status) {
    line.textContent = 'Not saved for offline use: the service worker did not answer.';
  } else if (status.cached < status.files) {
    line.textContent = `Saving for offline use: ${status.cached} of ${status.files} files.`;
  } else {
    line.textContent = status.reachable && navigator.onLine
      ? 'Saved on this device: the page and its model work offline from now on.'
      : 'Offline: running from the copy saved on this device.';
  }
}

// The user's thread count: 'auto', or a whole number from 1 to the cores the browser reports
// (anything else, e.g. saved on a larger machine, falls back to 'auto').
function savedThreads() {
  let saved = null;
  try {
    saved = localStorage.getItem(THREADS_KEY);
  } catch {
    // storage disabled: the default
  }
  const count = Number(saved);
  const cores = navigator.hardwareConcurrency || 1;
  return Number.isInteger(count) && count >= 1 && count <= cores ? String(count) : 'auto';
}

// tfjs-backend-wasm runs min(requested, cores / 2) threads (its backend.cc: most x86 cores
// run two hardware threads); 'auto' asks for that default.
function wireThreads() {
  const cores = navigator.hardwareConcurrency || 1;
  const select = $('threads');
  select.options[0].textContent = `auto (${Math.max(1, Math.floor(cores / 2))})`;
  for (let count = 1; count <= cores; count++) select.add(new Option(String(count), String(count)));
  select.value = savedThreads();
  select.addEventListener('change', (event) => {
    try {
      localStorage.setItem(THREADS_KEY, event.target.value);
    } catch {
      // storage disabled: the choice holds for this visit only
    }
    location.reload(); // the wasm backend takes its thread count once, at start
  });
}

function describeRuntime(backend, isolation) {
  if (backend !== 'wasm') return `Backend: ${backend}.`;
  const threads = stats.threads;
  const how = isolation.isolated
    ? `cross-origin isolated ${isolation.how}`
    : `not cross-origin isolated, so one thread: ${isolation.why}`;
  return `Backend: wasm, ${threads} thread${threads === 1 ? '' : 's'} (${how}).`;
}

// Storage may be disabled (private modes, policies): the page then chooses afresh each visit.
function stored(key) {
  try {
    return localStorage.getItem(key);
  } catch {
    return null;
  }
}

function store(key, value) {
  try {
    if (value === null) localStorage.removeItem(key);
    else localStorage.setItem(key, value);
  } catch {
    // storage disabled: the choice holds for this visit only
  }
}

// The backend asked for: ?backend= (a link), else the one chosen by hand on an earlier visit,
// else 'auto'.
function requestedBackend() {
  const asked = params.get('backend') || stored(BACKEND_KEY) || 'auto';
  return BACKENDS.includes(asked) ? asked : 'auto';
}

// The software renderer a renderer's name names ('SwiftShader', 'llvmpipe' ...), or null.
function softwareName(renderer) {
  const match = SOFTWARE_RENDERER.exec(renderer);
  if (!match) return null;
  return /swiftshader/i.test(match[0]) ? 'SwiftShader' : match[0];
}

// WebGL as tfjs would get it (WebGL 2, else 1): its renderer, and whether it is software.
function probeWebGL() {
  try {
    const canvas = document.createElement('canvas');
    const gl = canvas.getContext('webgl2') || canvas.getContext('webgl');
    if (!gl) return null;
    const info = gl.getExtension('WEBGL_debug_renderer_info');
    const renderer = String(gl.getParameter(info ? info.UNMASKED_RENDERER_WEBGL : gl.RENDERER));
    const lose = gl.getExtension('WEBGL_lose_context');
    if (lose) lose.loseContext();
    return { renderer, software: softwareName(renderer) };
  } catch {
    return null;
  }
}

// WebGPU where the browser gives the page an adapter (tfjs would try, fail and warn): its
// name, and whether it is software (a fallback adapter, or SwiftShader by name).
async function probeWebGPU() {
  try {
    if (!navigator.gpu) return null;
    const adapter = await navigator.gpu.requestAdapter();
    if (!adapter) return null;
    const info = adapter.info || {};
    const renderer = [info.vendor, info.architecture, info.device, info.description].filter(Boolean).join(' ');
    const fallback = Boolean(adapter.isFallbackAdapter || info.isFallbackAdapter);
    return { renderer: renderer || 'an unnamed adapter', software: softwareName(renderer) || (fallback ? 'a fallback adapter' : null) };
  } catch {
    return null;
  }
}

// A short stable digest of a string (FNV-1a, 32 bits): names a build or a device in storage.
function digest(text) {
  let hash = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) hash = Math.imul(hash ^ text.charCodeAt(i), 0x01000193) >>> 0;
  return hash.toString(16).padStart(8, '0');
}

async function setBackend(name) {
  try {
    if (await tf.setBackend(name)) {
      await tf.ready();
      return true;
    }
  } catch {
    // not offered by this browser
  }
  return false;
}

function seconds(ms) {
  return `${(ms / 1000).toFixed(2)} s`;
}

// One backend's trial: the model loaded from `artifacts` (fetched once), a warm-up, then a
// timed stylization at TRIAL_SIDE; each step only while the budget lasts. Returns
// {backend, ms} or {backend, ms: null, why}.
async function trial(name, artifacts, deadline) {
  if (!(await setBackend(name))) return { backend: name, ms: null, why: 'could not start' };
  const trialModel = await loadModel(tf, tf.io.fromMemory(artifacts));
  try {
    const blank = tf.zeros([WARMUP_SIDE, WARMUP_SIDE, 3]);
    tf.dispose(await stylize(tf, trialModel, blank, blank, 1, WARMUP_SIDE));
    blank.dispose();
    if (performance.now() > deadline) return { backend: name, ms: null, why: 'its warm-up alone took the time allowed' };
    const image = tf.randomUniform([TRIAL_SIDE, TRIAL_SIDE, 3], 0, 1, 'float32', 1);
    const started = performance.now();
    const out = await stylize(tf, trialModel, image, image, 1, TRIAL_SIDE);
    await out.result.data(); // the GPU backends return before the work is done
    const ms = performance.now() - started;
    tf.dispose([image, out.result, out.styleFeatures.style4_1, out.styleFeatures.style5_1]);
    return { backend: name, ms };
  } finally {
    trialModel.dispose();
  }
}

// 'auto': never a software renderer over wasm (the CPU does better without one); where a
// real GPU backend remains beside wasm, a timed trial on each at first load, the fastest kept
// and remembered for this build on this device. Returns {backend, why, trials, remembered}.
async function chooseAuto(buildKey, loadArtifacts) {
  const gpus = { webgpu: await probeWebGPU(), webgl: probeWebGL() };
  const device = digest([navigator.userAgent, navigator.hardwareConcurrency, gpus.webgpu && gpus.webgpu.renderer, gpus.webgl && gpus.webgl.renderer].join('|'));
  const measureAll = params.get('measure') === 'all'; // software renderers too (diagnosis)
  const software = Object.keys(gpus).filter((name) => gpus[name] && gpus[name].software);
  // wasm first: always timed, the baseline every GPU backend must beat within the budget.
  const candidates = ['wasm', ...['webgpu', 'webgl'].filter((name) => gpus[name] && (measureAll || !gpus[name].software))];
  const notes = [];
  if (software.length && !measureAll) {
    const names = [...new Set(software.map((name) => gpus[name].software))].join(', ');
    const are = software.length > 1 ? 'are' : 'is';
    notes.push(`${software.join(' and ')} here ${are} software rendering (${names}) on the CPU, many times slower than wasm`);
  }
  if (!gpus.webgpu && !gpus.webgl) notes.push('this browser offers the page neither WebGPU nor WebGL');
  if (candidates.length === 1) {
    if (await setBackend('wasm')) return { backend: 'wasm', why: notes.join('; ') || 'the only backend offered', trials: [], remembered: false };
    if (await setBackend('cpu')) return { backend: 'cpu', why: 'this browser runs no WebAssembly: the plain JavaScript backend, very slow', trials: [], remembered: false };
    throw new UserError('This browser offers no backend that runs the model (no WebGPU, WebGL or WebAssembly).');
  }
  const key = `${buildKey}:${device}:${candidates.join(',')}`;
  let saved = null;
  try {
    saved = JSON.parse(stored(AUTO_KEY) || 'null');
  } catch {
    // not what this page wrote: measure again
  }
  if (saved && saved.key === key && candidates.includes(saved.backend) && (await setBackend(saved.backend))) {
    return { backend: saved.backend, why: saved.why, trials: saved.trials, remembered: true };
  }
  setStatus(`Measuring which backend is fastest here: ${candidates.join(', ')}…`);
  const artifacts = await loadArtifacts();
  const deadline = performance.now() + TRIAL_BUDGET_MS;
  const trials = [];
  for (const name of candidates) {
    if (performance.now() > deadline) {
      trials.push({ backend: name, ms: null, why: 'the time allowed for trials ran out' });
      continue;
    }
    trials.push(await trial(name, artifacts, deadline));
  }
  const timed = trials.filter((t) => t.ms !== null).sort((a, b) => a.ms - b.ms);
  const fastest = timed.length ? timed[0].backend : 'wasm';
  const others = trials.filter((t) => t.backend !== fastest).map((t) => (t.ms === null
    ? `${t.backend} not timed (${t.why})`
    : `${t.backend} ${seconds(t.ms)} (${(t.ms / timed[0].ms).toFixed(1)}x slower)`));
  const measured = timed.length
    ? `fastest at ${TRIAL_SIDE} px here: ${fastest} ${seconds(timed[0].ms)}${others.length ? `, ${others.join(', ')}` : ''}`
    : 'no trial finished in the time allowed: wasm, the safe choice';
  const why = [measured, ...notes].join('; ');
  store(AUTO_KEY, JSON.stringify({ key, backend: fastest, why, trials }));
  if (!(await setBackend(fastest))) throw new UserError(`The ${fastest} backend stopped working: reload the page.`);
  return { backend: fastest, why, trials, remembered: false };
}

async function chooseBackend(requested, buildKey, loadArtifacts) {
  tf.wasm.setWasmPaths(new URL('vendor/', location.href).href);
  const threads = savedThreads();
  setWasmThreads(tf, threads === 'auto' ? null : Number(threads));
  if (requested === 'auto') return { by: 'auto', ...(await chooseAuto(buildKey, loadArtifacts)) };
  // WebGPU only where the browser gives the page an adapter (tfjs would try, fail and warn).
  const offered = requested !== 'webgpu' || (await probeWebGPU());
  if (offered && (await setBackend(requested))) return { by: 'hand', backend: requested, why: 'chosen by hand', trials: [], remembered: false };
  throw new UserError(`The ${requested} backend is not available in this browser: choose another backend.`);
}

function describeChoice(choice) {
  if (choice.by === 'hand') return `Backend ${choice.backend}: your choice (remembered; "auto" measures instead).`;
  return `Backend chosen by auto: ${choice.backend}; ${choice.why}${choice.remembered ? ' (measured on an earlier visit)' : ''}.`;
}

async function useExample(role, example) {
  const blob = await (await fetch(`examples/${example.file}`)).blob();
  await useImage(role, new File([blob], example.file, { type: blob.type }));
}

async function loadExamples() {
  const listing = await (await fetch('examples/examples.json')).json();
  for (const role of ['content', 'style']) {
    for (const example of listing[role]) {
      const button = document.createElement('button');
      button.type = 'button';
      button.textContent = example.title;
      button.addEventListener('click', () => useExample(role, example));
      $(`${role}-examples`).append(button);
    }
  }
  return listing;
}

// A first look does something: the first example photo and painting are chosen, so that
// Stylize works as soon as the model is ready (the user's own images replace them).
async function preselectExamples(listing) {
  for (const role of ['content', 'style']) {
    if (!images[role] && listing[role].length) await useExample(role, listing[role][0]);
  }
  stats.examplesPreselected = Boolean(images.content && images.style);
}

// The model bundles of this build (build.json `bundles`: name -> {path, bytes, ...}; a build
// before bundles has one, model/), and the one to load: ?bundle=, else the one chosen by hand
// on an earlier visit, else the build's default (the smallest within its fidelity budget).
function bundlesOf(build) {
  return build.bundles || { exact: { path: 'model', bytes: build.model_bytes, quantization: 'none' } };
}

function chooseBundle(build) {
  const bundles = bundlesOf(build);
  const fallback = build.default_bundle in bundles ? build.default_bundle : Object.keys(bundles)[0];
  const asked = params.get('bundle') || stored(BUNDLE_KEY);
  const name = asked in bundles ? asked : fallback;
  return { name, ...bundles[name], byHand: name !== fallback };
}

function megabytes(bytes) {
  return `${(bytes / 1e6).toFixed(1)} MB`;
}

// What the page says of a bundle: its download, and its fidelity against the exact bundle.
function bundleNote(name, bundle) {
  if (bundle.fidelity) {
    const { psnr_db: psnr, ssim, resolutions } = bundle.fidelity;
    return `Model ${name}: a ${megabytes(bundle.bytes)} download, ${psnr.toFixed(1)} dB PSNR and SSIM ` +
      `${ssim.toFixed(3)} against exact (the worst at ${resolutions.join(' and ')} px).`;
  }
  return `Model ${name}: a ${megabytes(bundle.bytes)} download${bundle.quantization === 'none' ? ', float32: the converted model as it is' : ''}.`;
}

function wireBundles(build, chosen) {
  const select = $('bundle');
  for (const [name, bundle] of Object.entries(bundlesOf(build))) select.add(new Option(`${name} (${megabytes(bundle.bytes)})`, name));
  select.value = chosen.name;
  $('bundle-note').textContent = bundleNote(chosen.name, chosen);
  select.disabled = select.options.length < 2;
  select.addEventListener('change', (event) => {
    store(BUNDLE_KEY, event.target.value);
    const url = new URL(location.href);
    url.searchParams.delete('bundle');
    location.assign(url); // the page loads one model: load it again with the other
  });
}

// The bundle's files all in an offline cache of this page (no download to wait for).
async function bundleSaved(build, bundle) {
  try {
    const paths = Object.keys(build.files).filter((path) => path.startsWith(`${bundle.path}/`));
    const names = (await caches.keys()).filter((name) => name.startsWith('sanet-'));
    for (const name of names) {
      const cache = await caches.open(name);
      const kept = await Promise.all(paths.map((path) => cache.match(path).then(Boolean)));
      if (paths.length && kept.every(Boolean)) return true;
    }
  } catch {
    // no CacheStorage here (not a secure context)
  }
  return false;
}

// On a connection the user set to save data (navigator.connection.saveData), say how large
// the model is and wait for the user to start the download.
async function askBeforeDownload(bundle) {
  const button = $('start-download');
  button.textContent = `Download the model (${megabytes(bundle.bytes)})`;
  button.hidden = false;
  setStatus(
    `This connection is set to save data: the model is a ${megabytes(bundle.bytes)} download. ` +
    'Press "Download the model" to start (it is then saved for offline use).',
  );
  window.sanet.phase = 'waiting';
  stats.waitedForConsent = true;
  await new Promise((resolve) => button.addEventListener('click', resolve, { once: true }));
  button.hidden = true;
  window.sanet.phase = 'loading';
}

function wireInputs() {
  for (const role of ['content', 'style']) {
    $(`${role}-file`).addEventListener('change', (event) => {
      if (event.target.files.length) useImage(role, event.target.files[0]);
    });
    const zone = $(`${role}-drop`);
    zone.addEventListener('dragover', (event) => {
      event.preventDefault();
      zone.classList.add('dragover');
    });
    zone.addEventListener('dragleave', () => zone.classList.remove('dragover'));
    zone.addEventListener('drop', (event) => {
      event.preventDefault();
      zone.classList.remove('dragover');
      if (event.dataTransfer.files.length) useImage(role, event.dataTransfer.files[0]);
    });
  }
  $('stylize').addEventListener('click', run);
  $('compare').addEventListener('input', showComparison);
  $('backend').addEventListener('change', (event) => {
    // A choice by hand is remembered ('auto' forgets it); the page starts again with it.
    store(BACKEND_KEY, event.target.value === 'auto' ? null : event.target.value);
    const url = new URL(location.href);
    url.searchParams.delete('backend');
    location.assign(url);
  });
}

async function main() {
  wireInputs();
  wireThreads();
  const requested = requestedBackend();
  $('backend').value = requested;
  setStatus('Preparing the page…');
  const servedByWorker = Boolean(navigator.serviceWorker && navigator.serviceWorker.controller);
  if (servedByWorker) followNewBuilds();
  const worker = await startServiceWorker();
  const isolation = await crossOriginIsolate(worker, servedByWorker).catch((error) => ({ isolated: false, why: error.message }));
  stats.isolated = isolation.isolated;
  const build = await (await fetch('build.json')).json();
  const bundle = chooseBundle(build);
  stats.bundle = { name: bundle.name, path: bundle.path, bytes: bundle.bytes };
  wireBundles(build, bundle);
  weightBytes = build.model_bytes; // float32 in memory, whichever bundle is downloaded
  if (build.weights !== 'upstream') {
    $('banner').textContent =
      'This build uses stand-in weights generated for testing, not the trained SANet weights: ' +
      'the pipeline works end to end, but the results are not stylizations.';
    $('banner').hidden = false;
  }
  await preselectExamples(await loadExamples());
  const saveData = Boolean(navigator.connection && navigator.connection.saveData);
  if (saveData && !(await bundleSaved(build, bundle))) await askBeforeDownload(bundle);
  showStep('download');
  // The model is fetched once (auto's trials and the model kept load it from memory).
  let artifacts = null;
  const loadStarted = performance.now();
  const loadArtifacts = async () => {
    if (artifacts) return artifacts;
    setStatus(`Downloading the model (${bundle.name}, ${megabytes(bundle.bytes)})…`);
    artifacts = await tf.io.http(`${bundle.path}/model.json`, {
      onProgress: (fraction) => {
        showProgress(fraction);
        setStatus(`Downloading the model (${bundle.name}, ${megabytes(bundle.bytes)})… ${Math.round(fraction * 100)}%`);
      },
    }).load();
    return artifacts;
  };
  const buildKey = digest(JSON.stringify(build.files) + bundle.name);
  stats.choice = await chooseBackend(requested, buildKey, loadArtifacts);
  stats.backend = stats.choice.backend;
  stats.threads = stats.backend === 'wasm' ? tf.wasm.getThreadsCount() : null;
  $('runtime').textContent = describeRuntime(stats.backend, isolation);
  $('choice').textContent = describeChoice(stats.choice);
  model = await loadModel(tf, tf.io.fromMemory(await loadArtifacts()));
  artifacts = null; // the weights live in the backend now
  stats.modelLoadMs = performance.now() - loadStarted;
  showStep('warmup');
  showProgress(null);
  setStatus('Warming up…');
  const warmStarted = performance.now();
  const blank = tf.zeros([WARMUP_SIDE, WARMUP_SIDE, 3]);
  tf.dispose(await stylize(tf, model, blank, blank, 1, WARMUP_SIDE));
  blank.dispose();
  stats.warmupMs = performance.now() - warmStarted;
  await showOffline(worker);
  for (const event of ['online', 'offline']) window.addEventListener(event, () => showOffline(worker));
  setDefaultResolution();
  window.sanet.phase = 'ready';
  showProgress(0);
  setStatus(stats.examplesPreselected && images.content && images.style
    ? `Ready (${stats.backend}). The example photo and painting are chosen: press Stylize, or choose your own.`
    : `Ready (${stats.backend}). Choose a content photo and a style painting, then Stylize.`);
  updateButton();
}

main().catch((error) => {
  console.error(error);
  setStatus(error instanceof UserError ? error.message : `The page could not start: ${error.message}`, 'error');
});
