// The exact tiling of js/sanet.mjs against the whole computation: each case stylized once as it
// is (one tile, one transform band: the image fits the default budgets) and once per forced
// tile size (tiles of the chains, bands and attention slices of the transform).
// Usage: node js/tiles_check.mjs <model_dir> <cases_dir>
// cases_dir/cases.json: [{content: {file, shape}, style: {file, shape}, iters, max_resolution,
// tile_pixels: [side, ...]}]; writes cases_dir/results.json: per case the result's shape, and
// per tile size the largest absolute difference from the untiled result, the tiles run and
// the transform's bands and attention slices, and the Winograd convolutions' strips.
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { fromDisk, useBackend } from './disk_model.mjs';
import { loadModel, stylize, tilingStats, transformStats, winogradStats } from './sanet.mjs';

const [modelDir, casesDir, backend = 'wasm'] = process.argv.slice(2);

async function floats(spec) {
  const bytes = await readFile(join(casesDir, spec.file));
  return tf.tensor(new Float32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 4), spec.shape);
}

async function run(model, content, style, c, options) {
  const [before, beforeTransform, beforeWinograd] = [{ ...tilingStats }, { ...transformStats }, { ...winogradStats }];
  const { result, styleFeatures } = await stylize(tf, model, content, style, c.iters, c.max_resolution, options);
  const data = await result.data();
  const shape = result.shape;
  tf.dispose([result, styleFeatures]);
  return {
    data,
    shape,
    calls: tilingStats.calls - before.calls,
    tiles: tilingStats.tiles - before.tiles,
    transforms: transformStats.calls - beforeTransform.calls,
    bands: transformStats.bands - beforeTransform.bands,
    slices: transformStats.slices - beforeTransform.slices,
    released: transformStats.releasedBytes - beforeTransform.releasedBytes,
    releasedInputs: tilingStats.releasedBytes - before.releasedBytes,
    winogradStrips: winogradStats.strips - beforeWinograd.strips,
  };
}

await useBackend(tf, backend);
const model = await loadModel(tf, fromDisk(modelDir));
const cases = JSON.parse(await readFile(join(casesDir, 'cases.json'), 'utf8'));
const results = [];
for (const c of cases) {
  const content = await floats(c.content);
  const style = await floats(c.style);
  const whole = await run(model, content, style, c, {});
  const { data: _, ...counts } = whole;
  const entry = { ...counts, tiled: [] };
  for (const tilePixels of c.tile_pixels) {
    const tiled = await run(model, content, style, c, { tilePixels });
    let maxAbs = tiled.data.length === whole.data.length ? 0 : Infinity;
    for (let i = 0; i < whole.data.length && maxAbs !== Infinity; i += 1) {
      maxAbs = Math.max(maxAbs, Math.abs(tiled.data[i] - whole.data[i]));
    }
    const { data: __, ...tiledCounts } = tiled;
    entry.tiled.push({ tilePixels, maxAbs, ...tiledCounts });
  }
  results.push(entry);
  tf.dispose([content, style]);
}
await writeFile(join(casesDir, 'results.json'), JSON.stringify({ backend: tf.getBackend(), results }));
