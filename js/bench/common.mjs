// What both benchmark harness pages share: inputs fetched from the bench server, the timing
// loop, the page's memory, and results handed back to Python as base64 float32 bytes.

import { bytesToBase64 } from './sanet.mjs';

export async function fetchFloats(url) {
  return new Float32Array(await (await fetch(url)).arrayBuffer());
}

function base64(floats) {
  return bytesToBase64(new Uint8Array(floats.buffer, floats.byteOffset, floats.byteLength));
}

// `once()` resolves to {values: Float32Array, shape}; it runs warmup + runs times, the last
// `runs` timed. Returns the times and the last result.
export async function timeRuns(once, warmup, runs) {
  const ms = [];
  let last = null;
  for (let i = 0; i < warmup + runs; i++) {
    const started = performance.now();
    last = await once();
    const elapsed = performance.now() - started;
    if (i >= warmup) ms.push(elapsed);
  }
  return { ms, last };
}

// What a harness hands back for one resolution: the first runs' times and last result, and
// with `restyled` (timeRuns of the same style again, its features kept from the first runs)
// those times and how far their result is from the first's. The page's memory as
// `pageMemory` asks: null (not measured), "now", or "after-stopping-threads": the workers
// `threadWorkers()` returns (those running wasm threads) stopped first, which ends the tab's
// runtime (see workers.js). `withResult` false: the result is not handed back (a photo at its
// own size: 200 MB of base64 at 4096x3072).
export async function report(first, restyled, pageMemory, threadWorkers, withResult = true) {
  if (pageMemory === 'after-stopping-threads') await self.stopWorkers([...threadWorkers()]);
  const out = {
    ms: first.ms,
    shape: first.last.shape,
    result: withResult ? base64(first.last.values) : null,
    pageBytes: pageMemory ? await pageMemoryBytes() : null,
  };
  if (restyled) {
    let maxAbs = 0;
    first.last.values.forEach((value, i) => {
      maxAbs = Math.max(maxAbs, Math.abs(value - restyled.last.values[i]));
    });
    Object.assign(out, { restyledMs: restyled.ms, restyledMaxAbs: maxAbs });
  }
  return out;
}

// The whole page's memory (JS heaps, wasm memories, workers, DOM), as the browser accounts it.
// Chromium answers only in a cross-origin-isolated page; null elsewhere.
export async function pageMemoryBytes() {
  if (!self.crossOriginIsolated || !performance.measureUserAgentSpecificMemory) return null;
  return (await performance.measureUserAgentSpecificMemory()).bytes;
}
