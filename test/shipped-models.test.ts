import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '../src/backend/index.ts';
import { loadLayersModel } from '../src/backend/model-io.ts';
import { loadConfig } from '../src/config.ts';
import { encodePng } from '../src/data/images.ts';
import { loadMnist } from '../src/data/mnist.ts';
import { loadQuality } from '../src/quality/index.ts';
import { uniformNoiseImages } from '../src/quality/reference.ts';
import { evaluateAccuracy } from '../src/train/features.ts';

await initBackend('wasm');
const config = loadConfig({});
const run = promisify(execFile);

test('The shipped extractor classifies the MNIST test set with at least 99% accuracy', async () => {
  const quality = await loadQuality(config);
  assert.ok(Number(quality.extractor.manifest.testAccuracy) >= 0.99, 'the manifest claims ≥ 99%');
  const testSet = loadMnist('test');
  // Re-measured here with the whole classifier (the extractor only wraps its trunk).
  const model = await loadLayersModel(config.extractorDir);
  const accuracy = evaluateAccuracy(model, testSet.images, testSet.labels, testSet.count);
  model.dispose();
  assert.ok(accuracy >= 0.99, `accuracy ${accuracy}`);
  assert.equal(quality.reference.manifest.extractor.id, quality.extractor.id);
  quality.dispose();
});

test('The shipped quality model passes real digits and fails pure noise', async () => {
  const quality = await loadQuality(config);
  const digits = loadMnist('test', { limit: 200 });
  const before = tf.memory().numTensors;
  const clean = tf.tensor4d(digits.images, [200, 28, 28, 1]);
  const noise = tf.tensor4d(uniformNoiseImages(200, [28, 28, 1], 5), [200, 28, 28, 1]);
  const cleanScores = await quality.score(clean);
  const noiseScores = await quality.score(noise);
  tf.dispose([clean, noise]);
  assert.equal(tf.memory().numTensors, before, 'scoring leaks no tensors');
  const passRate = (s: { pass: boolean }[]) => s.filter((x) => x.pass).length / s.length;
  assert.ok(passRate(cleanScores) >= 0.9, `clean pass rate ${passRate(cleanScores)}`);
  assert.equal(passRate(noiseScores), 0);
  quality.dispose();
});

test('npm run score prints one JSON line per image, with an error line for a bad file', async () => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'qgate-cli-'));
  try {
    const digit = loadMnist('test', { limit: 1 });
    await writeFile(path.join(dir, 'digit.png'), await encodePng(digit.images, 28, 28, 1));
    await writeFile(path.join(dir, 'noise.png'), await encodePng(uniformNoiseImages(1, [56, 56, 1], 9), 56, 56, 1));
    await writeFile(path.join(dir, 'broken.png'), Buffer.from('not an image'));
    const files = ['digit.png', 'noise.png', 'broken.png'].map((f) => path.join(dir, f));
    const result = await run(process.execPath, ['--import', 'tsx', 'src/cli/score.ts', '--json', '--tau', '0.3', ...files], {
      env: { ...process.env, QGATE_BACKEND: 'wasm', QGATE_LOG_LEVEL: 'error' },
    }).then(() => ({ code: 0, stdout: '' }), (e: { code: number; stdout: string }) => e);
    assert.equal(result.code, 2, 'a file that cannot be scored makes the exit status 2');
    const rows = result.stdout.trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
    assert.equal(rows.length, 3);
    const [d, n, b] = rows as [Record<string, unknown>, Record<string, unknown>, Record<string, unknown>];
    for (const key of ['file', 'q', 'pass', 'tau', 'noise', 'noiseNorm', 'distance', 'distanceNorm', 'realism', 'format', 'width', 'height']) {
      assert.ok(key in d, `missing ${key}`);
    }
    assert.equal(d.pass, true);
    assert.equal(n.pass, false);
    assert.equal(n.width, 56);
    assert.deepEqual((b.error as { code: string }).code, 'IMAGE_UNDECODABLE');
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
