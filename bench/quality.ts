/**
 * `npm run bench:quality`: the evidence behind the quality score, written to docs/QUALITY.md.
 *
 *  (a) every NoiseLevel estimator on 1,000 MNIST test digits with unclipped Gaussian noise at
 *      σ ∈ {0, .02, .05, .1, .2, .3}: Spearman and MAE (and the same with a continuous σ);
 *  (b) Q of the shipped extractor + reference set by degradation: mean Q and pass rate at τ = 0.3.
 *
 * Options: --count N (digits, default 1000), --seed S (default 1), --no-write (print only).
 */
import { writeFile } from 'node:fs/promises';
import os from 'node:os';
import { parseArgs } from 'node:util';
import * as tf from '@tensorflow/tfjs';
import { initBackend, wasmThreadsFor } from '../src/backend/index.ts';
import { loadConfig } from '../src/config.ts';
import { loadMnist } from '../src/data/mnist.ts';
import { loadQuality, type ImageScore, type Quality } from '../src/quality/index.ts';
import { DEFAULT_NOISE_ESTIMATOR } from '../src/quality/noise.ts';
import { uniformNoiseImages } from '../src/quality/reference.ts';
import { fillGaussian, mulberry32 } from '../src/random.ts';
import { NOISE_BENCH_SIGMAS, runNoiseBenchmark, spearmanCeiling, type NoiseBenchmarkRow } from './noise.ts';

const { values: args } = parseArgs({
  options: { count: { type: 'string', default: '1000' }, seed: { type: 'string', default: '1' }, 'no-write': { type: 'boolean', default: false } },
});
const count = Number(args.count);
const seed = Number(args.seed);
const TAU = 0.3;
const PX = 28 * 28;

const config = loadConfig();
const backend = await initBackend(config.backend, undefined, { wasmThreads: wasmThreadsFor(config.wasmThreads, 'batch') });
const quality = await loadQuality(config);

async function scoreAll(q: Quality, images: Float32Array, n: number): Promise<ImageScore[]> {
  const out: ImageScore[] = [];
  for (let start = 0; start < n; start += 250) {
    const m = Math.min(250, n - start);
    const batch = tf.tensor4d(images.subarray(start * PX, (start + m) * PX), [m, 28, 28, 1]);
    out.push(...(await q.score(batch, TAU)));
    batch.dispose();
  }
  return out;
}

/** A 5×5 Gaussian blur (σ = 1 px), zero-padded like a black border. */
function blurred(images: Float32Array, n: number): Float32Array {
  return tf.tidy(() => {
    const g = [-2, -1, 0, 1, 2].map((x) => Math.exp(-(x * x) / 2));
    const s = g.reduce((a, b) => a + b, 0);
    const k = tf.outerProduct(tf.tensor1d(g.map((v) => v / s)), tf.tensor1d(g.map((v) => v / s))).reshape([5, 5, 1, 1]) as tf.Tensor4D;
    return tf.conv2d(tf.tensor4d(images.subarray(0, n * PX), [n, 28, 28, 1]), k, 1, 'same').dataSync() as Float32Array;
  });
}

function saltAndPepper(images: Float32Array, n: number, fraction: number, rng: () => number): Float32Array {
  const out = images.slice(0, n * PX);
  for (let i = 0; i < out.length; i++) {
    const r = rng();
    if (r < fraction / 2) out[i] = 0;
    else if (r < fraction) out[i] = 1;
  }
  return out;
}

const digits = loadMnist('test', { limit: count });
const n = digits.count;
const rng = mulberry32(seed + 1000);
const cases: Array<{ name: string; images: Float32Array; n: number; sigma?: number }> = [];
cases.push({ name: 'clean test digits', images: digits.images, n, sigma: 0 });
for (const sigma of NOISE_BENCH_SIGMAS.slice(1)) {
  const noise = fillGaussian(new Float32Array(n * PX), rng);
  cases.push({ name: `Gaussian noise σ=${sigma}`, images: digits.images.map((v, i) => v + sigma * noise[i]!), n, sigma });
}
cases.push({ name: 'Gaussian blur (σ=1 px)', images: blurred(digits.images, n), n });
cases.push({ name: 'salt-and-pepper (10% of pixels)', images: saltAndPepper(digits.images, n, 0.1, rng), n });
cases.push({ name: 'uniform-noise images', images: uniformNoiseImages(n, [28, 28, 1], seed + 77), n });
cases.push({ name: 'all-black image', images: new Float32Array(PX), n: 1 });
cases.push({ name: 'all-white image', images: new Float32Array(PX).fill(1), n: 1 });

const degradation: Array<{ name: string; n: number; sigma?: number; meanQ: number; passRate: number; noiseNorm: number; distanceNorm: number; realism: number }> = [];
for (const c of cases) {
  const scores = await scoreAll(quality, c.images, c.n);
  const mean = (f: (s: ImageScore) => number) => scores.reduce((a, s) => a + f(s), 0) / scores.length;
  degradation.push({
    name: c.name, n: c.n, ...(c.sigma === undefined ? {} : { sigma: c.sigma }),
    meanQ: mean((s) => s.q), passRate: mean((s) => (s.pass ? 1 : 0)),
    noiseNorm: mean((s) => s.noiseNorm), distanceNorm: mean((s) => s.distanceNorm), realism: mean((s) => s.realism),
  });
}

const started = performance.now();
const grid = await runNoiseBenchmark({ count, seed });
const continuous = await runNoiseBenchmark({ count, seed, sigmas: 'continuous' });
const benchSeconds = (performance.now() - started) / 1000;
const trueGrid = Float32Array.from({ length: n * NOISE_BENCH_SIGMAS.length }, (_, i) => NOISE_BENCH_SIGMAS[Math.floor(i / n)]!);

const fmt = (x: number, d = 4) => x.toFixed(d);
const pct = (x: number) => `${(100 * x).toFixed(1)}%`;
const noiseTable = (rows: NoiseBenchmarkRow[], bySigma: boolean) => [
  `| estimator | Spearman | MAE |${bySigma ? NOISE_BENCH_SIGMAS.map((s) => ` mean σ̂ @${s} |`).join('') : ''}`,
  `|---|---|---|${bySigma ? NOISE_BENCH_SIGMAS.map(() => '---|').join('') : ''}`,
  ...rows.map((r) => `| ${r.estimator}${r.estimator === DEFAULT_NOISE_ESTIMATOR ? ' (default)' : ''} | ${fmt(r.spearman)} | ${fmt(r.mae)} |${bySigma ? r.bySigma.map((b) => ` ${fmt(b.mean)} |`).join('') : ''}`),
].join('\n');

const clean = degradation[0]!;
const uniform = degradation.find((d) => d.name === 'uniform-noise images')!;
const bySigma = degradation.filter((d) => d.sigma !== undefined);
const increasing = bySigma.every((d, i) => i === 0 || d.meanQ > bySigma[i - 1]!.meanQ);
const def = grid.find((r) => r.estimator === DEFAULT_NOISE_ESTIMATOR)!;
const ref = quality.reference.manifest;

const report = `# Quality benchmark

Reproduce with \`npm run bench:quality\` (options: \`-- --count N --seed S\`). Generated ${new Date().toISOString().slice(0, 10)}.

- Machine: ${os.cpus()[0]?.model ?? 'unknown CPU'}, ${os.cpus().length} cores, ${os.platform()} ${os.release()}; Node ${process.version}; TF.js ${tf.version.tfjs}, backend \`${backend.name}\`.
- Extractor \`${quality.extractor.id}\` (test accuracy ${String(quality.extractor.manifest.testAccuracy ?? 'n/a')}), reference set \`${ref.id}\` (${ref.count} features, k = ${ref.k}).
- Q = 0.5·Norm(noise) + 0.5·Norm(distance), noise estimator \`${quality.options.noiseEstimator}\`, τ = ${TAU}.

## (a) NoiseLevel estimators

${n} MNIST test digits (the first ${n} of t10k), each with unclipped Gaussian noise at every σ in {${NOISE_BENCH_SIGMAS.join(', ')}} (${n * NOISE_BENCH_SIGMAS.length} images, seed ${seed}). Spearman is between true σ and the estimate (average ranks for ties); MAE is in σ units.

${noiseTable(grid, true)}

Targets for the default: Spearman ≥ 0.99 and MAE ≤ 0.010. The default reaches MAE ${fmt(def.mae)}${def.mae <= 0.01 ? ' (met)' : ' (NOT met)'} and Spearman ${fmt(def.spearman)}${def.spearman >= 0.99 ? ' (met)' : ' (not met)'}.
**The Spearman target cannot be met by any estimator under this protocol**: the true σ take only six values, 1,000 times each, so even an estimator that orders the six groups perfectly has ranks that vary inside a group while the true ranks are tied. The ceiling is ${fmt(spearmanCeiling(trueGrid))} for an estimator whose estimates are all distinct, and ${fmt(spearmanCeiling(trueGrid, true))} if every σ = 0 image reads exactly 0. The structure-aware default reads exactly 0 on every clean digit and separates the σ groups, so it sits at that ceiling.

The same with a continuous σ, each image with its own σ ~ U[0, 0.3] (no ties, so Spearman can reach 1):

${noiseTable(continuous, false)}

## (b) Q by degradation

| images | n | mean Q | pass rate at τ=${TAU} | mean Norm(noise) | mean Norm(distance) | mean realism |
|---|---|---|---|---|---|---|
${degradation.map((d) => `| ${d.name} | ${d.n} | ${fmt(d.meanQ, 3)} | ${pct(d.passRate)} | ${fmt(d.noiseNorm, 3)} | ${fmt(d.distanceNorm, 3)} | ${fmt(d.realism, 2)} |`).join('\n')}

Gaussian noise is added unclipped to the first ${n} test digits (seed ${seed + 1000}); uniform-noise images use seed ${seed + 77}, not the calibration seed.

Targets:
- ≥ 95% of clean test digits pass at τ = 0.3: ${pct(clean.passRate)} — ${clean.passRate >= 0.95 ? 'met' : 'NOT met'}.
- ≤ 1% of uniform-noise images pass: ${pct(uniform.passRate)} — ${uniform.passRate <= 0.01 ? 'met' : 'NOT met'}.
- Mean Q increases strictly with σ: ${bySigma.map((d) => fmt(d.meanQ, 3)).join(' < ')} — ${increasing ? 'met' : 'NOT met'}.

Known limits, visible above:
- Salt-and-pepper noise reads as almost no noise to \`structure\`: an isolated black or white pixel has a large structure energy, so the estimator treats it as image structure and excludes it. The distance term sees such images as less digit-like, but most still pass. \`immerkaer\` and \`laplacian\` do count impulses.
- A Gaussian blur barely changes Q: nothing in Q measures sharpness, and a blurred digit is still close to real digits in φ's space.
- All-black and all-white images fail only through the distance term (Q = 0.5): they have no noise at all.

Calibration stored with the reference set: noise (${quality.options.noiseEstimator}) lo ${fmt(quality.noiseBounds.lo)}, hi ${fmt(quality.noiseBounds.hi)}; distance lo ${fmt(quality.distanceBounds.lo)}, hi ${fmt(quality.distanceBounds.hi)}.
`;

console.log(report);
console.error(`noise benchmark took ${benchSeconds.toFixed(0)} s`);
if (!args['no-write']) await writeFile('docs/QUALITY.md', report);
quality.dispose();
