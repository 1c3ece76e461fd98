import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '../src/backend/index.ts';
import { loadConfig } from '../src/config.ts';
import { loadMnist } from '../src/data/mnist.ts';
import { loadQuality } from '../src/quality/index.ts';
import { ScorePool } from '../src/server/score-pool.ts';
import { uniformNoiseImages } from '../src/quality/reference.ts';

const config = loadConfig({ QGATE_BACKEND: 'wasm' });
await initBackend(config.backend);
const init = { backend: 'wasm' as const, quality: config };

test('Two workers score a batch exactly as the main thread does, and hold no tensors between batches', { timeout: 120_000 }, async () => {
  const quality = await loadQuality(config);
  const pool = await ScorePool.start(init, 2);
  try {
    const digits = loadMnist('test', { limit: 12 }).images;
    const noise = uniformNoiseImages(4, [28, 28, 1], 3);
    const pixels = new Float32Array(digits.length + noise.length);
    pixels.set(digits);
    pixels.set(noise, digits.length);
    const batch = tf.tensor4d(pixels, [16, 28, 28, 1]);
    const expected = await quality.score(batch).finally(() => batch.dispose());
    const before = await pool.tensors();
    // Two batches at once: one lands on each worker.
    const [a, b] = await Promise.all([pool.score(pixels.slice(0, 8 * 784)), pool.score(pixels.slice(8 * 784))]);
    assert.deepEqual([...a!, ...b!], expected);
    assert.ok(expected.slice(0, 12).every((s) => s.pass) && expected.slice(12).every((s) => !s.pass), 'digits pass, noise fails');
    assert.equal(await pool.tensors(), before);
  } finally {
    await pool.close();
    quality.dispose();
  }
});

test('A malformed batch is refused with INVALID_ARGUMENT; a worker that dies fails only its batch and is replaced', { timeout: 120_000 }, async () => {
  const pool = await ScorePool.start(init, 1);
  try {
    await assert.rejects(pool.score(new Float32Array(100)), (e: Error & { code?: string }) => e.code === 'INVALID_ARGUMENT' && /whole 28×28×1 images/.test(e.message));
    const digit = loadMnist('test', { limit: 1 }).images;
    const slot = pool['slots'][0]!;
    const inFlight = pool.score(digit.slice());
    await slot.worker.terminate();
    await assert.rejects(inFlight, (e: Error & { code?: string }) => e.code === 'INTERNAL' || e.code === 'UNAVAILABLE');
    // The replacement loads its models; then scoring works again.
    for (let i = 0; i < 200 && (pool['slots'][0] === slot); i++) await new Promise((r) => setTimeout(r, 100));
    assert.notEqual(pool['slots'][0], slot, 'the dead worker was replaced');
    assert.equal(pool.restarts, 1);
    const [s] = await pool.score(digit.slice());
    assert.ok(s!.pass);
  } finally {
    await pool.close();
  }
  await assert.rejects(pool.score(new Float32Array(784)), (e: Error & { code?: string }) => e.code === 'UNAVAILABLE');
});
