/**
 * `npm run generator:bootstrap -- [--steps 15000] [--seed 1] [--name mlp-gan] [--version 0001]`
 *
 * Trains the small MLP GAN and publishes its generator into the registry folder
 * (<models>/generators/<name>/<version>/), atomically, so a running server picks it up.
 */
import path from 'node:path';
import { Command, InvalidArgumentError } from 'commander';
import { initBackend, wasmThreadsFor } from '../backend/index.ts';
import { saveLayersModel } from '../backend/model-io.ts';
import { loadConfig } from '../config.ts';
import { validateName } from '../generator/manifest.ts';
import { logger } from '../log.ts';
import { BOOTSTRAP_DEFAULTS, bootstrapManifest, trainBootstrapGan } from '../train/gan-bootstrap.ts';
import { gitCommit } from '../version.ts';
import { runCli } from './run.ts';

function positiveInt(v: string): number {
  const n = Number(v);
  if (!Number.isSafeInteger(n) || n <= 0) throw new InvalidArgumentError('must be a positive integer');
  return n;
}

const config = loadConfig();
const program = new Command('generator:bootstrap')
  .description('Train the bootstrap MLP GAN on MNIST and publish its generator into the registry')
  .option('--steps <n>', 'training steps', positiveInt, BOOTSTRAP_DEFAULTS.steps)
  .option('--seed <n>', 'seed', positiveInt, BOOTSTRAP_DEFAULTS.seed)
  .option('--name <name>', 'generator name', 'mlp-gan')
  .option('--version <version>', 'version folder', '0001')
  .option('--replace', 'replace an existing version folder')
  .action(async (o: { steps: number; seed: number; name: string; version: string; replace?: boolean }) => {
    validateName('generator', o.name);
    validateName('version', o.version);
    await initBackend(config.backend, undefined, { wasmThreads: wasmThreadsFor(config.wasmThreads, 'batch') });
    const options = { ...BOOTSTRAP_DEFAULTS, steps: o.steps, seed: o.seed };
    const result = await trainBootstrapGan({
      ...options,
      onProgress: (step, lossD, lossG) => {
        if (step % 250 === 0 || step === options.steps - 1) logger.info({ step, lossD, lossG }, `step ${step}/${options.steps}`);
      },
    });
    const dir = path.join(config.modelsDir, 'generators', o.name, o.version);
    await saveLayersModel(result.generator, dir, { 'manifest.json': bootstrapManifest(o.name, o.version, options, result, { code: gitCommit() }) }, { replace: o.replace ?? false });
    result.generator.dispose();
    console.log(`published ${dir} (${Math.round(result.seconds)} s)`);
  });

await runCli(program);
