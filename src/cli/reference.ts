/**
 * `npm run reference -- build --data mnist:train --limit 10000 --out models/reference/mnist`
 * `npm run reference -- info [dir]`
 */
import path from 'node:path';
import { Command, InvalidArgumentError } from 'commander';
import { initBackend, wasmThreadsFor } from '../backend/index.ts';
import { loadConfig } from '../config.ts';
import { loadDataset } from '../data/dataset.ts';
import { logger } from '../log.ts';
import { loadExtractor } from '../quality/extractor.ts';
import { buildReference, loadReference, saveReference } from '../quality/reference.ts';
import { gitCommit } from '../version.ts';
import { runCli } from './run.ts';

function positiveInt(v: string): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n <= 0) throw new InvalidArgumentError('must be a positive integer');
  return n;
}

const config = loadConfig();
const program = new Command('reference').description('Build and inspect reference sets of real-image features');

program.command('build')
  .description('extract features of real images, compute k-NN radii and calibrate the Norm bounds')
  .option('--data <spec>', 'mnist:train | mnist:test | folder:<path>', 'mnist:train')
  .option('--limit <n>', 'use at most n images', positiveInt, 10000)
  .option('--offset <n>', 'skip the first n images (mnist only)', (v) => Number(v), 0)
  .option('--k <n>', 'the k of the k-th nearest neighbour distance', positiveInt, 3)
  .option('--extractor <dir>', 'feature extractor folder', config.extractorDir)
  .option('--feature-layer <name>', 'feature layer, for extractors without a qgate manifest')
  .option('--id <id>', 'the reference set id (default: derived from the data)')
  .option('--out <dir>', 'where to write it', config.referenceDir)
  .action(async (o: { data: string; limit: number; offset: number; k: number; extractor: string; featureLayer?: string; id?: string; out: string }) => {
    await initBackend(config.backend, undefined, { wasmThreads: wasmThreadsFor(config.wasmThreads, 'batch') });
    const extractor = await loadExtractor(o.extractor, o.featureLayer ? { featureLayer: o.featureLayer } : {});
    try {
      const started = performance.now();
      const data = await loadDataset(o.data, extractor.input, { limit: o.limit, offset: o.offset });
      const id = o.id ?? `${o.data.replace(/[^a-zA-Z0-9]+/g, '-')}-${data.count}-k${o.k}`;
      const built = buildReference(extractor, data.images, data.shape, data.count, {
        id, k: o.k, dataSpec: o.data, dataInfo: { offset: o.offset },
      });
      await saveReference(o.out, built, {
        codeVersion: gitCommit(),
        command: `npm run reference -- build --data ${o.data} --limit ${o.limit} --k ${o.k} --out ${path.relative(process.cwd(), o.out) || '.'}`,
      });
      logger.info({ out: o.out, id, count: data.count, calibration: built.manifest.calibration, seconds: Math.round((performance.now() - started) / 1000) }, 'wrote reference set');
    } finally {
      extractor.dispose();
    }
  });

program.command('info')
  .description('load a reference set (checking its checksums) and print its manifest')
  .argument('[dir]', 'reference set folder', config.referenceDir)
  .action(async (dir: string) => {
    await initBackend(config.backend, undefined, { wasmThreads: wasmThreadsFor(config.wasmThreads, 'batch') });
    const ref = await loadReference(dir);
    console.log(JSON.stringify(ref.manifest, null, 2));
    ref.dispose();
  });

await runCli(program);
