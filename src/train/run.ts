/**
 * One training run of the quality-regularized GAN, from configuration to run folder (and, when
 * asked, a published generator). The CLI (src/cli/train.ts) and the ablation call this; tests call
 * it with tiny shapes.
 *
 * Run folder:
 *   config.json           the whole configuration (also inside every checkpoint)
 *   metrics.jsonl         one line per logging interval: step, epoch, lossD, lossG, lossGan, q,
 *                         noise, distance, stepMs (median per step over the interval); plus
 *                         {"type":"fid"} lines per epoch and one {"type":"eval"} line at the end
 *   epoch_003_Q0.21.png   4×4 grid from a fixed latent batch after each epoch (Q = its mean Q)
 *   final_Q0.19.png       the same at the end
 *   checkpoint/           G, D, both Adam states, step, RNG state (see checkpoint.ts)
 *   samples.gif           the grids, animated
 *   curves.png            losses, Q and FID over training
 *   summary.json          the evaluation, timings and where it was published
 *
 * Determinism: the same configuration and seed give the same run. Weights come from seeded
 * initializers, the batch order of epoch e from shuffledIndices with a seed derived from (seed, e),
 * and the latents from one seeded stream whose state is checkpointed.
 */
import { appendFile, mkdir, readFile, readdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { QgateError } from '../errors.ts';
import { loadMnist } from '../data/mnist.ts';
import type { Quality } from '../quality/index.ts';
import { fillGaussian, mulberry32, seededRng, shuffledIndices } from '../random.ts';
import { gitCommit } from '../version.ts';
import { encodeGif, gridPixels, plotSvg, writeGridPng, writeSvgAsPng, type Series } from './artifacts.ts';
import { readCheckpointState, restoreCheckpoint, saveCheckpoint, type TrainingModels } from './checkpoint.ts';
import { discriminatorQuality } from './d-features.ts';
import { evaluateGenerator, type EvalMetrics } from './evaluate.ts';
import { ARCHITECTURE_TEXT, ARCHITECTURES, buildDiscriminator, buildGenerator, IMAGE_SHAPE, makeOptimizer, trainDiscriminatorOneStep, trainGeneratorOneStep, type Architecture, type QualityPenalty, type QualityReading } from './gan.ts';
import { publishGenerator, validateGeneratorName } from './publish.ts';

export interface TrainConfig {
  arch: Architecture;
  /** Length of z. */
  latentSize: number;
  batchSize: number;
  /** Total training steps (one D update and one G update each). */
  steps: number;
  /** λ: weight of Q in the generator loss. */
  lambda: number;
  /** α, β: weights of Norm(noise) and Norm(distance) inside Q. */
  alpha: number;
  beta: number;
  lrG: number;
  lrD: number;
  seed: number;
  /** The generator's name in the registry. */
  name: string;
  /** φ for Q: the fixed extractor ('reference') or D's penultimate layer ('discriminator'). */
  qFeatures: 'reference' | 'discriminator';
  /** Training digits used (60,000 = all of MNIST train; tests use a handful). */
  trainCount: number;
  /** Samples for the final evaluation (0 = none). */
  evalSamples: number;
  /** Samples for the cheap per-epoch FID in the curves (0 = none). */
  epochFidSamples: number;
  /** Steps per metrics line. */
  logEvery: number;
  /** Steps between checkpoints (besides every epoch end and the end of the run). */
  checkpointEvery: number;
  /** Real digits in the reference set of `--q-features discriminator`. */
  dReferenceCount: number;
}

/** `npm run train` with no flags. */
export const DEFAULT_CONFIG: TrainConfig = {
  arch: 'dcgan',
  latentSize: 100,
  batchSize: 64,
  steps: 937 * 5,
  lambda: 0.1,
  alpha: 0.5,
  beta: 0.5,
  lrG: 2e-4,
  lrD: 2e-4,
  seed: 1,
  name: 'dcgan-q',
  qFeatures: 'reference',
  trainCount: 60000,
  evalSamples: 10000,
  epochFidSamples: 1000,
  logEvery: 50,
  checkpointEvery: 500,
  dReferenceCount: 1000,
};

/** The issue's learning rates for the original MLP GAN (G 1e-3, D 5e-4); DCGAN's are Radford et al.'s 2e-4. */
export const DEFAULT_LEARNING_RATES: Record<Architecture, { lrG: number; lrD: number }> = {
  mlp: { lrG: 1e-3, lrD: 5e-4 },
  dcgan: { lrG: 2e-4, lrD: 2e-4 },
};

export function validateConfig(c: TrainConfig): TrainConfig {
  const bad = (what: string) => new QgateError('INVALID_ARGUMENT', what);
  if (!(ARCHITECTURES as readonly string[]).includes(c.arch)) throw bad(`--arch must be one of ${ARCHITECTURES.join('|')}, got '${c.arch}'`);
  const posInt = (name: string, v: number, min = 1) => {
    if (!Number.isSafeInteger(v) || v < min) throw bad(`${name} must be an integer ≥ ${min}, got ${v}`);
  };
  posInt('latentSize', c.latentSize);
  posInt('--batch-size', c.batchSize);
  posInt('--steps', c.steps, 0);
  posInt('--eval-samples', c.evalSamples, 0);
  posInt('logEvery', c.logEvery);
  posInt('checkpointEvery', c.checkpointEvery);
  if (!Number.isSafeInteger(c.seed)) throw bad(`--seed must be an integer, got ${c.seed}`);
  if (!(c.lambda >= 0 && Number.isFinite(c.lambda))) throw bad(`--lambda must be ≥ 0, got ${c.lambda}`);
  if (!(c.alpha >= 0 && c.beta >= 0 && c.alpha + c.beta > 0)) throw bad(`--alpha and --beta must be ≥ 0 and not both 0, got ${c.alpha}, ${c.beta}`);
  if (!(c.lrG > 0) || !(c.lrD > 0)) throw bad(`learning rates must be > 0, got --lr-g ${c.lrG}, --lr-d ${c.lrD}`);
  if (c.qFeatures !== 'reference' && c.qFeatures !== 'discriminator') throw bad(`--q-features must be reference|discriminator, got '${String(c.qFeatures)}'`);
  if (!(c.trainCount >= c.batchSize && c.trainCount <= 60000)) throw bad(`trainCount must be between the batch size and 60000, got ${c.trainCount}`);
  validateGeneratorName(c.name);
  return c;
}

export function stepsPerEpoch(c: Pick<TrainConfig, 'trainCount' | 'batchSize'>): number {
  return Math.floor(c.trainCount / c.batchSize);
}

export interface MetricsLine {
  step: number;
  epoch: number;
  lossD: number;
  lossG: number;
  lossGan: number;
  /**
   * Means over the interval's steps that measured Q: all of them with λ > 0; with λ = 0 only the
   * last (one batch), since measuring Q on every step would cost more than the MLP step itself.
   */
  q: number;
  noise: number;
  distance: number;
  stepMs: number;
}

export interface RunHooks {
  /** Called after every step (progress bars). */
  /** `q` is there on steps that measured Q: every step with λ > 0, the last step of each log interval with λ = 0. */
  onStep?(step: number, total: number, last: { lossD: number; lossG: number; q?: number }): void;
  /** Called for every metrics line. */
  onMetrics?(line: MetricsLine): void;
  onMessage?(message: string): void;
  /** Stops the run after this many steps (tests simulate a kill with it). */
  stopAfter?: number;
}

export interface RunOptions {
  /** The run folder; with `resume`, the folder to continue. */
  runDir: string;
  resume?: boolean;
  /** With `resume`: a new total step count (otherwise the checkpoint's). */
  steps?: number;
  /**
   * With `resume`: the registry name to publish under (otherwise the checkpoint's). Where a model
   * is published is not part of how it trains, so a run started under another name (an ablation
   * arm, say) can be continued and published as the service's default.
   */
  name?: string;
  /** Q of the fixed extractor (used for `reference` features, the metrics and the evaluation). */
  quality: Quality;
  /** Publish into `<modelsDir>/generators/` at the end (undefined = do not publish). */
  modelsDir?: string;
  hooks?: RunHooks;
}

export interface RunResult {
  config: TrainConfig;
  runDir: string;
  step: number;
  eval?: EvalMetrics;
  published?: { dir: string; version: string };
  stepMsMedian: number;
  seconds: number;
  models: TrainingModels;
}

function median(values: number[]): number {
  if (values.length === 0) return NaN;
  const s = [...values].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

const GRID_SEED = 4242;

/** Keeps metrics.jsonl consistent with a checkpoint: lines after the checkpoint's step are dropped. */
async function truncateMetrics(file: string, step: number): Promise<void> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch {
    return;
  }
  const kept = text.split('\n').filter((l) => l.trim() && (JSON.parse(l) as { step: number }).step <= step);
  await writeFile(file, kept.map((l) => l + '\n').join(''));
}

export async function trainGan(configIn: TrainConfig, options: RunOptions): Promise<RunResult> {
  const t0 = performance.now();
  const { runDir, hooks = {} } = options;
  const say = (m: string) => hooks.onMessage?.(m);
  let config = validateConfig({ ...configIn });
  let startStep = 0;
  let rngState = (config.seed * 2654435761) >>> 0;
  let secondsBefore = 0;
  const metricsFile = path.join(runDir, 'metrics.jsonl');
  if (options.resume) {
    const state = await readCheckpointState<TrainConfig>(runDir);
    config = validateConfig({
      ...state.config,
      ...(options.steps !== undefined ? { steps: options.steps } : {}),
      ...(options.name !== undefined ? { name: options.name } : {}),
    });
    startStep = state.step;
    rngState = state.rngState;
    secondsBefore = state.trainSeconds ?? 0;
    await truncateMetrics(metricsFile, startStep);
    say(`resuming ${runDir} at step ${startStep} of ${config.steps}`);
  } else {
    await mkdir(runDir, { recursive: true });
    const existing = (await readdir(runDir)).filter((f) => !f.startsWith('.'));
    if (existing.length) throw new QgateError('INVALID_ARGUMENT', `run folder ${runDir} is not empty; use --resume ${runDir} to continue it`);
  }
  await writeFile(path.join(runDir, 'config.json'), JSON.stringify(config, null, 2) + '\n');

  const g = buildGenerator(config.arch, config.latentSize, config.seed);
  const d = buildDiscriminator(config.arch, config.seed);
  const models: TrainingModels = { g, d, optG: makeOptimizer(config.lrG), optD: makeOptimizer(config.lrD) };
  if (options.resume) await restoreCheckpoint(runDir, models);

  const data = loadMnist('train', { limit: config.trainCount });
  const real = new Float32Array(data.images.length);
  for (let i = 0; i < real.length; i++) real[i] = data.images[i]! * 2 - 1;
  const px = IMAGE_SHAPE[0] * IMAGE_SHAPE[1];
  const B = config.batchSize;
  const spe = stepsPerEpoch(config);
  const rng = seededRng(rngState);
  const gridZ = tf.tensor2d(fillGaussian(new Float32Array(16 * config.latentSize), mulberry32(config.seed + GRID_SEED)), [16, config.latentSize]);
  const qAlpha = config.alpha / (config.alpha + config.beta);

  // Q for the penalty: the fixed extractor, or D's features with a reference set rebuilt per epoch.
  let dQuality: Quality | undefined;
  const dRefImages = config.qFeatures === 'discriminator' ? loadMnist('train', { limit: Math.min(config.dReferenceCount, 60000) }) : undefined;
  const rebuildDQuality = () => {
    if (!dRefImages) return;
    try {
      const next = discriminatorQuality(d, dRefImages.images, dRefImages.count, qAlpha, options.quality.options.noiseEstimator);
      dQuality?.dispose();
      dQuality = next;
    } catch (e) {
      if (!dQuality) throw e;
      say(`discriminator reference set not rebuilt, keeping the previous one: ${(e as Error).message}`);
    }
  };
  rebuildDQuality();
  const penalty = (): QualityPenalty => ({ quality: dQuality ?? options.quality, lambda: config.lambda, alpha: config.alpha, beta: config.beta });

  const grids: Uint8Array[] = [];
  let gridSize = { width: 0, height: 0 };
  const writeGrid = async (label: string) => {
    const images = tf.tidy(() => g.predict(gridZ) as tf.Tensor).add(1).div(2) as tf.Tensor4D;
    const q = tf.tidy(() => options.quality.components(images, false).q.mean().dataSync()[0]!);
    const grid = gridPixels(images.dataSync() as Float32Array);
    images.dispose();
    gridSize = grid;
    grids.push(grid.pixels);
    const file = `${label}_Q${q.toFixed(2)}.png`;
    await writeGridPng(path.join(runDir, file), grid);
    return file;
  };
  const epochFid = async (step: number, epoch: number) => {
    if (config.epochFidSamples === 0 || config.evalSamples === 0) return;
    const m = evaluateGenerator(g, config.latentSize, options.quality, { samples: Math.min(config.epochFidSamples, config.evalSamples) });
    await appendFile(metricsFile, JSON.stringify({ type: 'fid', step, epoch, samples: m.samples, fid: m.fid, meanQ: m.meanQ, precision: m.precision, recall: m.recall }) + '\n');
    say(`epoch ${epoch}: FID(${m.samples}) ${m.fid.toFixed(2)}, mean Q ${m.meanQ.toFixed(3)}`);
  };

  // Grids already written by the interrupted part of a resumed run go into the GIF too.
  if (options.resume) {
    const files = (await readdir(runDir)).filter((f) => /^epoch_\d+_Q.*\.png$/.test(f)).sort();
    const sharp = (await import('sharp')).default;
    for (const f of files) {
      const { data: px8, info } = await sharp(path.join(runDir, f)).extractChannel(0).raw().toBuffer({ resolveWithObject: true });
      grids.push(new Uint8Array(px8));
      gridSize = { width: info.width, height: info.height };
    }
  }

  let perm: Int32Array | undefined;
  let permEpoch = -1;
  const batch = new Float32Array(B * px);
  const zD = new Float32Array(B * config.latentSize);
  const zG = new Float32Array(B * config.latentSize);
  let interval: Array<{ lossD: number; lossG: number; lossGan: number; quality?: QualityReading; ms: number }> = [];
  const allMs: number[] = [];
  let step = startStep;
  const stopAt = Math.min(config.steps, hooks.stopAfter ?? Infinity);

  while (step < stopAt) {
    const epoch = Math.floor(step / spe);
    if (epoch !== permEpoch) {
      perm = shuffledIndices(data.count, mulberry32((config.seed * 7919 + epoch * 104729 + 1) >>> 0));
      permEpoch = epoch;
    }
    const pos = (step % spe) * B;
    for (let i = 0; i < B; i++) batch.set(real.subarray(perm![pos + i]! * px, (perm![pos + i]! + 1) * px), i * px);
    fillGaussian(zD, rng);
    fillGaussian(zG, rng);

    const start = performance.now();
    const tensors = tf.tidy(() => [tf.tensor4d(batch, [B, ...IMAGE_SHAPE]), tf.tensor2d(zD, [B, config.latentSize]), tf.tensor2d(zG, [B, config.latentSize])]);
    const [realT, zDT, zGT] = tensors as [tf.Tensor4D, tf.Tensor2D, tf.Tensor2D];
    const epochEnds = (step + 1) % spe === 0;
    const logs = (step + 1) % config.logEvery === 0 || step + 1 === stopAt || epochEnds;
    const { lossD } = trainDiscriminatorOneStep(g, d, models.optD, realT, zDT);
    // With λ = 0, Q is measured for the log only, on the step that writes the line.
    const gs = trainGeneratorOneStep(g, d, models.optG, zGT, penalty(), { measureQuality: logs });
    tf.dispose(tensors);
    const ms = performance.now() - start;
    step++;
    interval.push({ lossD, lossG: gs.lossG, lossGan: gs.lossGan, quality: gs.quality, ms });
    allMs.push(ms);
    hooks.onStep?.(step, config.steps, { lossD, lossG: gs.lossG, q: gs.quality?.q });

    if (logs) {
      const mean = (values: number[]) => values.reduce((s, x) => s + x, 0) / values.length;
      const readings = interval.flatMap((x) => (x.quality ? [x.quality] : []));
      const line: MetricsLine = {
        step, epoch: step / spe,
        lossD: mean(interval.map((x) => x.lossD)), lossG: mean(interval.map((x) => x.lossG)), lossGan: mean(interval.map((x) => x.lossGan)),
        q: mean(readings.map((x) => x.q)), noise: mean(readings.map((x) => x.noise)), distance: mean(readings.map((x) => x.distance)),
        stepMs: median(interval.map((x) => x.ms)),
      };
      await appendFile(metricsFile, JSON.stringify(line) + '\n');
      hooks.onMetrics?.(line);
      interval = [];
    }
    if (epochEnds) {
      const ep = step / spe;
      await writeGrid(`epoch_${String(ep).padStart(3, '0')}`);
      await epochFid(step, ep);
      rebuildDQuality();
    }
    if (epochEnds || step % config.checkpointEvery === 0 || step === stopAt) {
      await saveCheckpoint<TrainConfig>(runDir, models, { step, rngState: rng.state(), trainSeconds: secondsBefore + (performance.now() - t0) / 1000, config });
    }
  }
  if (startStep === stopAt && startStep > 0) say(`checkpoint is already at step ${startStep}; nothing to train`);
  dQuality?.dispose();

  const result: RunResult = { config, runDir, step, stepMsMedian: median(allMs), seconds: 0, models };
  if (step < config.steps) {
    gridZ.dispose();
    result.seconds = (performance.now() - t0) / 1000;
    return result; // stopped early (hooks.stopAfter): the checkpoint is the product
  }

  const finalGrid = await writeGrid('final');
  gridZ.dispose();
  say(`final grid ${finalGrid}`);
  if (config.evalSamples > 0) {
    say(`evaluating on ${config.evalSamples} samples…`);
    result.eval = evaluateGenerator(g, config.latentSize, options.quality, { samples: config.evalSamples });
    await appendFile(metricsFile, JSON.stringify({ type: 'eval', step, ...result.eval }) + '\n');
  }
  if (grids.length) await writeFile(path.join(runDir, 'samples.gif'), encodeGif(grids, gridSize.width, gridSize.height));
  await writeCurves(runDir, config, metricsFile);

  if (options.modelsDir) {
    // metrics.jsonl travels with the version, so the web page can draw its training curves.
    const published = await publishGenerator(g, path.join(options.modelsDir, 'generators'),
      generatorManifest(config, result, runDir, secondsBefore + (performance.now() - t0) / 1000),
      { 'metrics.jsonl': await readFile(metricsFile) });
    result.published = { dir: published.dir, version: published.manifest.version };
    say(`published ${published.dir}`);
  }
  result.seconds = (performance.now() - t0) / 1000;
  await writeFile(path.join(runDir, 'summary.json'), JSON.stringify({
    config, step, stepMsMedian: result.stepMsMedian, seconds: result.seconds, totalSeconds: secondsBefore + result.seconds, eval: result.eval, published: result.published,
    backend: tf.getBackend(), code: gitCommit(),
  }, null, 2) + '\n');
  return result;
}

/** What the published manifest says about the run, beyond format/name/version/createdAt. */
function generatorManifest(config: TrainConfig, result: RunResult, runDir: string, seconds: number) {
  const text = ARCHITECTURE_TEXT[config.arch];
  return {
    name: config.name,
    architecture: text.generator,
    latentSize: config.latentSize,
    imageShape: IMAGE_SHAPE,
    outputRange: [-1, 1] as [number, number],
    training: {
      script: 'npm run train',
      data: `mnist:train (${config.trainCount} digits, scaled to [-1,1])`,
      discriminator: text.discriminator,
      loss: `D: binary cross-entropy on logits; G: non-saturating BCE + lambda·Q(G(z)), Q = alpha·Norm(noise) + beta·Norm(distance) in ${config.qFeatures === 'reference' ? "the fixed extractor's" : "the discriminator's penultimate-layer"} feature space`,
      optimizer: `adam(beta1=0.5, beta2=0.999): G lr ${config.lrG}, D lr ${config.lrD}`,
      batchSize: config.batchSize,
      steps: result.step,
      epochs: result.step / stepsPerEpoch(config),
      seed: config.seed,
      lambda: config.lambda,
      alpha: config.alpha,
      beta: config.beta,
      qFeatures: config.qFeatures,
      config,
      stepMsMedian: result.stepMsMedian,
      backend: tf.getBackend(),
      run: path.basename(runDir),
      // Wall seconds of the whole run, summed over its resumed segments (evaluations included).
      seconds: Math.round(seconds),
    },
    metrics: result.eval ?? null,
    code: gitCommit(),
  };
}

async function writeCurves(runDir: string, config: TrainConfig, metricsFile: string): Promise<void> {
  const lines = (await readFile(metricsFile, 'utf8')).split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, number | string>);
  const steps = lines.filter((l) => l.type === undefined) as unknown as MetricsLine[];
  const fids = lines.filter((l) => l.type === 'fid' || l.type === 'eval');
  const s = (label: string, color: string, pick: (l: MetricsLine) => number): Series => ({ label, color, points: steps.map((l) => [l.step, pick(l)]) });
  const svg = plotSvg(`${config.name}: ${config.arch}, λ=${config.lambda}, α=${config.alpha}, β=${config.beta}, seed ${config.seed}`, [
    { title: 'losses', series: [s('lossD', '#d62728', (l) => l.lossD), s('lossG', '#1f77b4', (l) => l.lossG)] },
    { title: 'mean Q of the training batches (α·Norm noise + β·Norm distance)', series: [s('Q', '#2ca02c', (l) => l.q)] },
    {
      title: 'FID vs MNIST test (qgate φ features)',
      series: [
        { label: 'FID per epoch (small sample)', color: '#9467bd', points: fids.filter((l) => l.type === 'fid').map((l) => [Number(l.step), Number(l.fid)]) },
        { label: 'final FID', color: '#000000', points: fids.filter((l) => l.type === 'eval').map((l) => [Number(l.step), Number(l.fid)]) },
      ],
    },
  ]);
  await writeSvgAsPng(path.join(runDir, 'curves.png'), svg);
}
