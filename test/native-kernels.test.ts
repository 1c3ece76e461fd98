import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, cpSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { QgateAdamOptimizer } from '../src/backend/adam.ts';
import { initBackend } from '../src/backend/index.ts';
import { convGeometry, nativeKernels } from '../src/backend/native-kernels.ts';
import { col2im, im2colTransposed, withStockWasmKernels, withXnnpackMatMul } from '../src/backend/wasm-kernels.ts';
import { fillGaussian, mulberry32 } from '../src/random.ts';
import { buildDiscriminator, buildGenerator, makeOptimizer, trainDiscriminatorOneStep, trainGeneratorOneStep } from '../src/train/gan.ts';

await initBackend('wasm');

/** Seeded values in (-1, 1), with exact zeros and a −0 mixed in so that signs of zero are checked too. */
function values(size: number, seed: number): Float32Array {
  let s = seed >>> 0;
  return Float32Array.from({ length: size }, (_, i) => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return i % 97 === 0 ? 0 : i % 89 === 0 ? -0 : (s / 2 ** 32) * 2 - 1;
  });
}

const bits = (a: Float32Array) => Array.from(new Uint32Array(a.buffer, a.byteOffset, a.length));

const geometries: Array<{ x: [number, number, number, number]; f: [number, number, number, number]; stride: number; pad: 'same' | 'valid' }> = [
  { x: [4, 14, 14, 32], f: [4, 4, 32, 64], stride: 2, pad: 'same' }, // the DCGAN layers' shape, smaller batch
  { x: [3, 28, 28, 1], f: [4, 4, 1, 32], stride: 2, pad: 'same' },
  { x: [2, 9, 7, 5], f: [3, 2, 5, 4], stride: 1, pad: 'same' }, // channels not a multiple of 4
  { x: [2, 11, 10, 6], f: [5, 5, 6, 3], stride: 3, pad: 'valid' },
  { x: [1, 5, 5, 16], f: [5, 5, 16, 8], stride: 1, pad: 'same' }, // windows mostly over the padding
  { x: [2, 12, 12, 1], f: [5, 5, 1, 16], stride: 1, pad: 'same' }, // one channel (col2im's gather): LeNet's first layer
  { x: [2, 11, 10, 1], f: [3, 4, 1, 2], stride: 3, pad: 'valid' }, // one channel, pixels no window covers
];

for (const g of geometries) {
  const label = `x ${g.x.join('×')}, filter ${g.f.join('×')}, stride ${g.stride}, ${g.pad}`;
  test(`the compiled im2col and col2im write the JavaScript versions' exact bits (${label})`, () => {
    const native = nativeKernels(tf.backend());
    assert.ok(native, 'the compiled kernels load on the wasm backend');
    const info = tf.backend_util.computeConv2DInfo(g.x, g.f, g.stride, 1, g.pad);
    const N = info.batchSize * info.outHeight * info.outWidth;
    const K = info.filterHeight * info.filterWidth * info.inChannels;
    const before = tf.memory().numTensors;
    const xData = values(tf.util.sizeFromShape(g.x), 3);
    const colsData = values(N * K, 4);
    const [x, cols] = [tf.tensor(xData, g.x), tf.tensor2d(colsData, [N, K])];
    // Filled with NaN, so an element the kernel fails to write shows up.
    const patches = tf.fill([K, N], NaN);
    const image = tf.fill(g.x, NaN);
    native.im2colT(native.offset(x), native.offset(patches), ...convGeometry(info));
    native.col2im(native.offset(cols), native.offset(image), ...convGeometry(info));
    const expectedPatches = new Float32Array(K * N);
    im2colTransposed(xData, info, expectedPatches);
    const expectedImage = new Float32Array(xData.length);
    col2im(colsData, info, expectedImage);
    assert.deepEqual(bits(patches.dataSync() as Float32Array), bits(expectedPatches));
    assert.deepEqual(bits(image.dataSync() as Float32Array), bits(expectedImage));
    tf.dispose([x, cols, patches, image]);
    assert.equal(tf.memory().numTensors, before);
  });
}

const clang = ['clang', 'wasm-ld', 'llvm-objdump-14'].every((tool) => spawnSync(tool, ['--version']).status === 0);
// CI installs the tools and sets QGATE_REQUIRE_CLANG=1 (.ci/run), so the check cannot be skipped there.
const skipRebuild = !clang && process.env.QGATE_REQUIRE_CLANG !== '1' && 'clang, lld and llvm-objdump-14 are not installed (apt-get install clang lld llvm-14)';
test('the committed kernels are what scripts/build-wasm-kernels.sh builds from their C source', { skip: skipRebuild }, () => {
  // Built in a copy, so the committed files are compared, not overwritten.
  const dir = mkdtempSync(path.join(os.tmpdir(), 'qgate-kernels-'));
  try {
    cpSync('scripts', path.join(dir, 'scripts'), { recursive: true });
    cpSync('src/backend/kernels', path.join(dir, 'src/backend/kernels'), { recursive: true, filter: (f) => !f.endsWith('.wasm') });
    execFileSync('sh', [path.join(dir, 'scripts/build-wasm-kernels.sh')], { stdio: 'pipe' });
    const kernels = readdirSync('src/backend/kernels').filter((f) => f.endsWith('.c')).map((f) => f.slice(0, -2));
    assert.ok(kernels.length >= 4, 'the kernel sources are found');
    for (const file of kernels.flatMap((k) => [`${k}.wasm`, `${k}-shared.wasm`])) {
      assert.ok(readFileSync(path.join(dir, 'src/backend/kernels', file)).equals(readFileSync(path.join('src/backend/kernels', file))), `${file} matches a rebuild`);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

/** Runs `f` with qgate's kernels and with TF.js's stock ones and returns both results' bits. */
function againstStock(f: () => tf.Tensor | tf.Tensor[]): [number[][], number[][]] {
  const read = (r: tf.Tensor | tf.Tensor[]) => {
    const out = [r].flat().map((t) => bits(Float32Array.from(t.dataSync())));
    tf.dispose(r);
    return out;
  };
  return [read(f()), read(withStockWasmKernels(f))];
}

test('Sum and Mean over leading axes, and batch norm and its gradient, give the stock kernels\' exact bits', () => {
  const x = tf.tensor4d(values(6 * 7 * 5 * 12, 7), [6, 7, 5, 12]);
  const special = tf.tensor2d([NaN, -0, 0, Infinity, -Infinity, 1e-45, -1e-45, 3.4e38, 3.4e38, -1], [5, 2]);
  const m = tf.mean(x, [0, 1, 2]);
  const v = tf.moments(x, [0, 1, 2]).variance;
  const offset = tf.tensor1d(values(12, 8));
  const scale = tf.tensor1d(values(12, 9));
  const dy = tf.tensor4d(values(x.size, 10), x.shape);
  const before = tf.memory().numTensors;
  const cases: Record<string, () => tf.Tensor | tf.Tensor[]> = {
    'sum over [0, 1, 2]': () => tf.sum(x, [0, 1, 2]),
    'sum over [0, 1], keepDims': () => tf.sum(x, [0, 1], true),
    'sum over axis 0': () => tf.sum(x, 0),
    'sum over [1, 0] (not in order: stock)': () => tf.sum(x, [1, 0]),
    'sum over axis 2 (not leading: stock)': () => tf.sum(x, 2),
    'mean over [0, 1, 2]': () => tf.mean(x, [0, 1, 2]),
    'moments over [0, 1, 2]': () => { const r = tf.moments(x, [0, 1, 2]); return [r.mean, r.variance]; },
    'sum and mean of NaN, ±0, ±∞, subnormals, overflow': () => [tf.sum(special, 0), tf.mean(special, 0)],
    'batch norm, per-channel parameters': () => tf.batchNorm(x, m, v, offset, scale, 1e-3),
    'batch norm, 6 channels (four in a vector, two after)': () => tf.tidy(() => {
      const x6 = tf.tensor2d(values(9 * 6, 15), [9, 6]);
      return tf.batchNorm(x6, tf.tensor1d(values(6, 16)), tf.abs(tf.tensor1d(values(6, 17))), tf.tensor1d(values(6, 18)), tf.tensor1d(values(6, 19)), 1e-3);
    }),
    'batch norm, no offset or scale': () => tf.batchNorm(x, m, v, undefined, undefined, 1e-3),
    'batch norm, scalar parameters': () => tf.tidy(() => tf.batchNorm(x, tf.scalar(0.1), tf.scalar(2), tf.scalar(0.5), tf.scalar(3), 1e-3)),
    'batch norm\'s gradients': () => tf.grads((a: tf.Tensor, s: tf.Tensor, o: tf.Tensor) => tf.batchNorm(a, m, v, o, s, 1e-3))([x, scale, offset], dy),
    'sum\'s gradient over [0, 1, 2]': () => tf.tidy(() => tf.grad((a: tf.Tensor) => tf.sum(a, [0, 1, 2]))(x, tf.tensor1d(values(12, 11)))),
    'sum\'s gradient over axis 2, keepDims': () => tf.tidy(() => tf.grad((a: tf.Tensor) => tf.sum(a, 2, true))(x, tf.tensor4d(values(6 * 7 * 12, 12), [6, 7, 1, 12]))),
    'mean\'s gradient over [0, 1, 2]': () => tf.tidy(() => tf.grad((a: tf.Tensor) => tf.mean(a, [0, 1, 2]))(x, tf.tensor1d(values(12, 13)))),
    'mean\'s gradient over [1, 3]': () => tf.tidy(() => tf.grad((a: tf.Tensor) => tf.mean(a, [1, 3]))(x, tf.tensor2d(values(6 * 5, 14), [6, 5]))),
    'mean\'s gradient of everything, NaN, ±0, ±∞ and subnormals in dy': () => tf.tidy(() => tf.grad((a: tf.Tensor) => tf.mean(a))(special, tf.scalar(NaN))),
    'sum\'s gradient of special values': () => tf.tidy(() => tf.grad((a: tf.Tensor) => tf.sum(a, 1))(special, tf.tensor1d([-0, 1e-45, Infinity, -3.4e38, NaN]))),
    'batch norm with batch statistics, forward and gradients': () => tf.grads((a: tf.Tensor, s: tf.Tensor, o: tf.Tensor) => {
      const stats = tf.moments(a, [0, 1, 2]);
      return tf.batchNorm(a, stats.mean, stats.variance, o, s, 1e-3);
    })([x, scale, offset], dy),
    'clone and cast to the same dtype': () => tf.tidy(() => [x.clone(), tf.cast(x, 'float32'), tf.cast(tf.cast(x, 'int32'), 'float32')]),
  };
  for (const [name, f] of Object.entries(cases)) {
    const [ours, theirs] = againstStock(f);
    assert.deepEqual(ours, theirs, name);
  }
  assert.equal(tf.memory().numTensors, before, 'no tensor leaks');
  tf.dispose([x, special, m, v, offset, scale, dy]);
});

test('the compiled transpose moves every element where the stock Transpose kernel does, in matmuls too', () => {
  const stockTranspose = <T>(f: () => T) => withStockWasmKernels(f, { kernels: ['Transpose'] });
  const read = (f: () => tf.Tensor) => tf.tidy(() => bits(f().dataSync() as Float32Array));
  const before = tf.memory().numTensors;
  // Rows and columns that are and are not multiples of 4, a batch, a single row or column; and
  // permutations other than the last two axes' swap, which stay with the stock kernel.
  const cases: Array<[number[], number[]]> = [
    [[128, 784], [1, 0]], [[7, 9], [1, 0]], [[3, 5, 6], [0, 2, 1]], [[1, 13], [1, 0]], [[13, 1], [1, 0]],
    [[2, 4, 4], [0, 2, 1]], [[3, 5, 6], [1, 0, 2]], [[2, 3, 4, 5], [0, 1, 3, 2]], [[2, 3, 4, 5], [3, 2, 1, 0]],
  ];
  for (const [shape, perm] of cases) {
    const x = tf.tensor(values(tf.util.sizeFromShape(shape), 23), shape);
    const ours = read(() => tf.transpose(x, perm));
    assert.deepEqual(ours, stockTranspose(() => read(() => tf.transpose(x, perm))), `shape ${shape.join('×')}, perm ${perm.join(',')}`);
    x.dispose();
  }
  // Matmuls with transposed operands transpose them first: the same products either way.
  const a = tf.tensor2d(values(64 * 130, 24), [64, 130]);
  const b = tf.tensor2d(values(130 * 33, 25), [33, 130]);
  const c = tf.tensor2d(values(130 * 64, 26), [130, 64]);
  const products: Array<[string, () => tf.Tensor]> = [
    ['a·bᵀ', () => tf.matMul(a, b, false, true)],
    ['cᵀ·bᵀ', () => tf.matMul(c, b, true, true)],
    ['aᵀ·a', () => tf.matMul(a, a, true, false)],
  ];
  for (const [name, f] of products) assert.deepEqual(read(f), stockTranspose(() => read(f)), name);
  tf.dispose([a, b, c]);
  assert.equal(tf.memory().numTensors, before, 'no tensor leaks');
});

test('the compiled gemm gives XNNPACK\'s exact bits: every transpose, bias, ReLU, tail and special value', () => {
  const special = [NaN, Infinity, -Infinity, -0, 0, 1e-45, 3.4e38, -3.4e38, 1, -1, 0.5, -2];
  const isNaN32 = (p: number) => (p & 0x7fffffff) > 0x7f800000;
  // NaN's payload and sign are not specified (wasm may return any NaN); that it is NaN is.
  const read = (t: tf.Tensor) => bits(Float32Array.from(t.dataSync())).map((p) => (isNaN32(p) ? 0x7fc00000 : p));
  const before = tf.memory().numTensors;
  // Rows not a multiple of 4, columns in panels of 8, then of 4, then single; N = 1 (a logit layer).
  // 'zeros': every product is −0 (−0 · 1), so each sum's first term decides the sign of the result.
  for (const [m, k, n] of [[9, 6, 11], [64, 128, 784], [5, 3, 1], [4, 8, 8], [7, 13, 12], [3, 2, 5], [5, 3, 13]] as const) {
    for (const kind of ['special', 'random', 'zeros'] as const) {
      const make = (length: number, seed: number) => (kind === 'special'
        ? Float32Array.from({ length }, (_, i) => special[(i * 7 + seed) % special.length]!)
        : kind === 'zeros' ? new Float32Array(length).fill(seed === 1 ? -0 : seed === 5 ? -0 : 1) : values(length, seed));
      const [aData, bData, biasData] = [make(m * k, 1), make(k * n, 3), make(n, 5)];
      for (const activation of ['linear', 'relu'] as const) {
        for (const withBias of [false, true]) {
          for (const [transposeA, transposeB] of [[false, false], [true, false], [false, true], [true, true]] as const) {
            // New tensors every call: a right operand used REUSED times goes to XNNPACK.
            const f = () => {
              const a = tf.tensor2d(aData, [m, k]);
              const b = tf.tensor2d(bData, [k, n]);
              return tf.fused.matMul({
                a: (transposeA ? tf.transpose(a) : a) as tf.Tensor2D, b: (transposeB ? tf.transpose(b) : b) as tf.Tensor2D,
                transposeA, transposeB, bias: withBias ? tf.tensor1d(biasData) : undefined, activation,
              });
            };
            const ours = tf.tidy(() => read(f()));
            const xnnpack = withXnnpackMatMul(() => tf.tidy(() => read(f())));
            assert.deepEqual(ours, xnnpack, `${m}×${k}·${k}×${n}, ${kind} values, ${activation}, bias ${withBias}, transposes ${transposeA} ${transposeB}`);
          }
        }
      }
    }
  }
  // Rank 3 with a batch of 1, as tf.matMul passes every product.
  const a3 = tf.tensor3d(values(1 * 10 * 7, 30), [1, 10, 7]);
  const b3 = tf.tensor3d(values(7 * 9, 31), [1, 7, 9]);
  const bias2 = tf.tensor1d(values(9, 32));
  const f3 = () => [tf.matMul(a3, b3), tf.fused.matMul({ a: a3, b: b3, bias: bias2, activation: 'relu' })];
  assert.deepEqual(tf.tidy(() => f3().map(read)), withXnnpackMatMul(() => tf.tidy(() => f3().map(read))), 'rank 3');
  tf.dispose([a3, b3, bias2]);
  assert.equal(tf.memory().numTensors, before, 'no tensor leaks');
});

test('an MLP GAN trains to the same bits with the compiled gemm as on XNNPACK alone', () => {
  const train = () => {
    const g = buildGenerator('mlp', 100, 5);
    const d = buildDiscriminator('mlp', 5);
    const [optG, optD] = [makeOptimizer(2e-4), makeOptimizer(2e-4)];
    const real = tf.tensor4d(values(16 * 784, 11), [16, 28, 28, 1]);
    const z = tf.tensor2d(values(16 * 100, 12), [16, 100]);
    const losses: number[] = [];
    for (let step = 0; step < 3; step++) {
      losses.push(trainDiscriminatorOneStep(g, d, optD, real, z).lossD);
      losses.push(trainGeneratorOneStep(g, d, optG, z, { quality: undefined as never, lambda: 0, alpha: 0.5, beta: 0.5 }, { measureQuality: false }).lossG);
    }
    const weights = [...g.weights, ...d.weights].map((w) => bits(Float32Array.from(w.read().dataSync())));
    tf.dispose([real, z]);
    for (const x of [g, d, optG, optD]) x.dispose();
    return { losses, weights };
  };
  const before = tf.memory().numTensors;
  const ours = train();
  const xnnpack = withXnnpackMatMul(train);
  assert.deepEqual(ours.losses, xnnpack.losses, 'losses');
  assert.deepEqual(ours.weights, xnnpack.weights, 'weights after 3 steps');
  assert.equal(tf.memory().numTensors, before, 'no tensor leaks');
});

test('MaxPool\'s gradient over tiling windows gives the stock kernel\'s exact bits: ties, NaN, ±0, infinities, negative windows', () => {
  const before = tf.memory().numTensors;
  // Values from a small set, so that windows hold ties; NaN, ±∞ and ±0 in both x and dy; windows
  // of negatives only; and the smallest normal float and a subnormal, either side of the stock
  // kernel's starting point.
  const palette = [0, -0, 1, -1, 2, 2, NaN, Infinity, -Infinity, 0.5, -2, -3, 1.1754943508222875e-38, 1e-45];
  const pick = (length: number, seed: number) => Float32Array.from({ length }, (_, i) => palette[(i * 7 + seed * 3 + ((i >> 3) % 5)) % palette.length]!);
  // LeNet's two pools; channels not a multiple of 4; 3×3 windows; a size the windows do not cover
  // (7 → 3: the last row and column get no window); and a case the stock kernel keeps (stride 1).
  // Last, all values negative: no window has a maximum by the stock kernel's rule.
  const cases: Array<{ x: [number, number, number, number]; size: number; stride: number; negative?: boolean }> = [
    { x: [2, 28, 28, 16], size: 2, stride: 2 },
    { x: [2, 14, 14, 32], size: 2, stride: 2 },
    { x: [3, 6, 6, 6], size: 3, stride: 3 },
    { x: [2, 7, 7, 5], size: 2, stride: 2 },
    { x: [2, 5, 5, 4], size: 2, stride: 1 },
    { x: [2, 4, 4, 5], size: 2, stride: 2, negative: true },
  ];
  for (const [i, c] of cases.entries()) {
    const data = i % 2 ? pick(tf.util.sizeFromShape(c.x), i) : values(tf.util.sizeFromShape(c.x), i);
    const x = tf.tensor4d(c.negative ? data.map((v) => -Math.abs(v) - 0.5) : data, c.x);
    const f = () => tf.tidy(() => {
      const y = tf.maxPool(x, c.size, c.stride, 'valid');
      // dy nonzero everywhere in the negative case, so that where the stock kernel sends it shows.
      const dy = tf.tensor(c.negative ? values(y.size, 40 + i).map((v) => v + 2) : i % 2 ? values(y.size, 40 + i) : pick(y.size, 40 + i), y.shape);
      return tf.grad((t: tf.Tensor) => tf.maxPool(t as tf.Tensor4D, c.size, c.stride, 'valid'))(x, dy);
    });
    const [ours, theirs] = againstStock(f);
    assert.deepEqual(ours, theirs, `x ${c.x.join('×')}, ${c.size}×${c.size} stride ${c.stride}`);
    x.dispose();
  }
  assert.equal(tf.memory().numTensors, before, 'no tensor leaks');
});

/** Float32 values from their bit patterns. */
const fromBits = (patterns: number[]) => new Float32Array(Uint32Array.from(patterns).buffer);

test('the compiled tanh gives the stock kernel\'s exact bits in every range, and its gradient too', () => {
  // Every 4099th bit pattern of each sign (all exponents, subnormals, ±∞ and NaN), plus each side
  // of every boundary tanh and its expm1 branch on: |x| = log(5/3)/2, log(3)/2, 10, 2^-126, and
  // 2|x| = 2^-25, 0.5·ln2, 1.5·ln2.
  const patterns: number[] = [];
  for (let p = 0; p <= 0x7fffffff; p += 4099) patterns.push(p, (p | 0x80000000) >>> 0);
  for (const b of [0x3e82c578, 0x3f0c9f54, 0x41200000, 0x00800000, 0x32800000, 0x3e317218, 0x3f051592, 0x7f800000]) {
    for (let d = -2; d <= 2; d++) patterns.push(b + d, ((b + d) | 0x80000000) >>> 0);
  }
  const isNaN32 = (p: number) => (p & 0x7fffffff) > 0x7f800000;
  // NaN's payload and sign are not specified (wasm may return any NaN); that it is NaN is.
  const canonical = (rows: number[][]) => rows.map((r) => r.map((p) => (isNaN32(p) ? 0x7fc00000 : p)));
  const before = tf.memory().numTensors;
  // Lengths 4k + 1, 4k + 2 and 4k + 3 reach the kernel's tail.
  for (const length of [patterns.length, 5, 6, 7, 1]) {
    const x = tf.tensor1d(fromBits(patterns.slice(0, length)));
    const [ours, theirs] = againstStock(() => tf.tanh(x));
    assert.deepEqual(canonical(ours), canonical(theirs), `tanh of ${length} values`);
    x.dispose();
  }
  const x = tf.tensor2d(values(64 * 7 + 3, 21).map((v) => v * 6), [1, 64 * 7 + 3]);
  const dy = tf.tensor2d(values(x.size, 22), x.shape);
  // Through a chain, so dy is not the caller's tensor: tanh(tanh(x)·2).
  const [ours, theirs] = againstStock(() => tf.tidy(() => [
    tf.grad((a: tf.Tensor) => tf.tanh(a))(x, dy),
    tf.grad((a: tf.Tensor) => tf.tanh(tf.tanh(a).mul(2)))(x, dy),
  ]));
  assert.deepEqual(ours, theirs, 'tanh\'s gradient');
  tf.dispose([x, dy]);
  assert.equal(tf.memory().numTensors, before, 'no tensor leaks');
});

test('Adam with fused updates trains to the same bits as TF.js\'s AdamOptimizer, and keeps its weights\' names', async () => {
  const train = async (make: () => tf.AdamOptimizer) => {
    const g = buildGenerator('dcgan', 100, 5);
    const d = buildDiscriminator('dcgan', 5);
    const [optG, optD] = [make(), make()];
    const rng = mulberry32(9);
    const z = new Float32Array(8 * 100);
    const real = tf.tensor4d(values(8 * 784, 11), [8, 28, 28, 1]);
    for (let step = 0; step < 3; step++) {
      fillGaussian(z, rng);
      const zt = tf.tensor2d(z, [8, 100]);
      trainDiscriminatorOneStep(g, d, optD, real, zt);
      trainGeneratorOneStep(g, d, optG, zt, { quality: undefined as never, lambda: 0, alpha: 0.5, beta: 0.5 }, { measureQuality: false });
      zt.dispose();
    }
    const weights = [...g.weights, ...d.weights].map((w) => bits(Float32Array.from(w.read().dataSync())));
    const saved = await optG.getWeights();
    // Layer variables built twice in one process get a suffix the second time (kernel_1): not the optimizer's doing.
    const state = { names: saved.map((w) => w.name.replace(/_\d+(?=\/[mv]$)/, '')), iterations: optG.iterations, moments: saved.slice(1).map((w) => bits(Float32Array.from(w.tensor.dataSync()))) };
    tf.dispose([real, saved[0]!.tensor]);
    g.dispose();
    d.dispose();
    optG.dispose();
    optD.dispose();
    return { weights, state };
  };
  const before = tf.memory().numTensors;
  const theirs = await train(() => tf.train.adam(2e-4, 0.5, 0.999) as tf.AdamOptimizer);
  const ours = await train(() => makeOptimizer(2e-4));
  const made = makeOptimizer(1e-3);
  assert.ok(made instanceof QgateAdamOptimizer, 'the trainer\'s optimizer is the fused one');
  made.dispose();
  assert.deepEqual(ours.weights, theirs.weights, 'G and D weights after 3 steps');
  assert.deepEqual(ours.state, theirs.state, 'the optimizer\'s saved weights: names, iteration count, moments');
  assert.equal(tf.memory().numTensors, before, 'no tensor leaks');
});
