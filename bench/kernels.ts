/**
 * `npm run bench:kernels`: qgate's wasm kernels against TF.js's stock wasm kernels, on the shapes
 * GAN and LeNet training hit. Prints a markdown table; medians of repeated calls in one process.
 *
 * `-- --exhaustive-tanh`: instead, runs qgate's Tanh and the stock one on every float32 (2^32
 * values, about two minutes) and prints how many results differ in any bit (NaN counts as equal to
 * any NaN). The test suite checks a sample of every range; this checks them all.
 */
import { writeFile } from 'node:fs/promises';
import os from 'node:os';
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '../src/backend/index.ts';
import { fusedNearestAndRealism, withStockWasmKernels } from '../src/backend/wasm-kernels.ts';
import { QgateAdamOptimizer } from '../src/backend/adam.ts';

await initBackend('wasm');
const REPS = 15;

if (process.argv.includes('--exhaustive-tanh')) {
  const CHUNK = 1 << 22;
  const patterns = new Uint32Array(CHUNK);
  const isNaN32 = (p: number) => (p & 0x7fffffff) > 0x7f800000;
  let differing = 0;
  const t0 = performance.now();
  for (let base = 0; base < 2 ** 32; base += CHUNK) {
    for (let i = 0; i < CHUNK; i++) patterns[i] = base + i;
    const x = tf.tensor1d(new Float32Array(patterns.buffer));
    const read = (t: tf.Tensor) => {
      const out = new Uint32Array(Float32Array.from(t.dataSync() as Float32Array).buffer);
      t.dispose();
      return out;
    };
    const ours = read(tf.tanh(x));
    const theirs = withStockWasmKernels(() => read(tf.tanh(x)));
    x.dispose();
    for (let i = 0; i < CHUNK; i++) {
      if (ours[i] === theirs[i] || (isNaN32(ours[i]!) && isNaN32(theirs[i]!))) continue;
      if (differing++ < 10) console.log(`differs: x = 0x${patterns[i]!.toString(16)}, stock 0x${theirs[i]!.toString(16)}, qgate 0x${ours[i]!.toString(16)}`);
    }
  }
  console.log(`tanh on all 2^32 float32 values: ${differing} differ from the stock kernel (${((performance.now() - t0) / 1000).toFixed(0)} s)`);
  process.exit(differing === 0 ? 0 : 1);
}

function medianMs(fn: () => tf.Tensor): number {
  for (let i = 0; i < 3; i++) fn().dispose();
  const times: number[] = [];
  for (let i = 0; i < REPS; i++) {
    const t0 = performance.now();
    const r = fn();
    r.dataSync();
    times.push(performance.now() - t0);
    r.dispose();
  }
  times.sort((a, b) => a - b);
  return times[Math.floor(REPS / 2)]!;
}

const r = (shape: number[]) => tf.randomNormal(shape, 0, 1, 'float32', 7);
const a = r([784, 64]);
const b = r([784, 128]);
const bt = r([128, 784]);
const a2 = r([64, 784]);
const x = r([64, 14, 14, 64]) as tf.Tensor4D;
const w = r([4, 4, 64, 128]) as tf.Tensor4D;
const dy = r([64, 7, 7, 128]) as tf.Tensor4D;
const x1 = r([128, 28, 28, 1]) as tf.Tensor4D;
const dy1 = r([128, 28, 28, 16]) as tf.Tensor4D;
const bnScale = r([1, 1, 1, 32]);
const act = r([64, 14, 14, 32]);
const dAct = r([64, 14, 14, 32]);
const d2 = r([64, 10000]);
// Q's products f·rᵀ for 64 features and 10,000 references, with ‖f‖², ‖r‖², radii and mask.
const qCross = tf.mul(r([64, 10000]), 0.1);
const qF = tf.add(tf.abs(r([64, 1])), 1) as tf.Tensor2D;
const qR = tf.add(tf.abs(r([10000])), 1) as tf.Tensor1D;
const qRadii = tf.abs(r([10000])) as tf.Tensor1D;
const qMask = tf.step(r([10000])) as tf.Tensor1D;
// G's pre-activations at its tanh output: N(0, 1.5²) covers every branch of tanhf.
const gPre = tf.mul(r([64, 784]), 1.5);
const gDy = r([64, 784]);
const bnOffset = r([32]);
// φ's first pool: 2×2 windows over LeNet's 64×28×28×16 conv output (after its ReLU).
const poolX = tf.relu(r([64, 28, 28, 16])) as tf.Tensor4D;
const poolDy = r([64, 14, 14, 16]);
const bnGamma = r([32]);
const bnVariance = tf.abs(r([32]));

/** Forward and backward of training-mode batch norm (statistics from the batch) as the DCGAN generator runs it; returns dL/dx. */
const batchNormGrad = () =>
  tf.tidy(() => {
    const [dx] = tf.grads((xx: tf.Tensor, gamma: tf.Tensor, beta: tf.Tensor) => {
      const { mean, variance } = tf.moments(xx, [0, 1, 2]);
      return tf.sum(tf.mul(tf.batchNorm(xx, mean, variance, beta, gamma, 1e-3), dAct));
    })([act, bnGamma, bnOffset]);
    return dx!;
  });

/** One Adam update of the MLP generator's variables (100×128, 128, 128×784, 784), fixed gradients. */
function adamStep(optimizer: tf.Optimizer): () => tf.Tensor {
  const shapes = [[100, 128], [128], [128, 784], [784]];
  const vars = shapes.map((s, i) => tf.variable(tf.randomNormal(s, 0, 0.05, 'float32', i)));
  const grads = shapes.map((s, i) => tf.randomNormal(s, 0, 1, 'float32', 10 + i));
  const named = Object.fromEntries(vars.map((v, i) => [v.name, grads[i]!]));
  return () => {
    optimizer.applyGradients(named);
    return vars[0]!.clone();
  };
}

/** Conv2DBackpropFilter is not exported as an op; run the kernel the way conv2d's gradient does. */
const filterGrad = (xx: tf.Tensor4D, dyy: tf.Tensor4D, filterShape: number[], strides: number) =>
  tf.engine().runKernel('Conv2DBackpropFilter', { x: xx, dy: dyy }, { strides: [strides, strides], pad: 'same', dataFormat: 'NHWC', filterShape }) as tf.Tensor;

/** `stockFn`: what the stock side runs instead, where qgate changed the op rather than a kernel (a gradient). */
const cases: Array<{ name: string; fn: () => tf.Tensor; stockFn?: () => tf.Tensor; stockMissing?: boolean }> = [
  { name: 'matMul 64×784ᵀ·784×128 (transposeA)', fn: () => tf.matMul(a, b, true, false) },
  { name: 'matMul 64×784·(128×784)ᵀ (transposeB)', fn: () => tf.matMul(a2, bt, false, true) },
  { name: 'matMul 64×784·784×128 (plain, for scale)', fn: () => tf.matMul(a2, b) },
  { name: 'conv2dBackpropInput 64×7×7×128 → 64×14×14×64, 4×4 stride 2 (= conv2dTranspose)', fn: () => tf.conv2dTranspose(dy, w, [64, 14, 14, 64], 2, 'same') },
  { name: 'conv2dBackpropFilter 64×14×14×64, 4×4×64×128 stride 2', fn: () => filterGrad(x, dy, [4, 4, 64, 128], 2), stockMissing: true },
  { name: 'conv2dBackpropFilter 128×28×28×1, 5×5×1×16 (LeNet conv1)', fn: () => filterGrad(x1, dy1, [5, 5, 1, 16], 1), stockMissing: true },
  { name: 'conv2d 64×14×14×64, 4×4×64×128 stride 2 (stock forward, for scale)', fn: () => tf.conv2d(x, w, 2, 'same') },
  { name: 'tile 1×1×1×32 → 64×14×14×32 (the DCGAN batch-norm gradient)', fn: () => tf.tile(bnScale, [64, 14, 14, 1]) },
  { name: 'leakyRelu 64×14×14×32, α = 0.2 (the DCGAN discriminator)', fn: () => tf.leakyRelu(act, 0.2) },
  {
    name: "leakyRelu forward and gradient 64×14×14×32 (stock: scalar loops, TF.js's where(x > 0, dy, dy·α); qgate: one compiled pass each)",
    fn: () => tf.tidy(() => tf.grad((v: tf.Tensor) => tf.leakyRelu(v, 0.2))(act, dAct)),
  },
  {
    name: "maxPool's gradient, 2×2 windows over 64×28×28×16 (φ's first pool; Q's gradient in a λ > 0 generator step)",
    fn: () => tf.tidy(() => tf.grad((v: tf.Tensor) => tf.maxPool(v as tf.Tensor4D, 2, 2, 'valid'))(poolX, poolDy)),
  },
  { name: "tanh 64×784, N(0, 1.5²) (the generators' output)", fn: () => tf.tanh(gPre) },
  { name: "tanh's gradient 64×784 (stock: Square, Sub, Multiply; qgate: one kernel)", fn: () => tf.tidy(() => tf.grad((v: tf.Tensor) => tf.tanh(v))(gPre, gDy)) },
  { name: 'sum over axes 0–2 of 64×14×14×32 (batch-norm statistics)', fn: () => tf.sum(act, [0, 1, 2]) },
  { name: 'mean over axes 0–2 of 64×14×14×32', fn: () => tf.mean(act, [0, 1, 2]) },
  { name: 'batchNorm 64×14×14×32, given mean and variance (FusedBatchNorm)', fn: () => tf.batchNorm(act, bnOffset, bnVariance, bnOffset, bnGamma, 1e-3) },
  { name: 'batch norm with batch statistics, forward and gradient, 64×14×14×32', fn: batchNormGrad },
  {
    name: "Adam update of the MLP generator's 4 variables (114,064 weights; stock: tf.AdamOptimizer, qgate: one kernel per variable)",
    fn: adamStep(new QgateAdamOptimizer(2e-4, 0.5, 0.999)),
    stockFn: adamStep(new tf.AdamOptimizer(2e-4, 0.5, 0.999)),
  },
  {
    name: "Q's 3rd-nearest reference and realism from the 64×10,000 products (stock: relu, add, sub, mul, topk of −d2, add, sqrt, div, mul, max; qgate: one compiled pass)",
    fn: () => {
      const { kth, realism } = fusedNearestAndRealism(qCross as tf.Tensor2D, qF, qR, qRadii, qMask, 3, 1e-12)!;
      kth.dispose();
      return realism;
    },
    stockFn: () => tf.tidy(() => {
      const sq = tf.relu(qF.add(qR).sub(qCross.mul(2)));
      tf.topk(sq.neg(), 3, true).indices.slice([0, 2], [-1, 1]).reshape([-1]);
      return qRadii.div(sq.add(1e-12).sqrt()).mul(qMask).max(1);
    }),
  },
  {
    name: "topk k = 3 of 64×10,000 (Q's k-th nearest reference)",
    fn: () => {
      const { values, indices } = tf.topk(d2, 3);
      indices.dispose();
      return values;
    },
  },
];

const lines = [
  '# wasm kernels',
  '',
  `Reproduce with \`npm run bench:kernels\`. Generated ${new Date().toISOString().slice(0, 10)} on ${os.cpus()[0]?.model ?? 'unknown CPU'} (${os.cpus().length} cores), Node ${process.version}.`,
  `TF.js ${tf.version.tfjs} wasm backend, SIMD ${String(tf.env().get('WASM_HAS_SIMD_SUPPORT'))}, multithreading ${String(tf.env().get('WASM_HAS_MULTITHREAD_SUPPORT'))}. Each figure is the median of ${REPS} calls in one process, stock and qgate's kernels alternating by case, so both see the same machine load.`,
  '',
  '| operation | stock wasm (ms) | qgate (ms) | speed-up |',
  '|---|---|---|---|',
];
for (const c of cases) {
  const ours = medianMs(c.fn);
  const theirs = c.stockMissing ? undefined : withStockWasmKernels(() => medianMs(c.stockFn ?? c.fn));
  lines.push(`| ${c.name} | ${theirs === undefined ? 'missing (throws)' : theirs.toFixed(2)} | ${ours.toFixed(2)} | ${theirs === undefined ? '—' : (theirs / ours).toFixed(1) + '×'} |`);
}
const report = lines.join('\n') + '\n';
console.log(report);
if (!process.argv.includes('--no-write')) await writeFile('docs/KERNELS.md', report);
