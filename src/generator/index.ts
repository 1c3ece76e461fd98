/**
 * One loaded generator version: a LayersModel and its manifest, sampling images in [0,1].
 */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { loadLayersModel } from '../backend/model-io.ts';
import { QgateError } from '../errors.ts';
import { fillGaussian } from '../random.ts';
import { parseGeneratorManifest, type GeneratorManifest } from './manifest.ts';

export interface Generator {
  readonly manifest: GeneratorManifest;
  /** z [B, latentSize] → images [B, H, W, C] in [0,1]. Call inside tf.tidy. */
  sample(z: tf.Tensor2D): tf.Tensor4D;
  /** `count` latent vectors drawn from `rand`, in order, so the same seed gives the same images. */
  latent(count: number, rand: () => number): tf.Tensor2D;
  dispose(): void;
}

export function generatorFromModel(model: tf.LayersModel, manifest: GeneratorManifest, source: string): Generator {
  const inShape = model.inputs[0]?.shape;
  if (inShape?.length !== 2 || inShape[1] !== manifest.latentSize) {
    throw new QgateError('MODEL_INVALID', `${source}: model takes [${inShape?.join(', ')}], manifest says latentSize ${manifest.latentSize}`);
  }
  const [h, w, c] = manifest.imageShape;
  const outShape = model.outputs[0]?.shape ?? [];
  const outSize = outShape.slice(1).reduce<number>((a, b) => a * (b ?? 0), 1);
  if (outSize !== h * w * c) {
    throw new QgateError('MODEL_INVALID', `${source}: model outputs [${outShape.join(', ')}], manifest says imageShape [${h}, ${w}, ${c}]`);
  }
  const [lo, hi] = manifest.outputRange;
  return {
    manifest,
    sample: (z) => tf.tidy(() => {
      const out = (model.predict(z) as tf.Tensor).reshape([z.shape[0], h, w, c]);
      return out.sub(lo).div(hi - lo).clipByValue(0, 1) as tf.Tensor4D;
    }),
    latent: (count, rand) => tf.tensor2d(fillGaussian(new Float32Array(count * manifest.latentSize), rand), [count, manifest.latentSize]),
    dispose: () => model.dispose(),
  };
}

/** Loads `<dir>/manifest.json` and the model beside it. */
export async function loadGenerator(dir: string): Promise<Generator> {
  const manifestPath = path.join(dir, 'manifest.json');
  let json: unknown;
  try {
    json = JSON.parse(await readFile(manifestPath, 'utf8'));
  } catch (e) {
    throw new QgateError('MODEL_INVALID', `${manifestPath}: ${(e as Error).message}`, { cause: e });
  }
  const manifest = parseGeneratorManifest(json, manifestPath);
  const model = await loadLayersModel(dir);
  try {
    return generatorFromModel(model, manifest, dir);
  } catch (e) {
    model.dispose();
    throw e;
  }
}
