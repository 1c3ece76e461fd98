/**
 * Evaluation of a generator in the feature space of qgate's extractor φ:
 *  - FID against MNIST test (and train-vs-test, the floor a perfect generator would reach with this
 *    many samples);
 *  - improved precision and recall (Kynkäänniemi et al. 2019) with k = 3: precision is the share of
 *    generated samples inside the union of k-NN balls of the real ones, recall the share of real
 *    samples inside the union of k-NN balls of the generated ones;
 *  - mean Q, the pass rate at τ, and the mean noise level (exact Norm, as the service scores).
 */
import * as tf from '@tensorflow/tfjs';
import { loadMnist } from '../data/mnist.ts';
import type { Quality } from '../quality/index.ts';
import { fillGaussian, mulberry32 } from '../random.ts';
import { fid } from './fid.ts';
import { toUnit } from './gan.ts';

export const EVAL_SEED = 1234;
export const PR_K = 3;

export interface EvalMetrics {
  samples: number;
  fid: number;
  /** FID of MNIST train against test with the same number of images: the floor. */
  fidFloor: number;
  precision: number;
  recall: number;
  meanQ: number;
  passRate: number;
  tau: number;
  meanNoise: number;
  meanDistance: number;
  seconds: number;
}

/** Runs `fn` on batches of [0,1] images and concatenates its rows. */
function mapImages(images: Float32Array, count: number, rowSize: number, fn: (b: tf.Tensor4D) => tf.Tensor, batch = 500): Float32Array {
  const out = new Float32Array(count * rowSize);
  for (let s = 0; s < count; s += batch) {
    const m = Math.min(batch, count - s);
    // Read after the tidy, which would otherwise walk every element of the returned array (see reference.ts mapBatches).
    const rows = tf.tidy(() => fn(tf.tensor4d(images.subarray(s * 784, (s + m) * 784), [m, 28, 28, 1])));
    try {
      out.set(rows.dataSync(), s * rowSize);
    } finally {
      rows.dispose();
    }
  }
  return out;
}

/** `count` samples of G ([0,1] images) from latents drawn with a fixed seed. */
export function sampleImages(g: tf.LayersModel, count: number, latentSize: number, seed: number, batch = 500): Float32Array {
  const rand = mulberry32(seed);
  const out = new Float32Array(count * 784);
  for (let s = 0; s < count; s += batch) {
    const m = Math.min(batch, count - s);
    const v = tf.tidy(() => {
      const z = tf.tensor2d(fillGaussian(new Float32Array(m * latentSize), rand), [m, latentSize]);
      return toUnit(g.predict(z) as tf.Tensor).dataSync();
    });
    out.set(v, s * 784);
  }
  return out;
}

/** The k-th nearest distance of each row of `a` within `a` itself (excluding itself). */
function kthSelfRadii(a: tf.Tensor2D, k: number, chunk = 1000): Float32Array {
  const n = a.shape[0];
  const out = new Float32Array(n);
  const norms = tf.tidy(() => a.square().sum(1));
  const aT = tf.tidy(() => a.transpose());
  for (let s = 0; s < n; s += chunk) {
    const m = Math.min(chunk, n - s);
    const v = tf.tidy(() => {
      const q = a.slice([s, 0], [m, -1]);
      const d2 = tf.relu(q.square().sum(1, true).add(norms).sub(tf.matMul(q, aT).mul(2)));
      return tf.topk(d2.neg(), k + 1, true).values.slice([0, k], [-1, 1]).neg().reshape([m]).dataSync();
    });
    out.set(v, s);
  }
  tf.dispose([norms, aT]);
  return out;
}

/** Share of rows of `queries` within the k-NN ball (squared radii `radii2`) of at least one row of `support`. */
function coverage(queries: tf.Tensor2D, support: tf.Tensor2D, radii2: Float32Array, chunk = 1000): number {
  const n = queries.shape[0];
  const sT = tf.tidy(() => support.transpose());
  const sNorms = tf.tidy(() => support.square().sum(1));
  const r2 = tf.tensor1d(radii2);
  let inside = 0;
  for (let s = 0; s < n; s += chunk) {
    const m = Math.min(chunk, n - s);
    inside += tf.tidy(() => {
      const q = queries.slice([s, 0], [m, -1]);
      const d2 = tf.relu(q.square().sum(1, true).add(sNorms).sub(tf.matMul(q, sT).mul(2)));
      return tf.lessEqual(d2, r2).any(1).sum().dataSync()[0]!;
    });
  }
  tf.dispose([sT, sNorms, r2]);
  return inside / n;
}

/** Improved precision and recall of `fake` against `real` features ([n, size] each). */
export function precisionRecall(real: Float32Array, fake: Float32Array, size: number, k = PR_K): { precision: number; recall: number } {
  const r = tf.tensor2d(real, [real.length / size, size]);
  const f = tf.tensor2d(fake, [fake.length / size, size]);
  try {
    const rr = kthSelfRadii(r, k);
    const fr = kthSelfRadii(f, k);
    return { precision: coverage(f, r, rr), recall: coverage(r, f, fr) };
  } finally {
    tf.dispose([r, f]);
  }
}

/** φ features and Q of MNIST test and train, computed once per process (they do not depend on G). */
const realCache = new Map<string, { test: Float32Array; train: Float32Array }>();

function realFeatures(quality: Quality, count: number): { test: Float32Array; train: Float32Array } {
  const key = `${quality.extractor.id}:${count}`;
  const cached = realCache.get(key);
  if (cached) return cached;
  const size = quality.extractor.featureSize;
  const test = loadMnist('test', { limit: count });
  // Train images from the end of the split: the shipped reference set uses the first 10,000.
  const train = loadMnist('train', { offset: 60000 - count, limit: count });
  const value = {
    test: mapImages(test.images, test.count, size, (b) => quality.extractor.features(b)),
    train: mapImages(train.images, train.count, size, (b) => quality.extractor.features(b)),
  };
  realCache.set(key, value);
  return value;
}

export function evaluateGenerator(g: tf.LayersModel, latentSize: number, quality: Quality, opts: { samples: number; seed?: number; tau?: number }): EvalMetrics {
  const t0 = performance.now();
  const n = Math.min(opts.samples, 10000);
  const tau = opts.tau ?? 0.3;
  const size = quality.extractor.featureSize;
  const images = sampleImages(g, n, latentSize, opts.seed ?? EVAL_SEED);
  const fake = mapImages(images, n, size, (b) => quality.extractor.features(b));
  const real = realFeatures(quality, n);
  // Exact Norm and Q = α·noiseNorm + β·distanceNorm as configured in `quality` (what the service reports).
  const parts = mapImages(images, n, 3, (b) => {
    const c = quality.components(b, false);
    return tf.stack([c.q, c.noise, c.distance], 1);
  });
  let q = 0;
  let pass = 0;
  let noise = 0;
  let distance = 0;
  for (let i = 0; i < n; i++) {
    q += parts[3 * i]!;
    if (parts[3 * i]! < tau) pass++;
    noise += parts[3 * i + 1]!;
    distance += parts[3 * i + 2]!;
  }
  const { precision, recall } = precisionRecall(real.test, fake, size);
  return {
    samples: n,
    fid: fid(fake, n, real.test, n, size),
    fidFloor: fid(real.train, n, real.test, n, size),
    precision,
    recall,
    meanQ: q / n,
    passRate: pass / n,
    tau,
    meanNoise: noise / n,
    meanDistance: distance / n,
    seconds: (performance.now() - t0) / 1000,
  };
}
