import { afterEach, test } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '../src/backend/index.ts';
import { withStockFusedOps } from '../src/backend/fused-gradients.ts';
import { sigmoidCrossEntropy } from '../src/backend/fused-loss.ts';
import {
  ARCHITECTURES, buildDiscriminator, buildGenerator, makeOptimizer, trainDiscriminatorOneStep, trainGeneratorOneStep,
} from '../src/train/gan.ts';

await initBackend('wasm');
// Some tests switch to the cpu backend; every test starts from wasm whatever the last one did.
afterEach(async () => {
  await tf.setBackend('wasm');
});

/** The values of every tensor `fn` returns, with nothing left allocated. */
function values(fn: () => tf.Tensor | tf.Tensor[]): Float32Array[] {
  const out = fn();
  const list = Array.isArray(out) ? out : [out];
  const data = list.map((t) => t.dataSync() as Float32Array);
  tf.dispose(list);
  return data;
}

/** Kernel names run by `fn`, counted. */
async function kernelCounts(fn: () => tf.TensorContainer): Promise<Map<string, number>> {
  const p = await tf.profile(() => fn());
  tf.dispose(p.result as tf.TensorContainer);
  const counts = new Map<string, number>();
  for (const k of p.kernels) counts.set(k.name, (counts.get(k.name) ?? 0) + 1);
  return counts;
}

const conv = (x: tf.Tensor4D, filter: tf.Tensor4D, bias?: tf.Tensor1D) =>
  tf.fused.conv2d({ x, filter, bias, strides: 2, pad: 'same' }).square().sum();

for (const backend of ['wasm', 'cpu']) {
  test(`a fused conv2d gradient computes only the derivatives asked for, with the stock values (${backend})`, async () => {
    await tf.setBackend(backend);
    const x = tf.randomNormal([4, 8, 8, 3], 0, 1, 'float32', 1) as tf.Tensor4D;
    const filter = tf.randomNormal([4, 4, 3, 5], 0, 1, 'float32', 2) as tf.Tensor4D;
    const bias = tf.randomNormal([5], 0, 1, 'float32', 3) as tf.Tensor1D;
    const before = tf.memory().numTensors;

    const gradX = () => tf.grad((xx: tf.Tensor) => conv(xx as tf.Tensor4D, filter, bias))(x);
    const ours = await kernelCounts(gradX);
    const stock = await kernelCounts(() => withStockFusedOps(gradX));
    assert.equal(ours.get('Conv2DBackpropFilter') ?? 0, 0, 'no filter gradient when only the input gradient is asked for');
    assert.equal(stock.get('Conv2DBackpropFilter'), 1, 'TF.js computes the filter gradient anyway');
    assert.deepEqual(values(gradX), values(() => withStockFusedOps(gradX)));

    const gradWeights = () => tf.grads((f: tf.Tensor, b: tf.Tensor) => conv(x, f as tf.Tensor4D, b as tf.Tensor1D))([filter, bias]);
    const oursW = await kernelCounts(gradWeights);
    assert.equal(oursW.get('Conv2DBackpropInput') ?? 0, 0, 'no input gradient when only the weights are asked for');
    assert.equal((await kernelCounts(() => withStockFusedOps(gradWeights))).get('Conv2DBackpropInput'), 1);
    assert.deepEqual(values(gradWeights), values(() => withStockFusedOps(gradWeights)));

    const noBias = () => tf.grads((xx: tf.Tensor, f: tf.Tensor) => conv(xx as tf.Tensor4D, f as tf.Tensor4D))([x, filter]);
    assert.deepEqual(values(noBias), values(() => withStockFusedOps(noBias)));
    assert.equal(tf.memory().numTensors, before, 'gradients leave no tensors behind');
    tf.dispose([x, filter, bias]);
  });
}

test('a fused matMul gradient computes only the derivatives asked for, for every transpose', async () => {
  const before = tf.memory().numTensors;
  for (const [transposeA, transposeB] of [[false, false], [false, true], [true, false], [true, true]] as const) {
    const a = tf.randomNormal(transposeA ? [7, 6] : [6, 7], 0, 1, 'float32', 4);
    const b = tf.randomNormal(transposeB ? [5, 7] : [7, 5], 0, 1, 'float32', 5);
    const bias = tf.randomNormal([5], 0, 1, 'float32', 6);
    const f = (aa: tf.Tensor, bb: tf.Tensor, cc: tf.Tensor) =>
      tf.fused.matMul({ a: aa as tf.Tensor2D, b: bb as tf.Tensor2D, bias: cc, transposeA, transposeB }).square().sum();
    const all = () => tf.grads(f)([a, b, bias]);
    assert.deepEqual(values(all), values(() => withStockFusedOps(all)), `transposeA ${transposeA}, transposeB ${transposeB}`);
    // The forward pass is the _FusedMatMul kernel; the derivatives are BatchMatMul.
    const onlyA = () => tf.grad((aa: tf.Tensor) => f(aa, b, bias))(a);
    assert.equal((await kernelCounts(onlyA)).get('BatchMatMul'), 1, 'dA only');
    assert.equal((await kernelCounts(() => withStockFusedOps(onlyA))).get('BatchMatMul'), 2, 'TF.js computes dB too');
    assert.deepEqual(values(onlyA), values(() => withStockFusedOps(onlyA)));
    tf.dispose([a, b, bias]);
  }
  assert.equal(tf.memory().numTensors, before);
});

test('outside a tape and with a non-linear activation, the fused ops are TF.js\'s own', async () => {
  const x = tf.randomNormal([2, 6, 6, 2], 0, 1, 'float32', 7) as tf.Tensor4D;
  const filter = tf.randomNormal([3, 3, 2, 4], 0, 1, 'float32', 8) as tf.Tensor4D;
  const relu = () => tf.grad((xx: tf.Tensor) => tf.fused.conv2d({ x: xx as tf.Tensor4D, filter, strides: 1, pad: 'same', activation: 'relu' }).sum())(x);
  assert.deepEqual(values(relu), values(() => withStockFusedOps(relu)));
  const counts = await kernelCounts(() => tf.fused.conv2d({ x, filter, strides: 1, pad: 'same', activation: 'relu' }));
  assert.equal(counts.get('FusedConv2D'), 1, 'inference keeps the fused kernel with its activation');
  tf.dispose([x, filter]);
});

/** Three D and G steps from fixed seeds; returns every weight afterwards. Synchronous, so withStockFusedOps covers all of it. */
function trainThreeSteps(arch: (typeof ARCHITECTURES)[number], batch: number): Float32Array[] {
  const g = buildGenerator(arch, 100, 11);
  const d = buildDiscriminator(arch, 12);
  const [optG, optD] = [makeOptimizer(2e-4), makeOptimizer(2e-4)];
  const real = tf.randomUniform([batch, 28, 28, 1], -1, 1, 'float32', 13) as tf.Tensor4D;
  for (let i = 0; i < 3; i++) {
    const z = tf.randomNormal([batch, 100], 0, 1, 'float32', 20 + i) as tf.Tensor2D;
    trainDiscriminatorOneStep(g, d, optD, real, z);
    trainGeneratorOneStep(g, d, optG, z, { quality: undefined as never, lambda: 0, alpha: 0.5, beta: 0.5 }, { measureQuality: false });
    z.dispose();
  }
  const weights = [...g.getWeights(), ...d.getWeights()].map((w) => w.dataSync() as Float32Array);
  for (const x of [g, d, optG, optD, real]) x.dispose();
  return weights;
}

// On wasm (the default, with qgate's kernels) and on the cpu backend: the gradients are registered
// for every backend. The cpu backend's conv filter gradient takes about a second even at batch 4,
// so there only the MLP trains; the conv gradient's test below runs on both.
for (const backend of ['wasm', 'cpu']) {
  for (const arch of backend === 'cpu' ? (['mlp'] as const) : ARCHITECTURES) {
    test(`${arch} on ${backend}: training steps give the same weights, bit for bit, as with TF.js's fused-op gradients`, async () => {
      await tf.setBackend(backend);
      const before = tf.memory().numTensors;
      const ours = trainThreeSteps(arch, 16);
      const stock = withStockFusedOps(() => trainThreeSteps(arch, 16));
      assert.equal(ours.length, stock.length);
      ours.forEach((w, i) => assert.deepEqual(w, stock[i], `weight ${i}`));
      assert.equal(tf.memory().numTensors, before, 'no tensors left behind');
    });
  }
}

test('the fused sigmoid cross-entropy gives TF.js\'s loss and gradient bit for bit, with one kernel-free tape node', async () => {
  const bits = (a: Float32Array) => Array.from(new Uint32Array(Float32Array.from(a).buffer)).map((p) => ((p & 0x7fffffff) > 0x7f800000 ? 0x7fc00000 : p));
  const special = [NaN, Infinity, -Infinity, -0, 0, 1e-45, -1e-45, 3.4e38, -3.4e38, 88.8, -88.8, 103.9, -104, 1e-8, -1e-8, 17, -17];
  const before = tf.memory().numTensors;
  const inputs: Array<[string, tf.Tensor]> = [
    ['64 logits N(0, 3²)', tf.tidy(() => tf.mul(tf.randomNormal([64, 1], 0, 1, 'float32', 5), 3))],
    ['special values', tf.tensor2d(special, [special.length, 1])],
    ['a [5] vector', tf.tensor1d([0.5, -2, 3, -0.25, 8])],
  ];
  for (const [name, x] of inputs) {
    for (const label of [1, 0, 0.3]) {
      // dy = 2.5 through a scale after the loss, and the D loss's sum of two losses of two logits.
      const ours = () => {
        const { value, grads } = tf.variableGrads(() => sigmoidCrossEntropy(v, label).mul(2.5).add(sigmoidCrossEntropy(w.mul(-1), 1 - label)) as tf.Scalar, [v, w]);
        return [value, grads[v.name]!, grads[w.name]!];
      };
      const theirs = () => {
        const { value, grads } = tf.variableGrads(() => tf.losses.sigmoidCrossEntropy(tf.fill(v.shape, label), v).mul(2.5)
          .add(tf.losses.sigmoidCrossEntropy(tf.fill(v.shape, 1 - label), w.mul(-1))) as tf.Scalar, [v, w]);
        return [value, grads[v.name]!, grads[w.name]!];
      };
      const v = tf.variable(x);
      const reversed = tf.reverse(x);
      const w = tf.variable(reversed);
      reversed.dispose();
      assert.deepEqual(values(ours).map(bits), values(theirs).map(bits), `${name}, label ${label}`);
      v.dispose();
      w.dispose();
    }
    x.dispose();
  }
  // Exp and Log1p forward, inside the one recorded node ('forward', tf.customGrad's); nothing else.
  const initial = tf.randomNormal([64, 1], 0, 1, 'float32', 6);
  const x = tf.variable(initial);
  initial.dispose();
  const counts = await kernelCounts(() => {
    const { value, grads } = tf.variableGrads(() => sigmoidCrossEntropy(x, 1), [x]);
    return [value, grads[x.name]!];
  });
  assert.deepEqual([...counts.keys()].sort(), ['Exp', 'Log1p', 'forward'], 'only Exp and Log1p run as kernels');
  x.dispose();
  assert.equal(tf.memory().numTensors, before, 'no tensor leaks');
});

test('on the cpu backend the fused sigmoid cross-entropy is TF.js\'s own', async () => {
  await tf.setBackend('cpu');
  const x = tf.tensor2d([0.5, -2, 3, 0], [4, 1]);
  const ours = values(() => tf.grad((a: tf.Tensor) => sigmoidCrossEntropy(a, 1))(x));
  const theirs = values(() => tf.grad((a: tf.Tensor) => tf.losses.sigmoidCrossEntropy(tf.onesLike(a), a))(x));
  assert.deepEqual(ours, theirs);
  x.dispose();
});
