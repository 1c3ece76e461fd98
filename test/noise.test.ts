import assert from 'node:assert/strict';
import { before, describe, test } from 'node:test';

import * as tf from '@tensorflow/tfjs';

import { initBackend } from '../src/backend/index.ts';
import { fusedKthSmallest } from '../src/backend/wasm-kernels.ts';
import { isQgateError } from '../src/errors.ts';
import {
  DEFAULT_NOISE_ESTIMATOR,
  kthSmallest,
  NOISE_ESTIMATOR_NAMES,
  estimateNoise,
  getNoiseEstimator,
  noiseEstimators,
} from '../src/quality/noise.ts';

before(async () => {
  await tf.setBackend('cpu');
  await tf.ready();
});

/** A flat grey image batch plus seeded i.i.d. Gaussian noise of std `sigma`, unclipped. */
function noisy(shape: [number, number, number, number], sigma: number, seed = 1, base = 0.5): tf.Tensor4D {
  return tf.tidy(() => tf.add(tf.fill(shape, base), tf.randomNormal(shape, 0, sigma, 'float32', seed))) as tf.Tensor4D;
}

/** A hard-edged white disk on black, [1,size,size,1]: pure structure, no noise. */
function disk(size: number, radius: number): tf.Tensor4D {
  const data = new Float32Array(size * size);
  const c = (size - 1) / 2;
  for (let y = 0; y < size; y++) {
    for (let x = 0; x < size; x++) data[y * size + x] = Math.hypot(x - c, y - c) <= radius ? 1 : 0;
  }
  return tf.tensor4d(data, [1, size, size, 1]);
}

function read(name: (typeof NOISE_ESTIMATOR_NAMES)[number], images: tf.Tensor4D): number[] {
  const out = noiseEstimators[name](images);
  const values = Array.from(out.dataSync());
  out.dispose();
  return values;
}

describe('noise estimators', () => {
  test('the registry lists every estimator and the default is one of them', () => {
    assert.deepEqual(Object.keys(noiseEstimators).sort(), [...NOISE_ESTIMATOR_NAMES].sort());
    assert.ok(NOISE_ESTIMATOR_NAMES.includes(DEFAULT_NOISE_ESTIMATOR));
    assert.equal(getNoiseEstimator('immerkaer'), noiseEstimators.immerkaer);
    assert.throws(() => getNoiseEstimator('nope'), (e: unknown) => isQgateError(e) && e.code === 'NOT_FOUND');
  });

  test('a constant image has zero noise for every estimator', () => {
    const images = tf.fill([2, 16, 16, 1], 0.37) as tf.Tensor4D;
    for (const name of NOISE_ESTIMATOR_NAMES) {
      for (const v of read(name, images)) assert.ok(Math.abs(v) < 1e-5, `${name} read ${v}`);
    }
    images.dispose();
  });

  test('pure Gaussian noise of σ=0.1 reads as 0.1 (immerkaer within 5%, the others within 5% too)', () => {
    const images = noisy([4, 64, 64, 1], 0.1, 42);
    for (const name of NOISE_ESTIMATOR_NAMES) {
      const values = read(name, images);
      const mean = values.reduce((a, b) => a + b, 0) / values.length;
      assert.ok(Math.abs(mean - 0.1) <= 0.005, `${name} read ${mean}`);
      for (const v of values) assert.ok(Math.abs(v - 0.1) <= 0.01, `${name} read ${v} on one image`);
    }
    images.dispose();
  });

  test('every estimator increases with σ', () => {
    const sigmas = [0.01, 0.03, 0.1, 0.3];
    for (const name of NOISE_ESTIMATOR_NAMES) {
      const values = sigmas.map((s, i) => {
        const images = noisy([1, 48, 48, 1], s, 100 + i);
        const [v] = read(name, images);
        images.dispose();
        return v as number;
      });
      for (let i = 1; i < values.length; i++) {
        assert.ok((values[i] as number) > (values[i - 1] as number), `${name}: ${values.join(' ')}`);
      }
    }
  });

  test('the batch dimension is respected: each image gets its own value', () => {
    const images = tf.tidy(() => tf.concat([noisy([1, 32, 32, 1], 0.02, 5), noisy([1, 32, 32, 1], 0.2, 6)]) as tf.Tensor4D);
    for (const name of NOISE_ESTIMATOR_NAMES) {
      const [low, high] = read(name, images) as [number, number];
      assert.ok(high > 3 * low, `${name}: ${low} vs ${high}`);
      // The same images one at a time give the same values as in the batch.
      for (const [i, v] of [low, high].entries()) {
        const single = tf.slice(images, [i, 0, 0, 0], [1, -1, -1, -1]);
        const [alone] = read(name, single) as [number];
        single.dispose();
        assert.ok(Math.abs(alone - v) < 1e-6, `${name}: image ${i} alone ${alone}, in batch ${v}`);
      }
    }
    images.dispose();
  });

  test('colour images are estimated per channel and averaged', () => {
    const images = noisy([2, 32, 32, 3], 0.1, 9);
    for (const name of NOISE_ESTIMATOR_NAMES) {
      const channels = tf.split(images, 3, 3);
      const perChannel = channels.map((c) => read(name, c as tf.Tensor4D));
      tf.dispose(channels);
      const values = read(name, images);
      assert.equal(values.length, 2);
      values.forEach((v, b) => {
        const expected = perChannel.reduce((a, c) => a + (c[b] as number), 0) / 3;
        assert.ok(Math.abs(v - expected) < 1e-6, `${name}: ${v} vs ${expected}`);
      });
    }
    images.dispose();
  });

  test('gradients exist: tf.grad gives a finite, nonzero gradient of the image shape', () => {
    const images = tf.tidy(() => tf.add(tf.tile(disk(24, 7), [2, 1, 1, 1]), tf.randomNormal([2, 24, 24, 1], 0, 0.05, 'float32', 3)));
    for (const name of NOISE_ESTIMATOR_NAMES) {
      const g = tf.grad((x: tf.Tensor) => tf.sum(noiseEstimators[name](x as tf.Tensor4D)))(images);
      assert.deepEqual(g.shape, images.shape);
      const data = g.dataSync();
      assert.ok(data.every(Number.isFinite), `${name}: non-finite gradient`);
      assert.ok(data.some((v) => v !== 0), `${name}: zero gradient`);
      g.dispose();
    }
    images.dispose();
  });

  test('the gradient of a constant image is finite', () => {
    const images = tf.fill([1, 8, 8, 1], 0.5) as tf.Tensor4D;
    for (const name of NOISE_ESTIMATOR_NAMES) {
      const g = tf.grad((x: tf.Tensor) => tf.sum(noiseEstimators[name](x as tf.Tensor4D)))(images);
      assert.ok(g.dataSync().every(Number.isFinite), `${name}: non-finite gradient`);
      g.dispose();
    }
    images.dispose();
  });

  test('the structure estimator ignores edges that immerkaer reads as noise', () => {
    const clean = disk(32, 9);
    const [structureClean] = read('structure', clean) as [number];
    const [immerkaerClean] = read('immerkaer', clean) as [number];
    assert.equal(structureClean, 0);
    assert.ok(immerkaerClean > 0.02, `immerkaer read ${immerkaerClean} on a clean disk`);
    // With noise of σ=0.05 on top, structure stays close while immerkaer is pulled up by the edge.
    const images = tf.tidy(() => tf.add(tf.tile(clean, [8, 1, 1, 1]), tf.randomNormal([8, 32, 32, 1], 0, 0.05, 'float32', 11)));
    const mean = (v: number[]): number => v.reduce((a, b) => a + b, 0) / v.length;
    const structure = mean(read('structure', images as tf.Tensor4D));
    const immerkaer = mean(read('immerkaer', images as tf.Tensor4D));
    assert.ok(Math.abs(structure - 0.05) < 0.0025, `structure read ${structure}`);
    assert.ok(immerkaer - 0.05 > 2 * Math.abs(structure - 0.05), `immerkaer read ${immerkaer}`);
    tf.dispose([clean, images]);
  });

  test('no tensors leak from any estimator, with or without gradients', () => {
    const images = noisy([3, 20, 20, 2], 0.1, 7);
    const before = tf.memory().numTensors;
    for (const name of NOISE_ESTIMATOR_NAMES) {
      read(name, images);
      const g = tf.grad((x: tf.Tensor) => tf.sum(noiseEstimators[name](x as tf.Tensor4D)))(images);
      g.dispose();
    }
    estimateNoise(images).dispose();
    assert.equal(tf.memory().numTensors, before);
    images.dispose();
  });

  test('inputs that are not [B,H,W,C] of at least 3x3 are rejected with INVALID_ARGUMENT', () => {
    const small = tf.zeros([1, 2, 5, 1]) as tf.Tensor4D;
    const flat = tf.zeros([5, 5]);
    for (const name of NOISE_ESTIMATOR_NAMES) {
      const invalid = (e: unknown): boolean => isQgateError(e) && e.code === 'INVALID_ARGUMENT';
      assert.throws(() => noiseEstimators[name](small), invalid);
      assert.throws(() => noiseEstimators[name](flat as unknown as tf.Tensor4D), invalid);
    }
    tf.dispose([small, flat]);
  });
});

test('kthSmallest is each row\'s k-th smallest value, on the wasm backend and on cpu', async () => {
  // 64 rows of 676, k = 169: structure's stage 1 on 28×28 images. Values on a coarse grid, so
  // that rows hold ties. With an unsorted top-k, the wasm backend got 11 rows of 64 wrong.
  let s = 12345;
  const data = Float32Array.from({ length: 64 * 676 }, () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return Math.round((s / 2 ** 32) * 200) / 8;
  });
  const expected = Array.from({ length: 64 }, (_, r) => Array.from(data.subarray(r * 676, (r + 1) * 676)).sort((a, b) => a - b)[168]);
  for (const backend of ['wasm', 'cpu'] as const) {
    // initBackend sets wasm up (and selects it) once; afterwards selecting it is enough.
    if (backend === 'wasm') await initBackend('wasm');
    await tf.setBackend(backend);
    const before = tf.memory().numTensors;
    const x = tf.tensor2d(data, [64, 676]);
    const got = kthSmallest(x, 169);
    assert.deepEqual(got.shape, [64, 1]);
    assert.deepEqual(Array.from(got.dataSync()), expected, backend);
    tf.dispose([x, got]);
    assert.equal(tf.memory().numTensors, before, `${backend}: no tensor leaks`);
  }
  await tf.setBackend('cpu');
});

test('on wasm kthSmallest\'s compiled selection gives the sorted top-k\'s bits: ties, sorted rows, ±∞, and −0 or NaN rows', async () => {
  await initBackend('wasm');
  await tf.setBackend('wasm');
  const n = 37;
  const plain: number[][] = [
    Array.from({ length: n }, (_, i) => i), // ascending
    Array.from({ length: n }, (_, i) => n - i), // descending
    Array.from({ length: n }, () => 3), // all equal
    Array.from({ length: n }, (_, i) => (i % 5) - 2), // many ties
    Array.from({ length: n }, (_, i) => (i % 7 === 0 ? Infinity : i % 11 === 0 ? -Infinity : Math.sin(i))),
    Array.from({ length: n }, (_, i) => Math.fround(Math.sin(i * 7.3) * 1e-40)), // subnormals
  ];
  // Rows whose order only TF.js's sort defines: the whole batch goes to it. One batch each.
  const negativeZero = [Array.from({ length: n }, (_, i) => (i % 4 === 1 ? -0 : i % 3))]; // −0 among +0
  const nan = [Array.from({ length: n }, (_, i) => (i === 20 ? NaN : Math.cos(i)))];
  const bits = (t: tf.Tensor) => Array.from(new Uint32Array(Float32Array.from(t.dataSync()).buffer));
  const before = tf.memory().numTensors;
  for (const [name, rows, compiled] of [['plain rows', plain, true], ['a −0 row', negativeZero, false], ['a NaN row', nan, false]] as const) {
    const x = tf.tensor2d(rows.flat(), [rows.length, n]);
    for (let k = 1; k <= n; k++) {
      const fused = fusedKthSmallest(x, k);
      assert.equal(fused !== undefined, compiled, `${name}, k = ${k}: compiled selection used`);
      fused?.dispose();
      const ours = tf.tidy(() => bits(kthSmallest(x, k)));
      const sorted = tf.tidy(() => bits(tf.neg(tf.slice(tf.topk(tf.neg(x), k, true).values, [0, k - 1], [-1, 1]))));
      assert.deepEqual(ours, sorted, `${name}, k = ${k}`);
    }
    x.dispose();
  }
  assert.equal(tf.memory().numTensors, before, 'no tensor leaks');
  await tf.setBackend('cpu');
});
