/**
 * `npm run score -- [--tau 0.3] [--json] [--estimator name] <image>...`
 *
 * Scores image files with the shipped extractor and reference set. With --json, one JSON object
 * per image per line on stdout; a file that cannot be scored gets `{file, error: {code, message}}`
 * and the exit status is 2. With --gate the status is 1 when any image fails the gate, for scripts.
 */
import { readFile } from 'node:fs/promises';
import { Command, InvalidArgumentError } from 'commander';
import * as tf from '@tensorflow/tfjs';
import { initBackend, wasmThreadsFor } from '../backend/index.ts';
import { loadConfig } from '../config.ts';
import { decodeImage, type DecodedImage } from '../data/images.ts';
import { isQgateError, QgateError } from '../errors.ts';
import { loadQuality, validateTau, type ImageScore } from '../quality/index.ts';
import { NOISE_ESTIMATOR_NAMES, type NoiseEstimatorName } from '../quality/noise.ts';
import { runCli } from './run.ts';

function tauArg(v: string): number {
  const n = Number(v);
  try {
    validateTau(n);
  } catch {
    throw new InvalidArgumentError('must be a number with 0 < τ ≤ 1');
  }
  return n;
}

type Row =
  | ({ file: string; tau: number; format: string; width: number; height: number; estimator: string; reference: string; extractor: string } & ImageScore)
  | { file: string; error: { code: string; message: string } };

const config = loadConfig();
const program = new Command('score')
  .description('Score images with Q(I) = α·Norm(noise) + β·Norm(distance to the reference set); lower is better')
  .argument('<images...>', 'image files (PNG, JPEG, WebP, GIF, TIFF, AVIF)')
  .option('--tau <x>', 'gate threshold: an image passes when Q < τ', tauArg, config.tau)
  .option('--json', 'one JSON object per image per line')
  .option('--gate', 'exit with status 1 when any image fails the gate')
  .option('--estimator <name>', `noise estimator (${NOISE_ESTIMATOR_NAMES.join('|')})`, config.noiseEstimator)
  .action(async (files: string[], o: { tau: number; json?: boolean; gate?: boolean; estimator: string }) => {
    if (!(NOISE_ESTIMATOR_NAMES as readonly string[]).includes(o.estimator)) {
      throw new QgateError('INVALID_ARGUMENT', `--estimator must be one of ${NOISE_ESTIMATOR_NAMES.join('|')}`);
    }
    await initBackend(config.backend, undefined, { wasmThreads: wasmThreadsFor(config.wasmThreads, 'batch') });
    const quality = await loadQuality({ ...config, noiseEstimator: o.estimator as NoiseEstimatorName, tau: o.tau });
    const { height, width, channels } = quality.extractor.input;
    const decoded = await Promise.all(files.map(async (file): Promise<DecodedImage | QgateError> => {
      try {
        return await decodeImage(await readFile(file), { height, width, channels });
      } catch (e) {
        if (isQgateError(e)) return e;
        const code = (e as NodeJS.ErrnoException).code === 'ENOENT' ? 'NOT_FOUND' : 'IMAGE_UNDECODABLE';
        return new QgateError(code, (e as Error).message);
      }
    }));
    const ok = decoded.filter((d): d is DecodedImage => !(d instanceof QgateError));
    const pixels = new Float32Array(ok.length * height * width * channels);
    ok.forEach((d, i) => pixels.set(d.pixels, i * height * width * channels));
    const scores = ok.length === 0 ? [] : await (async () => {
      const batch = tf.tensor4d(pixels, [ok.length, height, width, channels]);
      try {
        return await quality.score(batch, o.tau);
      } finally {
        batch.dispose();
      }
    })();
    let next = 0;
    const rows: Row[] = decoded.map((d, i) => d instanceof QgateError
      ? { file: files[i]!, error: { code: d.code, message: d.message } }
      : {
        file: files[i]!, ...scores[next++]!, tau: o.tau, format: d.format, width: d.width, height: d.height,
        estimator: o.estimator, reference: quality.reference.manifest.id, extractor: quality.extractor.id,
      });
    quality.dispose();
    for (const row of rows) {
      if (o.json) console.log(JSON.stringify(row));
      else if ('error' in row) console.log(`${row.file}\terror ${row.error.code}: ${row.error.message}`);
      else {
        console.log(`${row.file}\tQ=${row.q.toFixed(3)} ${row.pass ? 'PASS' : 'FAIL'} (τ=${row.tau})\tnoise=${row.noise.toFixed(4)} [${row.noiseNorm.toFixed(2)}]\tdistance=${row.distance.toFixed(3)} [${row.distanceNorm.toFixed(2)}]\trealism=${row.realism.toFixed(2)}`);
      }
    }
    if (rows.some((r) => 'error' in r)) process.exitCode = 2;
    else if (o.gate && rows.some((r) => !('error' in r) && !r.pass)) process.exitCode = 1;
  });

await runCli(program);
