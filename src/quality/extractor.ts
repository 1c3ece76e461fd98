/**
 * φ, the fixed feature extractor that D_r measures distances in.
 *
 * The shipped one is a LeNet-style MNIST classifier trained by `npm run train:features`; its
 * penultimate dense layer is the feature space. Any other TF.js LayersModel (an ImageNet network
 * converted to TF.js, say) plugs in by folder and layer name.
 */
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { loadLayersModel } from '../backend/model-io.ts';
import { QgateError } from '../errors.ts';
import { fillGaussian, mulberry32 } from '../random.ts';

export interface ExtractorInput {
  height: number;
  width: number;
  channels: 1 | 3;
  /** The pixel range the network was trained on; qgate images are [0,1] and are mapped to it. */
  range: [number, number];
}

/**
 * Fixed steps after the feature layer. qgate's φ uses both: the conv features are L2-normalized
 * (so distances compare patterns, not activation strength) and then reduced by a fixed
 * Johnson–Lindenstrauss random projection, which keeps pairwise distances to within a few percent
 * at a twelfth of the size (1568 → 128 floats per reference image).
 */
export interface FeaturePostprocess {
  l2Normalize?: boolean;
  projection?: {
    /** float32 little-endian [inputSize, outputSize], beside model.json. */
    file: string;
    inputSize: number;
    outputSize: number;
    /** How it was generated: N(0, 1/outputSize) entries from qgate's seeded generator. */
    seed: number;
    sha256: string;
  };
}

/** What `manifest.json` beside a shipped extractor says about it. */
export interface ExtractorManifest {
  id: string;
  architecture: string;
  featureLayer: string;
  input: ExtractorInput;
  postprocess?: FeaturePostprocess;
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

/**
 * The LeNet layer qgate measures distances in: the flattened output of the second conv stage
 * (7×7×32). The 128-unit dense layer after it was tried first and rejected: trained for
 * classification, it collapses images toward their class, and uniform noise landed as close to
 * the digits (median 3-NN distance 6.5) as digits are to each other (median 5.1, 95th percentile
 * 7.9). The normalized conv features separate them (median 1.05 for noise against 0.44 for digits,
 * 0.63 at the 95th percentile).
 */
export const LENET_FEATURE_LAYER = 'flatten';
export const LENET_PROJECTION = { outputSize: 128, seed: 11 } as const;

/** A Johnson–Lindenstrauss projection: E‖xP‖² = ‖x‖² for any x. */
export function randomProjection(inputSize: number, outputSize: number, seed: number): Float32Array {
  const p = fillGaussian(new Float32Array(inputSize * outputSize), mulberry32(seed));
  const scale = 1 / Math.sqrt(outputSize);
  for (let i = 0; i < p.length; i++) p[i]! *= scale;
  return p;
}

/**
 * The LeNet-style classifier qgate trains as φ: two 5×5 conv + max-pool stages, a 128-unit ReLU
 * layer, dropout, and a 10-way softmax. φ is its trunk up to LENET_FEATURE_LAYER.
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
      tf.layers.dense({ units: 128, activation: 'relu', kernelInitializer: init(3), name: 'features' }),
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

/**
 * Wraps a loaded model as an extractor that stops at the manifest's feature layer, followed by the
 * manifest's postprocessing (`projection` holds the projection matrix when it asks for one).
 */
export function extractorFromModel(model: tf.LayersModel, manifest: ExtractorManifest, source: string, projection?: Float32Array): FeatureExtractor {
  let layer: tf.layers.Layer;
  try {
    layer = model.getLayer(manifest.featureLayer);
  } catch {
    const names = model.layers.map((l) => l.name).join(', ');
    throw new QgateError('MODEL_INVALID', `${source}: no layer '${manifest.featureLayer}' (layers: ${names})`);
  }
  const trunk = tf.model({ inputs: model.inputs, outputs: layer.output as tf.SymbolicTensor });
  const outShape = trunk.outputs[0]!.shape;
  const layerSize = outShape.slice(1).reduce<number>((a, b) => a * (b ?? 1), 1);
  const post = manifest.postprocess ?? {};
  let projectionMatrix: tf.Tensor2D | undefined;
  if (post.projection) {
    const { inputSize, outputSize } = post.projection;
    if (inputSize !== layerSize || projection?.length !== inputSize * outputSize) {
      throw new QgateError('MODEL_INVALID', `${source}: the projection must be ${layerSize}×${outputSize} for layer '${manifest.featureLayer}'`);
    }
    projectionMatrix = tf.tensor2d(projection, [inputSize, outputSize]);
  }
  const featureSize = post.projection?.outputSize ?? layerSize;
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
      let f = out.reshape([out.shape[0]!, layerSize]) as tf.Tensor2D;
      // The epsilon keeps the norm's gradient finite for an all-zero activation.
      if (post.l2Normalize) f = f.div(f.square().sum(1, true).add(1e-12).sqrt());
      if (projectionMatrix) f = tf.matMul(f, projectionMatrix);
      return f;
    }),
    dispose: () => {
      model.dispose();
      projectionMatrix?.dispose();
    },
  };
}

async function readFloat32(dir: string, file: string, sha: string): Promise<Float32Array> {
  const p = path.join(dir, path.basename(file));
  let bytes: Buffer;
  try {
    bytes = await readFile(p);
  } catch (e) {
    throw new QgateError('MODEL_INVALID', `${p}: ${(e as Error).message}`, { cause: e });
  }
  if (createHash('sha256').update(bytes).digest('hex') !== sha) {
    throw new QgateError('MODEL_INVALID', `${p}: checksum does not match the manifest`);
  }
  return new Float32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength));
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
    // A projection belongs to the manifest's layer; choosing another layer drops the postprocessing.
    if (overrides.featureLayer && overrides.featureLayer !== manifest.featureLayer) delete full.postprocess;
    const projection = full.postprocess?.projection
      ? await readFloat32(dir, full.postprocess.projection.file, full.postprocess.projection.sha256)
      : undefined;
    return extractorFromModel(model, full, dir, projection);
  } catch (e) {
    model.dispose();
    throw e;
  }
}
