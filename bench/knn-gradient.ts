/**
 * `npm run bench:knn-gradient`: what picking the k-th nearest reference as a constant (src/quality/
 * score.ts kthNearestDistance) saves in the generator step's Q gradient, against the previous form,
 * which took the k-th distance from the whole [B, R] distance matrix (d2 · oneHot(pick)) and so
 * back-propagated through all of it. Both run alternately in one process on the same batch; prints
 * the median ms of a Q gradient (φ + noise + distance, batch 64) for each and their agreement.
 */
import * as tf from '@tensorflow/tfjs';
import { initBackend, wasmThreadsFor } from '../src/backend/index.ts';
import { loadConfig } from '../src/config.ts';
import { loadMnist } from '../src/data/mnist.ts';
import { loadQuality } from '../src/quality/index.ts';
import { constantOf } from '../src/quality/constant.ts';
import { getNoiseEstimator } from '../src/quality/noise.ts';
import { kthNearestDistance, squaredDistances, softNormalize, type ReferenceTensors } from '../src/quality/score.ts';

/** The form before the change: the k-th distance read off the full distance matrix. */
function kthFromMatrix(features: tf.Tensor2D, ref: ReferenceTensors): tf.Tensor1D {
  return tf.tidy(() => {
    const d2 = squaredDistances(features, ref);
    const pick = constantOf(d2, (frozen) => {
      const { indices } = tf.topk(frozen.neg(), ref.k, true);
      return tf.oneHot(indices.slice([0, ref.k - 1], [-1, 1]).reshape([-1]) as tf.Tensor1D, frozen.shape[1]!).toFloat();
    });
    return d2.mul(pick).sum(1).add(1e-12).sqrt() as tf.Tensor1D;
  });
}

const config = loadConfig(process.env);
const backend = await initBackend(config.backend, undefined, { wasmThreads: wasmThreadsFor(config.wasmThreads, 'batch') });
const quality = await loadQuality(config);
const noise = getNoiseEstimator(config.noiseEstimator);
const x = tf.tensor4d(loadMnist('test', { limit: 64 }).images, [64, 28, 28, 1]);
const variants = { 'full matrix (before)': kthFromMatrix, 'constant neighbour (now)': kthNearestDistance };
const grad = (kth: typeof kthNearestDistance) => tf.grad((im: tf.Tensor) => tf.tidy(() => {
  const images = im as tf.Tensor4D;
  const d = softNormalize(kth(quality.extractor.features(images), quality.reference.tensors), quality.distanceBounds);
  return softNormalize(noise(images), quality.noiseBounds).mul(0.5).add(d.mul(0.5)).mean();
}));
const times: Record<string, number[]> = {};
const results: Record<string, Float32Array> = {};
for (let round = 0; round < 12; round++) {
  for (const [name, kth] of Object.entries(variants)) {
    const t0 = performance.now();
    const g = grad(kth)(x);
    const data = g.dataSync() as Float32Array;
    const ms = performance.now() - t0;
    g.dispose();
    if (round >= 2) (times[name] ??= []).push(ms);
    results[name] = data;
  }
}
const median = (a: number[]) => [...a].sort((p, q) => p - q)[a.length >> 1]!;
const [before, now] = Object.values(results);
let maxDiff = 0;
let maxAbs = 0;
for (let i = 0; i < before!.length; i++) {
  maxDiff = Math.max(maxDiff, Math.abs(before![i]! - now![i]!));
  maxAbs = Math.max(maxAbs, Math.abs(before![i]!));
}
console.log(`backend ${backend.name}; Q gradient w.r.t. a batch of 64 MNIST digits; median of 10 alternating rounds`);
for (const [name, t] of Object.entries(times)) console.log(`  ${name}: ${median(t).toFixed(1)} ms`);
const names = Object.keys(times);
console.log(`  speed-up ${(median(times[names[0]!]!) / median(times[names[1]!]!)).toFixed(2)}×; gradients agree to ${maxDiff.toExponential(2)} (largest component ${maxAbs.toExponential(2)})`);
x.dispose();
quality.dispose();
