/**
 * φ, the fixed feature extractor that D_r measures distances in.
 *
 * The shipped one is a LeNet-style MNIST classifier trained by `npm run train:features`; its
 * penultimate dense layer is the feature space. Any other TF.js LayersModel (an ImageNet network
 * converted to TF.js, say) plugs in by folder and layer name.
 */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { loadLayersModel } from '../backend/model-io.ts';
import { QgateError } from '../errors.ts';

export interface ExtractorInput {
  height: number;
  width: number;
  channels: 1 | 3;
  /** The pixel range the network was trained on; qgate images are [0,1] and are mapped to it. */
  range: [number, number];
}

/** What `manifest.json` beside a shipped extractor says about it. */
export interface ExtractorManifest {
  id: string;
  architecture: string;
  featureLayer: string;
  input: ExtractorInput;
  [key: string]: unknown;
}

export interface FeatureExtractor {
  readonly id: string;
  readonly manifest: ExtractorManifest;
  readonly input: ExtractorInput;
  readonly featureSize: number;
  /** images [B,H,W,C] in [0,1] → features [B,D]. Differentiable; call inside tf.tidy. */
  features(images: tf.Tensor4D): tf.Tensor2D;
  /**
   * Converts a [0,1] batch to what the network takes: resized (bilinear) to its input size,
   * gray↔RGB by luminance or replication, then mapped to its input range.
   */
  prepare(images: tf.Tensor4D): tf.Tensor4D;
  dispose(): void;
}

export const LENET_FEATURE_LAYER = 'features';

/**
 * The LeNet-style classifier qgate trains as φ: two 5×5 conv + max-pool stages, a 128-unit ReLU
 * layer whose activations are the features, dropout, and a 10-way softmax.
 */
export function buildLeNet(seed: number): tf.Sequential {
  const init = (offset: number) => tf.initializers.heNormal({ seed: seed + offset });
  return tf.sequential({
    name: 'lenet_mnist',
    layers: [
      tf.layers.conv2d({ inputShape: [28, 28, 1], filters: 16, kernelSize: 5, padding: 'same', activation: 'relu', kernelInitializer: init(1), name: 'conv1' }),
      tf.layers.maxPooling2d({ poolSize: 2, name: 'pool1' }),
      tf.layers.conv2d({ filters: 32, kernelSize: 5, padding: 'same', activation: 'relu', kernelInitializer: init(2), name: 'conv2' }),
      tf.layers.maxPooling2d({ poolSize: 2, name: 'pool2' }),
      tf.layers.flatten({ name: 'flatten' }),
      tf.layers.dense({ units: 128, activation: 'relu', kernelInitializer: init(3), name: LENET_FEATURE_LAYER }),
      tf.layers.dropout({ rate: 0.4, seed: seed + 4, name: 'dropout' }),
      tf.layers.dense({ units: 10, activation: 'softmax', kernelInitializer: tf.initializers.glorotUniform({ seed: seed + 5 }), name: 'logits' }),
    ],
  });
}

function inputOf(model: tf.LayersModel, source: string): Omit<ExtractorInput, 'range'> {
  const shape = model.inputs[0]?.shape;
  const [, height, width, channels] = shape ?? [];
  if (shape?.length !== 4 || typeof height !== 'number' || typeof width !== 'number' || (channels !== 1 && channels !== 3)) {
    throw new QgateError('MODEL_INVALID', `${source}: the extractor must take [batch, height, width, 1|3] images, it takes [${shape?.join(', ')}]`);
  }
  return { height, width, channels };
}

/** Wraps a loaded model as an extractor that stops at `layerName`. */
export function extractorFromModel(model: tf.LayersModel, manifest: ExtractorManifest, source: string): FeatureExtractor {
  let layer: tf.layers.Layer;
  try {
    layer = model.getLayer(manifest.featureLayer);
  } catch {
    const names = model.layers.map((l) => l.name).join(', ');
    throw new QgateError('MODEL_INVALID', `${source}: no layer '${manifest.featureLayer}' (layers: ${names})`);
  }
  const trunk = tf.model({ inputs: model.inputs, outputs: layer.output as tf.SymbolicTensor });
  const outShape = trunk.outputs[0]!.shape;
  const featureSize = outShape.slice(1).reduce<number>((a, b) => a * (b ?? 1), 1);
  const input = manifest.input;
  const [lo, hi] = input.range;

  const prepare = (images: tf.Tensor4D): tf.Tensor4D => tf.tidy(() => {
    let x = images;
    if (x.shape[1] !== input.height || x.shape[2] !== input.width) {
      x = tf.image.resizeBilinear(x, [input.height, input.width], true);
    }
    const c = x.shape[3];
    if (c !== input.channels) {
      if (c === 1) x = tf.tile(x, [1, 1, 1, 3]);
      else if (c === 3 || c === 4) {
        const rgb = c === 4 ? x.slice([0, 0, 0, 0], [-1, -1, -1, 3]) : x;
        x = rgb.mul(tf.tensor1d([0.299, 0.587, 0.114])).sum(3, true) as tf.Tensor4D;
      } else {
        throw new QgateError('INVALID_ARGUMENT', `images with ${c} channels cannot be fed to a ${input.channels}-channel extractor`);
      }
    }
    return lo === 0 && hi === 1 ? x : (x.mul(hi - lo).add(lo) as tf.Tensor4D);
  });

  return {
    id: manifest.id,
    manifest,
    input,
    featureSize,
    prepare,
    features: (images) => tf.tidy(() => {
      const out = trunk.apply(prepare(images), { training: false }) as tf.Tensor;
      return out.reshape([out.shape[0]!, featureSize]) as tf.Tensor2D;
    }),
    dispose: () => model.dispose(),
  };
}

/**
 * Loads an extractor from a model folder. With a `manifest.json` beside the model (as qgate's own
 * extractors have) nothing else is needed; any other LayersModel needs `featureLayer`, and its
 * input range defaults to [0,1].
 */
export async function loadExtractor(dir: string, overrides: { featureLayer?: string; range?: [number, number] } = {}): Promise<FeatureExtractor> {
  const model = await loadLayersModel(dir);
  try {
    let manifest: Partial<ExtractorManifest> = {};
    try {
      manifest = JSON.parse(await readFile(path.join(dir, 'manifest.json'), 'utf8')) as ExtractorManifest;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') {
        throw new QgateError('MODEL_INVALID', `${path.join(dir, 'manifest.json')}: ${(e as Error).message}`);
      }
    }
    const featureLayer = overrides.featureLayer ?? manifest.featureLayer;
    if (!featureLayer) {
      throw new QgateError('INVALID_ARGUMENT', `${dir}: no manifest.json names the feature layer; give one (QGATE_FEATURE_LAYER)`);
    }
    const full: ExtractorManifest = {
      ...manifest,
      id: manifest.id ?? path.basename(path.resolve(dir)),
      architecture: manifest.architecture ?? model.name,
      featureLayer,
      input: { ...inputOf(model, dir), range: overrides.range ?? manifest.input?.range ?? [0, 1] },
    };
    return extractorFromModel(model, full, dir);
  } catch (e) {
    model.dispose();
    throw e;
  }
}
