import { test } from 'node:test';
import assert from 'node:assert/strict';
import { stat } from 'node:fs/promises';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '../src/backend/index.ts';
import { loadConfig } from '../src/config.ts';
import { loadGenerator } from '../src/generator/index.ts';
import { loadQuality } from '../src/quality/index.ts';
import { mulberry32 } from '../src/random.ts';

await initBackend('wasm');
const config = loadConfig({});
const dir = path.join(config.service.generatorsDir, 'mlp-gan', '0001');

test('The shipped bootstrap generator describes itself, stays small, and mostly passes the shipped gate', async () => {
  const g = await loadGenerator(dir);
  assert.equal(g.manifest.name, 'mlp-gan');
  assert.equal(g.manifest.version, '0001');
  assert.equal(g.manifest.latentSize, 100);
  assert.deepEqual(g.manifest.imageShape, [28, 28, 1]);
  assert.equal((g.manifest.training as { script: string }).script, 'npm run generator:bootstrap');
  assert.ok((await stat(path.join(dir, 'weights.bin'))).size < 1024 * 1024);
  const quality = await loadQuality(config);
  const images = tf.tidy(() => g.sample(g.latent(256, mulberry32(3))));
  const range = tf.tidy(() => [images.min().dataSync()[0]!, images.max().dataSync()[0]!]);
  assert.ok(range[0]! >= 0 && range[1]! <= 1, `images in [0,1], got ${range}`);
  const scores = await quality.score(images);
  images.dispose();
  const passRate = scores.filter((s) => s.pass).length / scores.length;
  assert.ok(passRate >= 0.8, `pass rate at τ=0.3: ${passRate}`);
  g.dispose();
  quality.dispose();
});
