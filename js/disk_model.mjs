// What run_model.mjs and profile_model.mjs share in Node: the backend set-up, and a TensorFlow.js
// IO handler that reads a graph model from disk (model.json plus its weight shards, as the
// browser would fetch them).
import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { setWasmPaths } from '@tensorflow/tfjs-backend-wasm';

// `backend` made current; wasm's binaries come from the installed npm package.
export async function useBackend(tf, backend) {
  if (backend === 'wasm') {
    const require = createRequire(import.meta.url);
    setWasmPaths(dirname(require.resolve('@tensorflow/tfjs-backend-wasm/dist/tfjs-backend-wasm.wasm')) + '/');
  }
  await tf.setBackend(backend);
  await tf.ready();
}

export function fromDisk(modelDir) {
  return {
    async load() {
      const json = JSON.parse(await readFile(join(modelDir, 'model.json'), 'utf8'));
      const weightSpecs = [];
      const buffers = [];
      for (const group of json.weightsManifest) {
        weightSpecs.push(...group.weights);
        for (const path of group.paths) buffers.push(await readFile(join(modelDir, path)));
      }
      const all = Buffer.concat(buffers);
      return {
        modelTopology: json.modelTopology,
        format: json.format,
        generatedBy: json.generatedBy,
        convertedBy: json.convertedBy,
        signature: json.signature,
        userDefinedMetadata: json.userDefinedMetadata,
        modelInitializer: json.modelInitializer,
        weightSpecs,
        weightData: all.buffer.slice(all.byteOffset, all.byteOffset + all.byteLength),
      };
    },
  };
}
