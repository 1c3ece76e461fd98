/**
 * `npm run train:features`: trains φ and writes it to models/features/lenet-mnist (or --out).
 */
import path from 'node:path';
import { Command, InvalidArgumentError } from 'commander';
import { initBackend, wasmThreadsFor } from '../backend/index.ts';
import { saveLayersModel } from '../backend/model-io.ts';
import { loadConfig } from '../config.ts';
import { logger } from '../log.ts';
import { featureFiles, trainFeatureExtractor } from '../train/features.ts';
import { gitCommit } from '../version.ts';

function positiveInt(v: string): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n <= 0) throw new InvalidArgumentError('must be a positive integer');
  return n;
}

const program = new Command('train:features')
  .description('Train the LeNet-style MNIST classifier whose penultimate layer is qgate\'s feature space φ')
  .option('--epochs <n>', 'passes over the training digits', positiveInt, 6)
  .option('--batch-size <n>', 'minibatch size', positiveInt, 128)
  .option('--lr <x>', 'Adam learning rate of the first epoch', Number, 1e-3)
  .option('--lr-decay <x>', 'learning rate factor per epoch', Number, 0.7)
  .option('--validation <n>', 'training digits held out to pick the best epoch', positiveInt, 5000)
  .option('--seed <n>', 'seed for initialisation and shuffling', positiveInt, 1234)
  .option('--min-accuracy <x>', 'refuse to write a model below this test accuracy', Number, 0.99)
  .option('--out <dir>', 'where to write the model (default: <models dir>/features/lenet-mnist)')
  .parse();

const opts = program.opts<{ epochs: number; batchSize: number; lr: number; lrDecay: number; validation: number; seed: number; minAccuracy: number; out?: string }>();
const config = loadConfig();
const backend = await initBackend(config.backend, undefined, { wasmThreads: wasmThreadsFor(config.wasmThreads, 'batch') });
const out = opts.out ?? path.join(config.modelsDir, 'features', 'lenet-mnist');
const trainingOptions = {
  epochs: opts.epochs, batchSize: opts.batchSize, learningRate: opts.lr, learningRateDecay: opts.lrDecay,
  validation: opts.validation, seed: opts.seed,
  onEpoch: ({ epoch, validationAccuracy, learningRate }: { epoch: number; validationAccuracy: number; learningRate: number }) => {
    logger.info({ epoch: epoch + 1, validationAccuracy, learningRate }, 'epoch done');
  },
  onProgress: ({ epoch, batch, batches, loss, acc }: { epoch: number; batch: number; batches: number; loss: number; acc: number }) => {
    if (batch % 50 === 0 || batch === batches - 1) {
      logger.info({ epoch: epoch + 1, batch, batches, loss: +loss.toFixed(4), acc: +acc.toFixed(4) }, 'training φ');
    }
  },
};
const result = await trainFeatureExtractor(trainingOptions);
logger.info({ testAccuracy: result.testAccuracy, validationAccuracy: result.validationAccuracy, bestEpoch: result.bestEpoch, seconds: Math.round(result.seconds) }, 'trained φ');
if (result.testAccuracy < opts.minAccuracy) {
  logger.error({ testAccuracy: result.testAccuracy, validationAccuracy: result.validationAccuracy }, `test accuracy is below --min-accuracy ${opts.minAccuracy}; nothing written`);
  process.exit(1);
}
const files = featureFiles(result, trainingOptions, { backend: backend.name, codeVersion: gitCommit() });
await saveLayersModel(result.model, out, files, { replace: true });
logger.info({ out, testAccuracy: result.testAccuracy }, 'wrote φ');
