/**
 * `npm run bench:gan-step`: median wall time of one D step and one G step (batch 64, latent 100)
 * per architecture, with λ = 0 (as the trainer runs it between log lines: Q not measured) and
 * λ = 0.1 (Q back-propagated).
 * Each step ends with a read of its losses, so the times are of finished work.
 *
 * `-- --profile`: also a `tf.profile` of one λ = 0 step per architecture (Q not measured, as the
 * trainer runs it between log lines): time per kernel, and how much of it is matmul and convolution
 * arithmetic (XNNPACK) rather than everything around it.
 *
 * `-- --against NAME`: then an A/B in this process, rounds alternating between qgate's path and
 * TF.js's for one change: `fused`, TF.js's fused conv2d and matMul ops (every derivative computed;
 * fused-gradients.ts); `copies`, the stock wasm Identity and Cast (which copy) and TF.js's Sum and
 * Mean gradients (dy·ones); `tanh`, the stock Tanh kernel (scalar tanhf) and TF.js's Tanh gradient;
 * `transpose`, the stock Transpose kernel; `gemm`, XNNPACK for every matmul (no compiled gemm);
 * `loss`, TF.js's sigmoid cross-entropy instead of the fused one (fused-loss.ts); `leaky`, the
 * stock LeakyRelu kernel and TF.js's gradient for it.
 * Prints each round's median step.
 */
import * as tf from '@tensorflow/tfjs';
import { initBackend, wasmThreadsFor } from '../src/backend/index.ts';
import { loadConfig } from '../src/config.ts';
import { loadQuality } from '../src/quality/index.ts';
import { summarizeProfile } from './profile.ts';
import { withStockFusedOps } from '../src/backend/fused-gradients.ts';
import { withStockLoss } from '../src/backend/fused-loss.ts';
import { withStockWasmKernels, withXnnpackMatMul } from '../src/backend/wasm-kernels.ts';
import { ARCHITECTURES, buildDiscriminator, buildGenerator, makeOptimizer, trainDiscriminatorOneStep, trainGeneratorOneStep } from '../src/train/gan.ts';

const config = loadConfig(process.env);
const backend = await initBackend(config.backend, undefined, { wasmThreads: wasmThreadsFor(config.wasmThreads, 'batch') });
const quality = await loadQuality(config);
const STEPS = 12;
const WARMUP = 2;
const profiles: string[] = [];
const median = (a: number[]) => {
  const s = a.slice(WARMUP).sort((x, y) => x - y);
  return s[s.length >> 1]!;
};
console.log(`backend ${backend.name}, batch 64, median of ${STEPS - WARMUP} steps after ${WARMUP} warm-up`);
console.log('| arch | λ | D step (ms) | G step (ms) | total (ms) |\n|---|---|---|---|---|');
for (const arch of ARCHITECTURES) {
  for (const lambda of [0, 0.1]) {
    const g = buildGenerator(arch, 100, 1);
    const d = buildDiscriminator(arch, 1);
    const optG = makeOptimizer(1e-3);
    const optD = makeOptimizer(5e-4);
    const real = tf.randomUniform([64, 28, 28, 1], -1, 1, 'float32', 1) as tf.Tensor4D;
    const z = tf.randomNormal([64, 100], 0, 1, 'float32', 2) as tf.Tensor2D;
    const penalty = { quality, lambda, alpha: 0.5, beta: 0.5 };
    const tD: number[] = [];
    const tG: number[] = [];
    for (let i = 0; i < STEPS; i++) {
      let t0 = performance.now();
      trainDiscriminatorOneStep(g, d, optD, real, z);
      tD.push(performance.now() - t0);
      t0 = performance.now();
      trainGeneratorOneStep(g, d, optG, z, penalty, { measureQuality: false });
      tG.push(performance.now() - t0);
    }
    if (lambda === 0 && process.argv.includes('--profile')) {
      profiles.push(summarizeProfile(`${arch}, one λ = 0 step profiled`, await tf.profile(() => {
        trainDiscriminatorOneStep(g, d, optD, real, z);
        trainGeneratorOneStep(g, d, optG, z, penalty, { measureQuality: false });
      })));
    }
    console.log(`| ${arch} | ${lambda} | ${median(tD).toFixed(0)} | ${median(tG).toFixed(0)} | ${(median(tD) + median(tG)).toFixed(0)} |`);
    for (const x of [g, d, optG, optD, real, z]) x.dispose();
  }
}
for (const p of profiles) console.log(p);

const AGAINST: Record<string, { what: string; run: <T>(fn: () => T) => T }> = {
  fused: { what: 'fused ops', run: withStockFusedOps },
  copies: { what: 'copying Identity/Cast and Sum/Mean gradients', run: (fn) => withStockWasmKernels(fn, { kernels: ['Identity', 'Cast'], gradients: ['Sum', 'Mean'] }) },
  tanh: { what: 'Tanh kernel and gradient', run: (fn) => withStockWasmKernels(fn, { kernels: ['Tanh'], gradients: ['Tanh'] }) },
  transpose: { what: 'Transpose kernel (under the transposed matmuls)', run: (fn) => withStockWasmKernels(fn, { kernels: ['Transpose'] }) },
  gemm: { what: 'matmul on XNNPACK for every product', run: withXnnpackMatMul },
  loss: { what: 'sigmoid cross-entropy (tf.losses, unfused)', run: withStockLoss },
  leaky: { what: 'LeakyReLU kernel and gradient (scalar loops)', run: (fn) => withStockWasmKernels(fn, { kernels: ['LeakyRelu'], gradients: ['LeakyRelu'] }) },
};
const againstAt = process.argv.indexOf('--against');
if (againstAt >= 0) {
  const name = process.argv[againstAt + 1] ?? '';
  const against = AGAINST[name];
  if (!against) throw new Error(`--against takes one of: ${Object.keys(AGAINST).join(', ')}`);
  const theirs = against.run;
  const ROUNDS = 8;
  console.log(`\nA/B against TF.js's ${against.what}: λ = 0 step (D + G), median per round, rounds alternating which side goes first`);
  console.log('| arch | qgate (ms) | TF.js (ms) | ratio of medians |\n|---|---|---|---|');
  for (const arch of ARCHITECTURES) {
    const g = buildGenerator(arch, 100, 1);
    const d = buildDiscriminator(arch, 1);
    const [optG, optD] = [makeOptimizer(1e-3), makeOptimizer(5e-4)];
    const real = tf.randomUniform([64, 28, 28, 1], -1, 1, 'float32', 1) as tf.Tensor4D;
    const z = tf.randomNormal([64, 100], 0, 1, 'float32', 2) as tf.Tensor2D;
    const penalty = { quality, lambda: 0, alpha: 0.5, beta: 0.5 };
    const step = () => {
      trainDiscriminatorOneStep(g, d, optD, real, z);
      trainGeneratorOneStep(g, d, optG, z, penalty, { measureQuality: false });
    };
    const steps = arch === 'mlp' ? 20 : 8;
    const roundMedian = (run: () => void) => {
      const t: number[] = [];
      for (let i = 0; i < steps; i++) {
        const t0 = performance.now();
        run();
        t.push(performance.now() - t0);
      }
      return t.sort((x, y) => x - y)[t.length >> 1]!;
    };
    for (let i = 0; i < WARMUP; i++) { step(); theirs(step); }
    const ours: number[] = [];
    const stock: number[] = [];
    for (let r = 0; r < ROUNDS; r++) {
      const pair = [() => ours.push(roundMedian(step)), () => stock.push(roundMedian(() => theirs(step)))];
      for (const f of r % 2 ? pair.reverse() : pair) f();
    }
    const med = (a: number[]) => [...a].sort((x, y) => x - y)[a.length >> 1]!;
    const list = (a: number[]) => a.map((x) => x.toFixed(1)).join(', ');
    console.log(`| ${arch} | ${list(ours)} | ${list(stock)} | ${(med(ours) / med(stock)).toFixed(2)} |`);
    for (const x of [g, d, optG, optD, real, z]) x.dispose();
  }
}
quality.dispose();
