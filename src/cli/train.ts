/**
 * `npm run train`: trains the quality-regularized GAN, evaluates it and publishes the generator.
 * With no flags: DCGAN on MNIST, λ = 0.1, α = β = 0.5, published as `dcgan-q`. See README.
 */
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { Command, InvalidArgumentError, Option } from 'commander';
import { MultiBar, type SingleBar } from 'cli-progress';
import { initBackend, wasmThreadsFor } from '../backend/index.ts';
import { loadConfig } from '../config.ts';
import { readCheckpointState } from '../train/checkpoint.ts';
import { loadQuality } from '../quality/index.ts';
import { ARCHITECTURES, type Architecture } from '../train/gan.ts';
import { DEFAULT_CONFIG, DEFAULT_LEARNING_RATES, stepsPerEpoch, trainGan, type RunHooks, type TrainConfig } from '../train/run.ts';
import { runCli } from './run.ts';

const num = (v: string): number => {
  const n = Number(v);
  if (v.trim() === '' || !Number.isFinite(n)) throw new InvalidArgumentError(`not a number: '${v}'`);
  return n;
};
const int = (v: string): number => {
  const n = num(v);
  if (!Number.isSafeInteger(n)) throw new InvalidArgumentError(`not an integer: '${v}'`);
  return n;
};

export interface TrainFlags {
  arch: Architecture;
  epochs?: number;
  steps?: number;
  batchSize: number;
  lambda: number;
  alpha: number;
  beta: number;
  lrG?: number;
  lrD?: number;
  seed: number;
  name?: string;
  modelsDir?: string;
  out?: string;
  resume?: string;
  publish: boolean;
  evalSamples: number;
  qFeatures: 'reference' | 'discriminator';
  trainCount: number;
  logEvery: number;
  checkpointEvery: number;
}

export function trainProgram(): Command {
  return new Command('train')
    .description('Train a quality-regularized GAN on MNIST (L_G = L_GAN + λ·Q(G(z))), evaluate it and publish the generator')
    .addOption(new Option('--arch <arch>', 'generator/discriminator architecture').choices(ARCHITECTURES).default(DEFAULT_CONFIG.arch))
    .option('--epochs <n>', `epochs over the training digits (default ${DEFAULT_CONFIG.steps / 937} when --steps is not given)`, int)
    .option('--steps <n>', 'training steps (one D and one G update each); overrides --epochs', int)
    .option('--batch-size <n>', 'batch size', int, DEFAULT_CONFIG.batchSize)
    .option('--lambda <x>', 'λ: weight of Q in the generator loss (0 = plain GAN)', num, DEFAULT_CONFIG.lambda)
    .option('--alpha <x>', 'α: weight of Norm(noise) inside Q', num, DEFAULT_CONFIG.alpha)
    .option('--beta <x>', 'β: weight of Norm(distance) inside Q', num, DEFAULT_CONFIG.beta)
    .option('--lr-g <x>', 'generator learning rate (default: mlp 1e-3, dcgan 2e-4)', num)
    .option('--lr-d <x>', 'discriminator learning rate (default: mlp 5e-4, dcgan 2e-4)', num)
    .option('--seed <n>', 'seed: the same seed gives the same run', int, DEFAULT_CONFIG.seed)
    .option('--name <name>', "the generator's name in the registry (default: dcgan-q or mlp-q; with --resume, the run's)")
    .option('--models-dir <dir>', 'where to publish: <dir>/generators/<name>/<version>/ (default: QGATE_MODELS_DIR or models/)')
    .option('--out <dir>', 'the run folder (default: runs/<name>-<time>)')
    .option('--resume <runDir>', 'continue the run in this folder from its checkpoint (its configuration is used; --steps/--epochs may extend it, --name renames where it publishes)')
    .option('--no-publish', 'do not publish the generator')
    .option('--eval-samples <n>', 'samples for the final evaluation (0 skips it)', int, DEFAULT_CONFIG.evalSamples)
    .addOption(new Option('--q-features <kind>', "φ for Q: the fixed extractor, or D's penultimate layer").choices(['reference', 'discriminator']).default(DEFAULT_CONFIG.qFeatures))
    .addOption(new Option('--train-count <n>', 'training digits to use (first n of MNIST train)').argParser(int).default(DEFAULT_CONFIG.trainCount).hideHelp())
    .option('--log-every <n>', 'steps per metrics line', int, DEFAULT_CONFIG.logEvery)
    .option('--checkpoint-every <n>', 'steps between checkpoints (also at every epoch end)', int, DEFAULT_CONFIG.checkpointEvery)
    .action(async (flags: TrainFlags) => {
      await train(flags, process.env);
    });
}

/** Flags → configuration; the defaults of the architecture fill in what is not given. */
export function configFromFlags(flags: TrainFlags): TrainConfig {
  const lr = DEFAULT_LEARNING_RATES[flags.arch];
  const base = { ...DEFAULT_CONFIG, batchSize: flags.batchSize, trainCount: flags.trainCount };
  const spe = stepsPerEpoch(base);
  const steps = flags.steps ?? (flags.epochs !== undefined ? flags.epochs * spe : DEFAULT_CONFIG.steps);
  return {
    ...base,
    arch: flags.arch,
    steps,
    lambda: flags.lambda,
    alpha: flags.alpha,
    beta: flags.beta,
    lrG: flags.lrG ?? lr.lrG,
    lrD: flags.lrD ?? lr.lrD,
    seed: flags.seed,
    name: flags.name ?? (flags.arch === 'dcgan' ? 'dcgan-q' : 'mlp-q'),
    qFeatures: flags.qFeatures,
    evalSamples: flags.evalSamples,
    logEvery: flags.logEvery,
    checkpointEvery: flags.checkpointEvery,
  };
}

/** A progress bar on a terminal, plain lines otherwise. */
export function consoleHooks(tty: boolean): RunHooks & { stop(): void } {
  if (!tty) {
    return {
      onMetrics: (l) => console.log(`step ${l.step} epoch ${l.epoch.toFixed(2)} lossD ${l.lossD.toFixed(4)} lossG ${l.lossG.toFixed(4)} q ${l.q.toFixed(4)} noise ${l.noise.toFixed(4)} distance ${l.distance.toFixed(4)} stepMs ${l.stepMs.toFixed(1)}`),
      onMessage: (m) => console.log(m),
      stop: () => {},
    };
  }
  // A MultiBar with one bar, because only MultiBar can print lines above a running bar.
  const bars = new MultiBar({
    format: 'train [{bar}] {value}/{total} | {rate} steps/s | ETA {eta_formatted} | lossD {lossD} lossG {lossG} Q {q}',
    hideCursor: true,
    etaBuffer: 50,
  });
  let bar: SingleBar | undefined;
  let started = false;
  let t0 = 0;
  let first = 0;
  return {
    onStep: (step, total, last) => {
      if (!started) {
        bar = bars.create(total, step - 1, { rate: '-', lossD: '-', lossG: '-', q: '-' });
        started = true;
        t0 = performance.now();
        first = step - 1;
      }
      const rate = ((step - first) / ((performance.now() - t0) / 1000)).toFixed(2);
      bar?.update(step, { rate, lossD: last.lossD.toFixed(3), lossG: last.lossG.toFixed(3), ...(last.q !== undefined ? { q: last.q.toFixed(3) } : {}) });
    },
    onMessage: (m) => (started ? bars.log(m + '\n') : console.log(m)),
    stop: () => {
      if (started) bars.stop();
      started = false;
    },
  };
}

function timestamp(): string {
  return new Date().toISOString().replace(/[-:]/g, '').replace(/\.\d+Z$/, 'Z');
}

export async function train(flags: TrainFlags, env: Record<string, string | undefined>) {
  const config = loadConfig(env);
  const trainConfig = configFromFlags(flags);
  const backend = await initBackend(config.backend, undefined, { wasmThreads: wasmThreadsFor(config.wasmThreads, 'batch') });
  // Evaluation and the metrics use Q with this run's α and β (normalized to α + β = 1).
  const { alpha, beta } = flags.resume ? (await readCheckpointState<TrainConfig>(path.resolve(flags.resume))).config : trainConfig;
  const quality = await loadQuality({ ...config, alpha: alpha / (alpha + beta) });
  const runDir = path.resolve(flags.resume ?? flags.out ?? path.join('runs', `${trainConfig.name}-${timestamp()}`));
  const modelsDir = path.resolve(flags.modelsDir ?? config.modelsDir);
  const hooks = consoleHooks(Boolean(process.stdout.isTTY));
  hooks.onMessage?.(`run folder ${runDir} (backend ${backend.name})`);
  try {
    const result = await trainGan(trainConfig, {
      runDir,
      resume: Boolean(flags.resume),
      ...(flags.resume && (flags.steps !== undefined || flags.epochs !== undefined) ? { steps: trainConfig.steps } : {}),
      ...(flags.resume && flags.name !== undefined ? { name: flags.name } : {}),
      quality,
      ...(flags.publish ? { modelsDir } : {}),
      hooks,
    });
    hooks.stop();
    const e = result.eval;
    console.log(`trained ${result.step} steps in ${result.seconds.toFixed(0)} s (median step ${result.stepMsMedian.toFixed(1)} ms)`);
    if (e) {
      console.log(`FID ${e.fid.toFixed(2)} (floor train-vs-test ${e.fidFloor.toFixed(2)}, ${e.samples} samples) precision ${e.precision.toFixed(3)} recall ${e.recall.toFixed(3)} mean Q ${e.meanQ.toFixed(3)} pass@${e.tau} ${(100 * e.passRate).toFixed(1)}% mean noise ${e.meanNoise.toFixed(4)}`);
    }
    result.models.g.dispose();
    result.models.d.dispose();
    return result;
  } finally {
    hooks.stop();
    quality.dispose();
  }
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  await runCli(trainProgram());
}
