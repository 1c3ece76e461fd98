import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '../src/backend/index.ts';
import { withStockWasmKernels } from '../src/backend/wasm-kernels.ts';

await initBackend('wasm');

/** A seeded uniform(-1, 1) array, so a failure reproduces. */
function randomArray(size: number, seed: number): Float32Array {
  let s = seed >>> 0;
  const out = new Float32Array(size);
  for (let i = 0; i < size; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    out[i] = (s / 2 ** 32) * 2 - 1;
  }
  return out;
}

/** ‖a − b‖ / ‖b‖: elementwise relative error is meaningless where the reference is near zero. */
function relativeError(a: ArrayLike<number>, b: ArrayLike<number>): number {
  assert.equal(a.length, b.length);
  let num = 0;
  let den = 0;
  for (let i = 0; i < a.length; i++) {
    num += (a[i]! - b[i]!) ** 2;
    den += b[i]! ** 2;
  }
  return Math.sqrt(num / Math.max(den, 1e-30));
}

/** Runs the same computation on the cpu backend and on wasm (with qgate's kernels) and compares. */
async function compareWithCpu(
  shapes: number[][],
  compute: (...inputs: tf.Tensor[]) => tf.Tensor,
): Promise<number> {
  const data = shapes.map((s, i) => randomArray(s.reduce((a, b) => a * b, 1), 17 + 31 * i));
  const run = async (backend: string): Promise<Float32Array> => {
    await tf.setBackend(backend);
    const result = tf.tidy(() => compute(...data.map((d, i) => tf.tensor(d, shapes[i]!))));
    const values = (await result.data()) as Float32Array;
    result.dispose();
    return values;
  };
  const expected = await run('cpu');
  const before = tf.memory().numTensors;
  const actual = await run('wasm');
  assert.equal(tf.memory().numTensors, before, 'no tensor leaks on wasm');
  return relativeError(actual, expected);
}

const convCases: Array<{ x: number[]; f: number[]; strides: number | [number, number]; pad: 'same' | 'valid' | number }> = [
  { x: [2, 8, 8, 1], f: [3, 3, 1, 4], strides: 1, pad: 'same' },
  { x: [3, 9, 7, 2], f: [3, 3, 2, 5], strides: 2, pad: 'same' },
  { x: [2, 14, 14, 8], f: [4, 4, 8, 16], strides: 2, pad: 'same' },
  { x: [2, 11, 11, 3], f: [5, 5, 3, 6], strides: 1, pad: 'valid' },
  { x: [2, 12, 10, 4], f: [3, 2, 4, 3], strides: [2, 3], pad: 'valid' },
  { x: [1, 7, 7, 2], f: [3, 3, 2, 2], strides: 2, pad: 1 },
  { x: [4, 28, 28, 1], f: [5, 5, 1, 8], strides: 1, pad: 'same' },
];

for (const c of convCases) {
  const label = `x=${c.x} filter=${c.f} strides=${c.strides} pad=${c.pad}`;

  test(`Conv2DBackpropFilter matches the cpu backend for ${label}`, async () => {
    const err = await compareWithCpu([c.x, c.f], (x, f) => {
      const dy = tf.conv2d(x as tf.Tensor4D, f as tf.Tensor4D, c.strides, c.pad);
      const dyData = tf.tensor(randomArray(dy.size, 99), dy.shape) as tf.Tensor4D;
      // The gradient of Σ conv(x, w)·dy with respect to w is exactly Conv2DBackpropFilter(x, dy).
      return tf.grad((w: tf.Tensor) =>
        tf.conv2d(x as tf.Tensor4D, w as tf.Tensor4D, c.strides, c.pad).mul(dyData).sum())(f!);
    });
    assert.ok(err < 1e-5, `relative error ${err}`);
  });

  test(`Conv2DBackpropInput matches the cpu backend for ${label}`, async () => {
    const err = await compareWithCpu([c.x, c.f], (x, f) => {
      const dy = tf.conv2d(x as tf.Tensor4D, f as tf.Tensor4D, c.strides, c.pad);
      const dyData = tf.tensor(randomArray(dy.size, 7), dy.shape) as tf.Tensor4D;
      return tf.conv2dTranspose(dyData, f as tf.Tensor4D, c.x as [number, number, number, number], c.strides, c.pad);
    });
    assert.ok(err < 1e-5, `relative error ${err}`);
  });
}

const matMulCases: Array<{ a: number[]; b: number[]; ta: boolean; tb: boolean }> = [
  { a: [784, 64], b: [784, 128], ta: true, tb: false },
  { a: [64, 784], b: [128, 784], ta: false, tb: true },
  { a: [33, 17], b: [9, 33], ta: true, tb: true },
  { a: [3, 5, 7], b: [3, 5, 4], ta: true, tb: false },
  { a: [2, 6, 5], b: [1, 4, 5], ta: false, tb: true },
  { a: [16, 1], b: [16, 1], ta: true, tb: false },
];

for (const c of matMulCases) {
  test(`BatchMatMul matches the cpu backend for a=${c.a} b=${c.b} transposeA=${c.ta} transposeB=${c.tb}`, async () => {
    const err = await compareWithCpu([c.a, c.b], (a, b) => tf.matMul(a!, b!, c.ta, c.tb));
    assert.ok(err < 1e-5, `relative error ${err}`);
  });
}

const tileCases: Array<{ shape: number[]; reps: number[] }> = [
  { shape: [1, 1, 1, 32], reps: [64, 14, 14, 1] }, // a batch-norm gradient's broadcast
  { shape: [1, 1, 5], reps: [1, 4, 1] },
  { shape: [3, 4], reps: [2, 3] },
  { shape: [2, 3, 2], reps: [3, 1, 2] },
  { shape: [7], reps: [5] },
  { shape: [2, 1, 3, 1, 2], reps: [1, 2, 1, 3, 2] },
  { shape: [4, 3], reps: [1, 1] },
  { shape: [64, 1], reps: [1, 1568] }, // a row sum's gradient over φ's features: many repeats of one element
  { shape: [3, 2], reps: [1, 7] }, // a repeat count that is not a power of two
];

for (const c of tileCases) {
  test(`Tile matches the cpu backend for shape=${c.shape} reps=${c.reps}`, async () => {
    const err = await compareWithCpu([c.shape], (x) => tf.tile(x!, c.reps));
    assert.equal(err, 0, 'tile only copies');
  });
}

test('Tile keeps int32 and bool values and handles rank 0 and empty tensors', async () => {
  await tf.setBackend('wasm');
  const before = tf.memory().numTensors;
  tf.tidy(() => {
    assert.deepEqual(tf.tile(tf.tensor2d([[1, -2]], [1, 2], 'int32'), [2, 2]).arraySync(), [[1, -2, 1, -2], [1, -2, 1, -2]]);
    assert.deepEqual(tf.tile(tf.tensor1d([true, false], 'bool'), [2]).arraySync(), [1, 0, 1, 0]);
    assert.deepEqual(tf.tile(tf.tensor2d([], [0, 3]), [4, 2]).shape, [0, 6]);
    assert.deepEqual(tf.tile(tf.tensor2d([[1, 2]]), [0, 2]).shape, [0, 4]);
  });
  assert.equal(tf.memory().numTensors, before);
});

const topKCases: Array<{ shape: number[]; k: number; ties?: boolean }> = [
  { shape: [64, 10000], k: 3 }, // Q's k-th nearest search
  { shape: [5, 17], k: 1 },
  { shape: [2, 3, 40], k: 16 },
  { shape: [4, 9], k: 9 },
  { shape: [6, 50], k: 5, ties: true },
  { shape: [3, 30], k: 20 }, // over the scan's limit: the stock kernel
];

for (const c of topKCases) {
  test(`TopK matches the cpu backend for shape=${c.shape} k=${c.k}${c.ties ? ' with ties' : ''}`, async () => {
    // With ties, values are rounded to a few levels so that many are equal and order is by index.
    const compute = (x: tf.Tensor) => {
      const input = c.ties ? x.mul(3).round() : x;
      const { values, indices } = tf.topk(input, c.k);
      return tf.concat([values.reshape([-1]), indices.cast('float32').reshape([-1])]);
    };
    assert.equal(await compareWithCpu([c.shape], compute), 0);
  });
}

test('TopK with a NaN in the input gives the stock kernel\'s answer, and leaks nothing', async () => {
  await tf.setBackend('wasm');
  const before = tf.memory().numTensors;
  const top = () => tf.tidy(() => {
    const { values, indices } = tf.topk(tf.tensor2d([[1, NaN, 3, 2], [4, 5, 6, 7]]), 2);
    return [Array.from(values.dataSync()), Array.from(indices.dataSync())];
  });
  assert.deepEqual(top(), withStockWasmKernels(top));
  assert.equal(tf.memory().numTensors, before);
});

/** Bits of every value, so −0 and +0 (and NaN) compare as themselves. */
function bits(t: tf.Tensor): number[] {
  return Array.from(new Uint32Array(Float32Array.from(t.dataSync()).buffer));
}

test('LeakyReLU and its gradient give the stock wasm kernels\' exact bits, −0, infinities and subnormals included', async () => {
  await tf.setBackend('wasm');
  const special = [-0, 0, Infinity, -Infinity, 1e-45, -1e-45, 3.4e38, -3.4e38, -1, 2.5, NaN];
  // 1,150 values: the compiled kernels' vector loop and their two-element tail.
  const x = tf.tensor1d([...randomArray(1150 - special.length, 5), ...special]);
  const dy = tf.tensor1d(randomArray(1150, 6));
  const before = tf.memory().numTensors;
  for (const alpha of [0.2, 0.01, 1 / 3]) {
    const forward = () => tf.tidy(() => bits(tf.leakyRelu(x, alpha)));
    const backward = () => tf.tidy(() => bits(tf.grad((t: tf.Tensor) => tf.leakyRelu(t, alpha))(x, dy)));
    assert.deepEqual(forward(), withStockWasmKernels(forward), `forward, α = ${alpha}`);
    // The stock gradient: TF.js's where(x > 0, dy, dy·α), run on the stock kernels.
    const stockBackward = () => tf.tidy(() => bits(tf.where(tf.greater(x, 0), dy, tf.mul(dy, alpha))));
    assert.deepEqual(backward(), withStockWasmKernels(stockBackward), `gradient, α = ${alpha}`);
  }
  assert.equal(tf.memory().numTensors, before, 'no tensor leaks');
  tf.dispose([x, dy]);
});

test('LeakyReLU\'s gradient matches the cpu backend', async () => {
  const err = await compareWithCpu([[3, 5, 5, 4], [3, 5, 5, 4]], (x, dy) => tf.grad((t: tf.Tensor) => tf.leakyRelu(t, 0.2))(x!, dy));
  assert.ok(err < 1e-7, `relative error ${err}`);
});

test('The fused matmul with bias and activation matches the cpu backend with transposed operands', async () => {
  const err = await compareWithCpu([[20, 12], [7, 20], [7]], (a, b, bias) =>
    tf.fused.matMul({ a: a as tf.Tensor2D, b: b as tf.Tensor2D, transposeA: true, transposeB: true, bias, activation: 'relu' }));
  assert.ok(err < 1e-5, `relative error ${err}`);
});

test('A small convnet trains on wasm: the loss falls and no tensors leak', async () => {
  await tf.setBackend('wasm');
  const model = tf.sequential({
    layers: [
      tf.layers.conv2d({ inputShape: [8, 8, 1], filters: 4, kernelSize: 3, strides: 2, padding: 'same', activation: 'relu', kernelInitializer: tf.initializers.glorotUniform({ seed: 1 }) }),
      tf.layers.conv2dTranspose({ filters: 1, kernelSize: 3, strides: 2, padding: 'same', kernelInitializer: tf.initializers.glorotUniform({ seed: 2 }) }),
    ],
  });
  const x = tf.tensor4d(randomArray(16 * 64, 5), [16, 8, 8, 1]);
  const optimizer = tf.train.adam(0.01);
  const lossOf = () => tf.losses.meanSquaredError(x, model.predict(x) as tf.Tensor) as tf.Scalar;
  const first = tf.tidy(() => lossOf().dataSync()[0]!);
  optimizer.minimize(lossOf, true)!.dispose();
  const afterOne = tf.memory().numTensors;
  for (let i = 0; i < 30; i++) optimizer.minimize(lossOf, true)!.dispose();
  assert.equal(tf.memory().numTensors, afterOne, 'steady state: each step frees what it makes');
  const last = tf.tidy(() => lossOf().dataSync()[0]!);
  assert.ok(last < first * 0.8, `loss ${first} -> ${last}`);
  x.dispose();
  model.dispose();
  optimizer.dispose();
});
