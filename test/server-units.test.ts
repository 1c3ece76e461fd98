import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { Registry } from 'prom-client';
import { loadConfig } from '../src/config.ts';
import { ErrorCodes, QgateError } from '../src/errors.ts';
import type { Generator } from '../src/generator/index.ts';
import { GENERATOR_FORMAT, validateName } from '../src/generator/manifest.ts';
import { DynamicBatcher } from '../src/server/batcher.ts';
import { ERROR_STATUS } from '../src/server/errors.ts';
import { createMetrics } from '../src/server/metrics.ts';
import { compareVersions, GeneratorRegistry } from '../src/server/registry.ts';
import { silentLog } from './server-fixture.ts';

test('Every error code maps to a 4xx/5xx HTTP status and a gRPC status', () => {
  for (const code of Object.values(ErrorCodes)) {
    const s = ERROR_STATUS[code];
    assert.ok(s.http >= 400 && s.http < 600, code);
    assert.ok(s.grpc > 0, code);
  }
});

test('The dynamic batcher groups concurrent items, keeps order, and refuses past its bound', async () => {
  const batches: number[][] = [];
  const b = new DynamicBatcher<number, number>({
    maxBatchSize: 4, maxQueueDelayMs: 20, maxQueue: 6,
    run: async (items) => {
      batches.push(items);
      return items.map((x) => x * 10);
    },
  });
  const results = await Promise.all([1, 2, 3, 4, 5].map((x) => b.submit(x)));
  assert.deepEqual(results, [10, 20, 30, 40, 50]);
  assert.deepEqual(batches, [[1, 2, 3, 4], [5]]);
  // 4 leave at once as a full batch, 6 fill the queue, the 11th is refused.
  const many = Array.from({ length: 11 }, (_, i) => b.submit(i).then(() => 'ok', (e: QgateError) => e.code));
  const codes = await Promise.all(many);
  assert.deepEqual(codes, [...Array(10).fill('ok'), 'OVERLOADED']);
  const ac = new AbortController();
  const slow = new DynamicBatcher<number, number>({ maxBatchSize: 10, maxQueueDelayMs: 1000, maxQueue: 10, run: async (i) => i });
  const pending = slow.submit(1, ac.signal);
  ac.abort(new QgateError('DEADLINE_EXCEEDED', 'late'));
  await assert.rejects(pending, { code: 'DEADLINE_EXCEEDED' });
  assert.equal(slow.depth, 0, 'an aborted item leaves the queue');
});

test('Versions sort naturally and names that could escape the folder are refused', () => {
  assert.deepEqual(['10', '9', '0002', '0001', '1.10', '1.9'].sort(compareVersions), ['0001', '1.9', '1.10', '0002', '9', '10']);
  for (const bad of ['..', '../x', 'a/b', '.hidden', 'A', '', 'x'.repeat(65), 'a..b', 'a\0b', 'https://x']) {
    assert.throws(() => validateName('generator', bad), { code: 'INVALID_ARGUMENT' }, bad);
  }
  assert.equal(validateName('version', '0001'), '0001');
});

test('The service configuration has typed defaults and refuses bad values by name', () => {
  const c = loadConfig({}).service;
  assert.equal(c.httpPort, 8080);
  assert.equal(c.grpcPort, 50051);
  assert.equal(c.maxUploadBytes, 10 * 1024 * 1024);
  assert.equal(c.maxPixels, 4096 * 4096);
  assert.equal(c.adminToken, undefined);
  assert.deepEqual(loadConfig({ QGATE_PIN: 'a=0001, b=2' }).service.pins, { a: '0001', b: '2' });
  for (const [k, v] of [['QGATE_HTTP_PORT', '70000'], ['QGATE_MAX_QUEUE', '0'], ['QGATE_MAX_BATCH_SIZE', '1.5'], ['QGATE_PIN', 'a=../b'],
    ['QGATE_REGISTRY_WATCH', 'maybe'], ['QGATE_ADMIN_TOKEN', 'short'], ['QGATE_DEFAULT_GENERATOR', '../x']] as const) {
    assert.throws(() => loadConfig({ [k]: v }), (e: QgateError) => e.code === 'INVALID_ARGUMENT' && e.message.includes(k), k);
  }
});

function fakeGenerator(version: string, disposed: string[]): Generator {
  return {
    manifest: { format: GENERATOR_FORMAT, name: 'g', version, architecture: 'fake', latentSize: 2, imageShape: [28, 28, 1], outputRange: [-1, 1], createdAt: 'now' },
    sample: (z) => tf.zeros([z.shape[0], 28, 28, 1]),
    latent: (n) => tf.zeros([n, 2]),
    dispose: () => disposed.push(version),
  };
}

test('A swapped-out version is disposed only after its in-flight requests release it', async () => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'qgate-registry-'));
  const disposed: string[] = [];
  const registry = new GeneratorRegistry({
    dir, pins: {}, defaultGenerator: '', watch: false, rescanMs: 0, log: silentLog,
    metrics: createMetrics(new Registry(), { defaultMetrics: false }),
    load: async (d) => fakeGenerator(path.basename(d), disposed),
  });
  try {
    await mkdir(path.join(dir, 'g', '0001'), { recursive: true });
    await registry.start();
    const lease = await registry.acquire();
    assert.equal(lease.version, '0001');
    await mkdir(path.join(dir, 'g', '0002'));
    await registry.rescan();
    assert.equal((await registry.acquire()).version, '0002');
    assert.deepEqual(disposed, [], 'still in use by the first lease');
    lease.release();
    lease.release(); // idempotent
    assert.deepEqual(disposed, ['0001']);
  } finally {
    await registry.stop();
    await rm(dir, { recursive: true, force: true });
  }
});
