/**
 * NoiseLevel benchmark: how well each noise estimator recovers the σ of Gaussian noise added to
 * MNIST test digits.
 *
 * The first `count` digits of MNIST t10k each get UNCLIPPED i.i.d. Gaussian noise at every σ in
 * NOISE_BENCH_SIGMAS (count × 6 noisy images); every estimator reads them, and we report the
 * Spearman rank correlation between true σ and estimate (average ranks for ties, i.e. the Pearson
 * correlation of the ranks) and the mean absolute error in σ units.
 *
 * Note on Spearman: with 6 tied groups of equal size in the true σ, even an estimator that orders
 * the groups perfectly cannot reach 1, because the estimates inside a group are distinct while the
 * true σ are tied. The ceiling is sqrt(35/36) ≈ 0.986 (≈ 0.988 if all σ=0 images read exactly
 * 0, which makes that group tied too); `spearmanCeiling` computes it for the actual run.
 *
 *   npx tsx bench/noise.ts [count] [seed]      (defaults: 1000 digits, seed 1)
 */
import { pathToFileURL } from 'node:url';

import * as tf from '@tensorflow/tfjs';

import { loadMnist } from '../src/data/mnist.ts';
import { fillGaussian, mulberry32 } from '../src/random.ts';
import { NOISE_ESTIMATOR_NAMES, noiseEstimators, type NoiseEstimatorName } from '../src/quality/noise.ts';

export const NOISE_BENCH_SIGMAS = [0, 0.02, 0.05, 0.1, 0.2, 0.3] as const;

export interface NoiseBenchmarkRow {
  estimator: NoiseEstimatorName;
  spearman: number;
  mae: number;
  /** Mean estimate and MAE at each true σ. */
  bySigma: Array<{ sigma: number; mean: number; mae: number }>;
  /** Wall time per image on the current backend (rough: the machine may be shared). */
  msPerImage: number;
}

export interface NoiseBenchmarkOptions {
  /** Number of MNIST test digits (the first `count` of t10k). */
  count: number;
  /** Seed of the noise. */
  seed: number;
  /** Images per estimator call (default 500). */
  chunk?: number;
  /**
   * `grid` (default): every digit at every σ of NOISE_BENCH_SIGMAS, the protocol.
   * `continuous`: as many images, each with its own σ ~ U[0, 0.3]; without tied true σ, Spearman
   * can reach 1 and so measures ordering finely.
   */
  sigmas?: 'grid' | 'continuous';
}

/** Ranks 1..n, ties get the average of the ranks they span. */
export function averageRanks(values: ArrayLike<number>): Float64Array {
  const n = values.length;
  const order = Array.from({ length: n }, (_, i) => i).sort((a, b) => (values[a] as number) - (values[b] as number));
  const ranks = new Float64Array(n);
  let i = 0;
  while (i < n) {
    let j = i;
    while (j + 1 < n && values[order[j + 1] as number] === values[order[i] as number]) j++;
    const rank = (i + j) / 2 + 1;
    for (let k = i; k <= j; k++) ranks[order[k] as number] = rank;
    i = j + 1;
  }
  return ranks;
}

function pearson(x: ArrayLike<number>, y: ArrayLike<number>): number {
  const n = x.length;
  let mx = 0;
  let my = 0;
  for (let i = 0; i < n; i++) {
    mx += x[i] as number;
    my += y[i] as number;
  }
  mx /= n;
  my /= n;
  let sxy = 0;
  let sxx = 0;
  let syy = 0;
  for (let i = 0; i < n; i++) {
    const dx = (x[i] as number) - mx;
    const dy = (y[i] as number) - my;
    sxy += dx * dy;
    sxx += dx * dx;
    syy += dy * dy;
  }
  return sxx === 0 || syy === 0 ? 0 : sxy / Math.sqrt(sxx * syy);
}

/** Spearman's rank correlation with average ranks for ties (Pearson correlation of the ranks). */
export function spearman(x: ArrayLike<number>, y: ArrayLike<number>): number {
  return pearson(averageRanks(x), averageRanks(y));
}

/**
 * The best Spearman any estimator can reach against these tied true σ: that of an estimate that
 * orders the σ groups perfectly, with distinct values inside each group (or, with
 * `zeroGroupTied`, with all σ=0 images reading the same value).
 */
export function spearmanCeiling(trueSigma: ArrayLike<number>, zeroGroupTied = false): number {
  const perfect = Float64Array.from({ length: trueSigma.length }, (_, i) =>
    zeroGroupTied && trueSigma[i] === 0 ? 0 : (trueSigma[i] as number) + 1e-9 * (i + 1),
  );
  return spearman(trueSigma, perfect);
}

/** The clean digits and the noisy benchmark images, with the true σ of each. */
export function makeNoisyMnist(count: number, seed: number, mode: 'grid' | 'continuous' = 'grid'): { images: Float32Array; sigmas: Float32Array } {
  const mnist = loadMnist('test', { limit: count });
  const px = mnist.height * mnist.width;
  const n = mnist.count;
  const images = new Float32Array(n * px * NOISE_BENCH_SIGMAS.length);
  const sigmas = new Float32Array(n * NOISE_BENCH_SIGMAS.length);
  const rand = mulberry32(seed);
  const noise = new Float32Array(n * px);
  NOISE_BENCH_SIGMAS.forEach((sigma, level) => {
    fillGaussian(noise, rand);
    const offset = level * n * px;
    for (let d = 0; d < n; d++) {
      const s = mode === 'grid' ? sigma : 0.3 * rand();
      sigmas[level * n + d] = s;
      for (let i = d * px; i < (d + 1) * px; i++) images[offset + i] = (mnist.images[i] as number) + s * (noise[i] as number);
    }
  });
  return { images, sigmas };
}

export async function runNoiseBenchmark(opts: NoiseBenchmarkOptions): Promise<NoiseBenchmarkRow[]> {
  const chunk = opts.chunk ?? 500;
  const { images, sigmas } = makeNoisyMnist(opts.count, opts.seed, opts.sigmas);
  const total = sigmas.length;
  const side = 28;
  const px = side * side;
  const rows: NoiseBenchmarkRow[] = [];
  for (const name of NOISE_ESTIMATOR_NAMES) {
    const estimate = new Float32Array(total);
    const started = performance.now();
    for (let start = 0; start < total; start += chunk) {
      const size = Math.min(chunk, total - start);
      const batch = tf.tensor4d(images.subarray(start * px, (start + size) * px), [size, side, side, 1]);
      const out = noiseEstimators[name](batch);
      estimate.set(await out.data(), start);
      tf.dispose([batch, out]);
    }
    const msPerImage = (performance.now() - started) / total;
    let absErr = 0;
    for (let i = 0; i < total; i++) absErr += Math.abs((estimate[i] as number) - (sigmas[i] as number));
    const bySigma = opts.sigmas === 'continuous' ? [] : NOISE_BENCH_SIGMAS.map((sigma) => {
      let sum = 0;
      let err = 0;
      let n = 0;
      for (let i = 0; i < total; i++) {
        if (sigmas[i] !== Math.fround(sigma)) continue;
        sum += estimate[i] as number;
        err += Math.abs((estimate[i] as number) - (sigmas[i] as number));
        n++;
      }
      return { sigma, mean: sum / n, mae: err / n };
    });
    rows.push({ estimator: name, spearman: spearman(sigmas, estimate), mae: absErr / total, bySigma, msPerImage });
  }
  return rows;
}

async function main(): Promise<void> {
  const count = Number(process.argv[2] ?? 1000);
  const seed = Number(process.argv[3] ?? 1);
  await tf.setBackend('cpu');
  await tf.ready();
  const rows = await runNoiseBenchmark({ count, seed });
  const levels = NOISE_BENCH_SIGMAS.length;
  const trueSigma = Float32Array.from({ length: count * levels }, (_, i) => NOISE_BENCH_SIGMAS[Math.floor(i / count)] ?? 0);
  console.log(`NoiseLevel on ${count} MNIST test digits × σ ∈ {${NOISE_BENCH_SIGMAS.join(', ')}} (seed ${seed}, backend ${tf.getBackend()})\n`);
  console.log('| estimator | Spearman | MAE | ' + NOISE_BENCH_SIGMAS.map((s) => `mean @${s}`).join(' | ') + ' | ms/image |');
  console.log('|---|---|---|' + NOISE_BENCH_SIGMAS.map(() => '---').join('|') + '|---|');
  for (const r of rows) {
    console.log(
      `| ${r.estimator} | ${r.spearman.toFixed(4)} | ${r.mae.toFixed(4)} | ` +
        r.bySigma.map((b) => b.mean.toFixed(4)).join(' | ') +
        ` | ${r.msPerImage.toFixed(3)} |`,
    );
  }
  console.log(
    `\nSpearman ceiling for these tied true σ: ${spearmanCeiling(trueSigma).toFixed(4)} ` +
      `(${spearmanCeiling(trueSigma, true).toFixed(4)} if every σ=0 image reads exactly 0).`,
  );
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  await main();
}
