import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '../src/backend/index.ts';
import { fusedNearestAndRealism } from '../src/backend/wasm-kernels.ts';
import { loadLayersModel, saveLayersModel } from '../src/backend/model-io.ts';
import { loadMnist } from '../src/data/mnist.ts';
import { buildLeNet, extractorFromModel, loadExtractor, LENET_FEATURE_LAYER } from '../src/quality/extractor.ts';
import { createQuality } from '../src/quality/index.ts';
import { buildReference, loadReference, referenceFromBuilt, saveReference, tensorsFrom, disposeReferenceTensors } from '../src/quality/reference.ts';
import { distanceAndRealism, kthNearestDistance, normalize, realismScore, softNormalize } from '../src/quality/score.ts';
import { fillGaussian, mulberry32 } from '../src/random.ts';

await initBackend('wasm');

/** An untrained LeNet: its features are a fixed random projection, enough to test the plumbing. */
function randomExtractor(id = 'random-lenet') {
  return extractorFromModel(buildLeNet(7), {
    id, architecture: 'untrained lenet', featureLayer: LENET_FEATURE_LAYER,
    input: { height: 28, width: 28, channels: 1, range: [0, 1] },
  }, 'test');
}

const refDigits = loadMnist('train', { limit: 300 });
const testDigits = loadMnist('test', { limit: 16 });

function batchOf(pixels: Float32Array, n: number): tf.Tensor4D {
  return tf.tensor4d(pixels.subarray(0, n * 784), [n, 28, 28, 1]);
}

function noisy(pixels: Float32Array, sigma: number, seed: number): Float32Array {
  const noise = fillGaussian(new Float32Array(pixels.length), mulberry32(seed));
  return pixels.map((v, i) => v + sigma * noise[i]!);
}

async function withTempDir<T>(fn: (dir: string) => Promise<T>): Promise<T> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'qgate-test-'));
  try {
    return await fn(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

test('kthNearestDistance returns the distance to the k-th nearest reference feature', () => {
  const ref = tensorsFrom(new Float32Array([0, 0, 3, 0, 0, 4, 10, 10]), new Float32Array([1, 1, 1, 1]), 2, 2, 1);
  const d = tf.tidy(() => kthNearestDistance(tf.tensor2d([[0, 0], [3, 0]]), ref).arraySync());
  // From (0,0): distances 0, 3, 4, 14.1 → 2nd nearest is 3. From (3,0): 3, 0, 5 → 2nd is 3.
  assert.ok(Math.abs(d[0]! - 3) < 1e-5 && Math.abs(d[1]! - 3) < 1e-5, `got ${d}`);
  disposeReferenceTensors(ref);
});

test('on wasm the fused nearest-reference pass gives the unfused ops\' exact distances and realism, ties and NaN included', () => {
  const bits = (t: tf.Tensor) => Array.from(new Uint32Array(Float32Array.from(t.dataSync()).buffer)).map((p) => ((p & 0x7fffffff) > 0x7f800000 ? 0x7fc00000 : p));
  // What score.ts computed before the fused pass, written out with TF.js's ops.
  const unfused = (f: tf.Tensor2D, ref: ReturnType<typeof tensorsFrom>) => tf.tidy(() => {
    const d2 = tf.relu(f.square().sum(1, true).add(ref.normsSq).sub(tf.matMul(f, ref.featuresT).mul(2)));
    const kth = tf.topk(d2.neg(), ref.k, true).indices.slice([0, ref.k - 1], [-1, 1]).reshape([-1]);
    const distance = f.sub(tf.gather(ref.features, kth, 0)).square().sum(1).add(1e-12).sqrt();
    const realism = ref.radii.div(d2.add(1e-12).sqrt()).mul(ref.realismMask).max(1);
    return [distance, realism].map(bits);
  });
  const fused = (f: tf.Tensor2D, ref: ReturnType<typeof tensorsFrom>) => tf.tidy(() => {
    const { distance, realism } = distanceAndRealism(f, ref);
    return [distance, realism].map(bits);
  });
  const rng = mulberry32(41);
  const gaussian = (n: number) => fillGaussian(new Float32Array(n), rng);
  const before = tf.memory().numTensors;
  // R not a multiple of 4 (the kernel's tail), duplicated references (ties go to the lower index),
  // queries equal to a reference (a distance that rounds to or below zero), k = 1 and k = R.
  for (const [R, D, k] of [[1003, 16, 3], [7, 5, 1], [3, 4, 3], [64, 8, 16]] as const) {
    const features = gaussian(R * D);
    for (let i = 0; i < Math.min(5, R - 1); i++) features.copyWithin((R - 1 - i) * D, i * D, (i + 1) * D);
    const radii = gaussian(R).map((v) => Math.abs(v) + 0.1);
    const ref = tensorsFrom(features, radii, D, k, 0.9);
    const queries = gaussian(37 * D);
    queries.set(features.subarray(0, 2 * D));
    const f = tf.tensor2d(queries, [37, D]);
    assert.deepEqual(fused(f, ref), unfused(f, ref), `R ${R}, D ${D}, k ${k}`);
    // The indices themselves: with duplicated references only the tie rule decides which is k-th.
    const [ours, theirs] = tf.tidy(() => {
      const cross = tf.matMul(f, ref.featuresT) as tf.Tensor2D;
      const fNormSq = f.square().sum(1, true) as tf.Tensor2D;
      const d2 = tf.relu(fNormSq.add(ref.normsSq).sub(cross.mul(2)));
      const result = fusedNearestAndRealism(cross, fNormSq, ref.normsSq, ref.radii, ref.realismMask, k, 1e-12);
      assert.ok(result, 'the fused pass runs on wasm');
      return [Array.from(result.kth.dataSync()), Array.from(tf.topk(d2.neg(), k, true).indices.slice([0, k - 1], [-1, 1]).dataSync())];
    });
    assert.deepEqual(ours, theirs, `R ${R}: the k-th nearest indices`);
    // A NaN in one row: the whole batch takes TF.js's ops, and still agrees.
    const withNaN = tf.tensor2d(queries.map((v, i) => (i === D + 1 ? NaN : v)), [37, D]);
    assert.deepEqual(fused(withNaN, ref), unfused(withNaN, ref), `R ${R}, a NaN feature`);
    tf.dispose([f, withNaN]);
    disposeReferenceTensors(ref);
  }
  assert.equal(tf.memory().numTensors, before, 'no tensor leaks');
});

test('realismScore is the largest ratio of a reference radius to the distance from that reference', () => {
  // Radii 1 and 4; cutoff 4 keeps both. Query at (2,0): distance 2 to r0=(0,0) and 8 to r1=(10,0).
  const ref = tensorsFrom(new Float32Array([0, 0, 10, 0]), new Float32Array([1, 4]), 2, 1, 4);
  const r = tf.tidy(() => realismScore(tf.tensor2d([[2, 0]]), ref).arraySync());
  assert.ok(Math.abs(r[0]! - 0.5) < 1e-5, `got ${r}`); // max(1/2, 4/8) = 0.5
  disposeReferenceTensors(ref);
});

test('normalize maps the bounds to 0 and 1 and clamps, softNormalize follows it smoothly', () => {
  const x = [-1, 0, 0.5, 1, 2];
  const hard = tf.tidy(() => normalize(tf.tensor1d(x), { lo: 0, hi: 1 }).arraySync());
  assert.deepEqual(hard, [0, 0, 0.5, 1, 1]);
  const soft = tf.tidy(() => softNormalize(tf.tensor1d(x), { lo: 0, hi: 1 }).arraySync());
  assert.ok(Math.abs(soft[2]! - 0.5) < 1e-3);
  assert.ok(soft[0]! > 0 && soft[0]! < 0.01 && soft[4]! < 1 && soft[4]! > 0.99);
  const slope = tf.tidy(() => tf.grad((t: tf.Tensor) => softNormalize(t as tf.Tensor1D, { lo: 0, hi: 1 }).sum())(tf.tensor1d([-0.2])).dataSync()[0]!);
  assert.ok(slope > 0, 'the soft form still has a gradient past the lower bound');
});

test('A reference set saved and loaded back gives identical Q', async () => {
  await withTempDir(async (dir) => {
    const extractor = randomExtractor();
    const built = buildReference(extractor, refDigits.images, [28, 28, 1], refDigits.count, { id: 't', k: 3, dataSpec: 'mnist:train', noiseImages: 100 });
    const inMemory = referenceFromBuilt(built);
    await saveReference(path.join(dir, 'ref'), built);
    const loaded = await loadReference(path.join(dir, 'ref'));
    assert.deepEqual(loaded.manifest, built.manifest);
    const options = { alpha: 0.5, tau: 0.3, noiseEstimator: 'structure' as const };
    const images = batchOf(noisy(testDigits.images, 0.05, 3), 8);
    const a = await createQuality(extractor, inMemory, options).score(images);
    const b = await createQuality(extractor, loaded, options).score(images);
    assert.deepEqual(a, b);
    images.dispose();
    inMemory.dispose();
    loaded.dispose();
    extractor.dispose();
  });
});

test('A reference set whose features were altered is refused with MODEL_INVALID', async () => {
  await withTempDir(async (dir) => {
    const extractor = randomExtractor();
    const built = buildReference(extractor, refDigits.images.subarray(0, 50 * 784), [28, 28, 1], 50, { id: 't', k: 3, dataSpec: 'mnist:train', noiseImages: 20 });
    extractor.dispose();
    await saveReference(dir, built);
    const file = path.join(dir, 'features.f32');
    const bytes = await readFile(file);
    bytes[10] = bytes[10]! ^ 0xff;
    await writeFile(file, bytes);
    await assert.rejects(loadReference(dir), { code: 'MODEL_INVALID', message: /checksum/ });
    await writeFile(file, bytes.subarray(0, 100));
    await assert.rejects(loadReference(dir), { code: 'MODEL_INVALID', message: /bytes/ });
    await assert.rejects(loadReference(path.join(dir, 'nope')), { code: 'NOT_FOUND' });
  });
});

test('A reference set built with another extractor is refused', () => {
  const a = randomExtractor('extractor-a');
  const b = randomExtractor('extractor-b');
  const built = buildReference(a, refDigits.images.subarray(0, 50 * 784), [28, 28, 1], 50, { id: 't', k: 3, dataSpec: 'mnist:train', noiseImages: 20 });
  const ref = referenceFromBuilt(built);
  assert.throws(() => createQuality(b, ref, { alpha: 0.5, tau: 0.3, noiseEstimator: 'structure' }), { code: 'MODEL_INVALID' });
  ref.dispose();
  a.dispose();
  b.dispose();
});

test('Scoring, components and loss leak no tensors, and Q stays in [0,1]', async () => {
  const extractor = randomExtractor();
  const ref = referenceFromBuilt(buildReference(extractor, refDigits.images.subarray(0, 100 * 784), [28, 28, 1], 100, { id: 't', k: 3, dataSpec: 'mnist:train', noiseImages: 20 }));
  const quality = createQuality(extractor, ref, { alpha: 0.5, tau: 0.3, noiseEstimator: 'structure' });
  const images = batchOf(testDigits.images, 8);
  await quality.score(images); // warm-up: first calls may allocate backend-level caches
  const before = tf.memory().numTensors;
  const scores = await quality.score(images);
  tf.dispose(quality.components(images));
  quality.loss(images).dispose();
  tf.grad((x: tf.Tensor) => quality.loss(x as tf.Tensor4D))(images).dispose();
  assert.equal(tf.memory().numTensors, before);
  assert.equal(scores.length, 8);
  for (const s of scores) {
    assert.ok(s.q >= 0 && s.q <= 1, `q ${s.q}`);
    assert.equal(s.pass, s.q < 0.3);
    assert.ok(Math.abs(s.q - (0.5 * s.noiseNorm + 0.5 * s.distanceNorm)) < 1e-6);
  }
  images.dispose();
  quality.dispose();
});

test('The loss has a gradient with respect to the images', () => {
  const extractor = randomExtractor();
  const ref = referenceFromBuilt(buildReference(extractor, refDigits.images.subarray(0, 100 * 784), [28, 28, 1], 100, { id: 't', k: 3, dataSpec: 'mnist:train', noiseImages: 20 }));
  const quality = createQuality(extractor, ref, { alpha: 0.5, tau: 0.3, noiseEstimator: 'structure' });
  const images = tf.tensor4d(noisy(testDigits.images.subarray(0, 4 * 784), 0.1, 9), [4, 28, 28, 1]);
  const gradNorm = tf.tidy(() => tf.grad((x: tf.Tensor) => quality.loss(x as tf.Tensor4D))(images).abs().sum().dataSync()[0]!);
  assert.ok(Number.isFinite(gradNorm) && gradNorm > 0, `gradient norm ${gradNorm}`);
  images.dispose();
  quality.dispose();
});

test('Bad options and bad batches are refused with INVALID_ARGUMENT', async () => {
  const extractor = randomExtractor();
  const ref = referenceFromBuilt(buildReference(extractor, refDigits.images.subarray(0, 50 * 784), [28, 28, 1], 50, { id: 't', k: 3, dataSpec: 'mnist:train', noiseImages: 20 }));
  assert.throws(() => createQuality(extractor, ref, { alpha: 1.5, tau: 0.3, noiseEstimator: 'structure' }), { code: 'INVALID_ARGUMENT' });
  assert.throws(() => createQuality(extractor, ref, { alpha: 0.5, tau: 0, noiseEstimator: 'structure' }), { code: 'INVALID_ARGUMENT' });
  const quality = createQuality(extractor, ref, { alpha: 0.5, tau: 0.3, noiseEstimator: 'structure' });
  const images = batchOf(testDigits.images, 2);
  await assert.rejects(quality.score(images, Number.NaN), { code: 'INVALID_ARGUMENT' });
  await assert.rejects(quality.score(images, 1.5), { code: 'INVALID_ARGUMENT' });
  const flat = tf.zeros([28, 28]);
  await assert.rejects(quality.score(flat as unknown as tf.Tensor4D), { code: 'INVALID_ARGUMENT' });
  assert.throws(() => buildReference(extractor, refDigits.images.subarray(0, 50 * 784), [28, 28, 1], 50, { id: 't', k: 50, dataSpec: 'x' }), { code: 'INVALID_ARGUMENT' });
  flat.dispose();
  images.dispose();
  quality.dispose();
});

test('Images of another size or with colour are converted to the extractor input', async () => {
  const extractor = randomExtractor();
  const ref = referenceFromBuilt(buildReference(extractor, refDigits.images.subarray(0, 50 * 784), [28, 28, 1], 50, { id: 't', k: 3, dataSpec: 'mnist:train', noiseImages: 20 }));
  const quality = createQuality(extractor, ref, { alpha: 0.5, tau: 0.3, noiseEstimator: 'structure' });
  const rgb = tf.tidy(() => tf.image.resizeBilinear(tf.tile(batchOf(testDigits.images, 2), [1, 1, 1, 3]) as tf.Tensor4D, [56, 56]));
  const scores = await quality.score(rgb);
  assert.equal(scores.length, 2);
  for (const s of scores) assert.ok(Number.isFinite(s.q));
  rgb.dispose();
  quality.dispose();
});

test('Any LayersModel plugs in as the extractor by folder and layer name', async () => {
  await withTempDir(async (dir) => {
    const model = tf.sequential({
      layers: [
        tf.layers.flatten({ inputShape: [8, 8, 3] }),
        tf.layers.dense({ units: 6, activation: 'tanh', name: 'embedding' }),
        tf.layers.dense({ units: 2, activation: 'softmax', name: 'head' }),
      ],
    });
    await saveLayersModel(model, path.join(dir, 'm'));
    const reloaded = await loadLayersModel(path.join(dir, 'm'));
    const same = tf.tidy(() => {
      const x = tf.randomUniform([2, 8, 8, 3], 0, 1, 'float32', 1);
      return tf.sub(model.predict(x) as tf.Tensor, reloaded.predict(x) as tf.Tensor).abs().max().dataSync()[0]!;
    });
    assert.equal(same, 0, 'weights round-trip exactly');
    reloaded.dispose();
    await assert.rejects(loadExtractor(path.join(dir, 'm')), { code: 'INVALID_ARGUMENT', message: /feature layer/ });
    await assert.rejects(loadExtractor(path.join(dir, 'm'), { featureLayer: 'nope' }), { code: 'MODEL_INVALID', message: /embedding/ });
    const extractor = await loadExtractor(path.join(dir, 'm'), { featureLayer: 'embedding' });
    assert.equal(extractor.featureSize, 6);
    assert.deepEqual(extractor.input, { height: 8, width: 8, channels: 3, range: [0, 1] });
    const shape = tf.tidy(() => extractor.features(tf.zeros([5, 28, 28, 1]) as tf.Tensor4D).shape);
    assert.deepEqual(shape, [5, 6]);
    extractor.dispose();
    model.dispose();
  });
});

test('A model folder with truncated weights is refused with MODEL_INVALID', async () => {
  await withTempDir(async (dir) => {
    const model = tf.sequential({ layers: [tf.layers.dense({ inputShape: [4], units: 3 })] });
    await saveLayersModel(model, path.join(dir, 'm'));
    model.dispose();
    const weights = path.join(dir, 'm', 'weights.bin');
    await writeFile(weights, (await readFile(weights)).subarray(0, 8));
    await assert.rejects(loadLayersModel(path.join(dir, 'm')), { code: 'MODEL_INVALID' });
    await assert.rejects(loadLayersModel(path.join(dir, 'missing')), { code: 'NOT_FOUND' });
  });
});

test('Scoring a batch larger than one model call gives the same scores as scoring it in parts', async () => {
  const extractor = randomExtractor();
  const ref = referenceFromBuilt(buildReference(extractor, refDigits.images.subarray(0, 50 * 784), [28, 28, 1], 50, { id: 't', k: 3, dataSpec: 'mnist:train', noiseImages: 20 }));
  const quality = createQuality(extractor, ref, { alpha: 0.5, tau: 0.3, noiseEstimator: 'structure' });
  const all = tf.tensor4d(refDigits.images.subarray(0, 300 * 784), [300, 28, 28, 1]);
  const head = all.slice([0, 0, 0, 0], [100, -1, -1, -1]);
  const tail = all.slice([260, 0, 0, 0], [40, -1, -1, -1]);
  const whole = await quality.score(all);
  assert.equal(whole.length, 300);
  const close = (a: number, b: number) => Math.abs(a - b) < 1e-5;
  (await quality.score(head)).forEach((s, i) => assert.ok(close(s.q, whole[i]!.q), `image ${i}`));
  (await quality.score(tail)).forEach((s, i) => assert.ok(close(s.q, whole[260 + i]!.q), `image ${260 + i}`));
  tf.dispose([all, head, tail]);
  quality.dispose();
});
