/**
 * Saving and loading TF.js LayersModels on the local file system without `@tensorflow/tfjs-node`
 * (whose `file://` handler is the only one TF.js ships for Node). The layout is the standard one,
 * `model.json` plus binary weight shards, so models written here load in tfjs-node and in
 * browsers, and models converted elsewhere load here.
 *
 * Writes are atomic: everything goes into a temporary sibling folder which is then renamed, so a
 * reader never sees half a model.
 */
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { writeDirAtomically } from '../atomic-dir.ts';
import { QgateError } from '../errors.ts';

const MODEL_JSON = 'model.json';
const WEIGHTS_BIN = 'weights.bin';

interface ModelJson {
  modelTopology: object;
  format?: string;
  generatedBy?: string;
  convertedBy?: string | null;
  weightsManifest: Array<{ paths: string[]; weights: tf.io.WeightsManifestEntry[] }>;
  trainingConfig?: tf.io.TrainingConfig;
  userDefinedMetadata?: { [key: string]: object };
}

/** Weight shard paths must stay inside the model folder. */
function shardPath(dir: string, shard: string): string {
  const resolved = path.resolve(dir, shard);
  if (path.dirname(resolved) !== path.resolve(dir) || shard.includes('\0')) {
    throw new QgateError('MODEL_INVALID', `${path.join(dir, MODEL_JSON)}: weight path '${shard}' leaves the model folder`);
  }
  return resolved;
}

/** An IOHandler that reads `<dir>/model.json` and its weight shards. */
export function fileLoader(dir: string): tf.io.IOHandler {
  return {
    load: async (): Promise<tf.io.ModelArtifacts> => {
      const jsonPath = path.join(dir, MODEL_JSON);
      let json: ModelJson;
      try {
        json = JSON.parse(await readFile(jsonPath, 'utf8')) as ModelJson;
      } catch (e) {
        const code = (e as NodeJS.ErrnoException).code === 'ENOENT' ? 'NOT_FOUND' : 'MODEL_INVALID';
        throw new QgateError(code, `${jsonPath}: ${(e as Error).message}`, { cause: e });
      }
      if (typeof json.modelTopology !== 'object' || !Array.isArray(json.weightsManifest)) {
        throw new QgateError('MODEL_INVALID', `${jsonPath}: not a TF.js LayersModel (modelTopology/weightsManifest missing)`);
      }
      const weightSpecs: tf.io.WeightsManifestEntry[] = [];
      const buffers: Buffer[] = [];
      for (const group of json.weightsManifest) {
        weightSpecs.push(...group.weights);
        for (const shard of group.paths) {
          try {
            buffers.push(await readFile(shardPath(dir, shard)));
          } catch (e) {
            if (e instanceof QgateError) throw e;
            throw new QgateError('MODEL_INVALID', `${jsonPath}: weight shard '${shard}': ${(e as Error).message}`, { cause: e });
          }
        }
      }
      const weights = Buffer.concat(buffers);
      // A cheap check that catches truncated shards; it applies when every weight is a plain 4-byte type.
      const plain = weightSpecs.every((s) => !s.quantization && (s.dtype === 'float32' || s.dtype === 'int32'));
      const expected = weightSpecs.reduce((n, s) => n + 4 * s.shape.reduce((a, b) => a * b, 1), 0);
      if (plain && weights.byteLength !== expected) {
        throw new QgateError('MODEL_INVALID', `${jsonPath}: weights hold ${weights.byteLength} bytes, the manifest describes ${expected}`);
      }
      return {
        modelTopology: json.modelTopology,
        weightSpecs,
        weightData: weights.buffer.slice(weights.byteOffset, weights.byteOffset + weights.byteLength),
        format: json.format,
        generatedBy: json.generatedBy,
        convertedBy: json.convertedBy,
        trainingConfig: json.trainingConfig,
        userDefinedMetadata: json.userDefinedMetadata,
      };
    },
  };
}

export async function loadLayersModel(dir: string): Promise<tf.LayersModel> {
  try {
    return await tf.loadLayersModel(fileLoader(dir));
  } catch (e) {
    if (e instanceof QgateError) throw e;
    throw new QgateError('MODEL_INVALID', `${path.join(dir, MODEL_JSON)}: ${(e as Error).message}`, { cause: e });
  }
}

/**
 * Writes a model and extra files (objects as JSON, such as a manifest; Uint8Arrays as they are)
 * into `dir` atomically. `dir` must
 * not exist yet, unless `replace` is set, in which case the old folder is swapped out.
 */
export async function saveLayersModel(
  model: tf.LayersModel,
  dir: string,
  extraFiles: Record<string, unknown> = {},
  options: { replace?: boolean } = {},
): Promise<void> {
  await writeDirAtomically(dir, async (tmp) => {
    await model.save(tf.io.withSaveHandler(async (artifacts) => {
      const weightData = artifacts.weightData === undefined
        ? new Uint8Array(0)
        : new Uint8Array(tf.io.concatenateArrayBuffers(
          Array.isArray(artifacts.weightData) ? artifacts.weightData : [artifacts.weightData]));
      const json: ModelJson = {
        modelTopology: artifacts.modelTopology as object,
        format: 'layers-model',
        generatedBy: artifacts.generatedBy ?? `TensorFlow.js tfjs-layers v${tf.version.tfjs}`,
        convertedBy: null,
        weightsManifest: [{ paths: [WEIGHTS_BIN], weights: artifacts.weightSpecs ?? [] }],
      };
      await writeFile(path.join(tmp, WEIGHTS_BIN), weightData);
      await writeFile(path.join(tmp, MODEL_JSON), JSON.stringify(json));
      return { modelArtifactsInfo: tf.io.getModelArtifactsInfoForJSON(artifacts) };
    }));
    for (const [name, value] of Object.entries(extraFiles)) {
      await writeFile(path.join(tmp, name), value instanceof Uint8Array ? value : JSON.stringify(value, null, 2) + '\n');
    }
  }, options);
}
