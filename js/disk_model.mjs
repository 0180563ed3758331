// A TensorFlow.js IO handler that reads a graph model from disk in Node: model.json plus its
// weight shards, as the browser would fetch them. Used by run_model.mjs and profile_model.mjs.
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';

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
