import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { Registry } from 'prom-client';
import { loadConfig } from '../src/config.ts';
import { ErrorCodes, QgateError, stacklessError } from '../src/errors.ts';
import type { Generator } from '../src/generator/index.ts';
import { GENERATOR_FORMAT, validateName } from '../src/generator/manifest.ts';
import { admissionRefusal, expectedWaitMs, ServiceTimeEstimator } from '../src/server/admission.ts';
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
  // After a batch the batcher lets the event loop turn once before forming the next one.
  await new Promise((r) => setImmediate(r));
  // 4 leave at once as a full batch, 6 fill the queue, the 11th is refused.
  const many = Array.from({ length: 11 }, (_, i) => b.submit(i).then(() => 'ok', (e: QgateError) => e.code));
  const codes = await Promise.all(many);
  assert.deepEqual(codes, [...Array(10).fill('ok'), 'OVERLOADED']);
  const ac = new AbortController();
  const slow = new DynamicBatcher<number, number>({ maxBatchSize: 10, maxQueueDelayMs: 1000, maxQueue: 10, run: async (i) => i });
  const pending = slow.submit(1, { signal: ac.signal });
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

test('Admission refuses by count, by expected wait and by deadline, from a measured per-item time', () => {
  const base = { admitted: 0, maxAdmitted: 288, perItemMs: undefined as number | undefined, maxWaitMs: 1000, now: 10_000 };
  // Before any batch is measured only the count bound applies.
  assert.equal(admissionRefusal({ ...base, admitted: 287 }), undefined);
  assert.equal(admissionRefusal({ ...base, admitted: 288 })?.reason, 'queue_full');
  // 4 ms an item: 249 ahead + this one = 1000 ms is admitted, 250 ahead (1004 ms) is not.
  assert.equal(expectedWaitMs(249, 4), 1000);
  assert.equal(admissionRefusal({ ...base, perItemMs: 4, admitted: 249 }), undefined);
  const wait = admissionRefusal({ ...base, perItemMs: 4, admitted: 250 });
  assert.equal(wait?.reason, 'wait');
  assert.equal(wait?.error.code, 'OVERLOADED');
  assert.match(wait!.error.message, /QGATE_MAX_QUEUE_WAIT_MS/);
  // A gRPC call with 100 ms left is refused when 25 items (100 ms) would be served before it, not with 24.
  assert.equal(admissionRefusal({ ...base, perItemMs: 4, admitted: 23, deadline: 10_100 }), undefined);
  assert.equal(admissionRefusal({ ...base, perItemMs: 4, admitted: 24, deadline: 10_100 })?.reason, 'deadline');
  assert.equal(admissionRefusal({ ...base, perItemMs: 4, admitted: 0, deadline: 9_999 })?.reason, 'deadline', 'a deadline already past');
  // Every refusal is OVERLOADED, so 503 + Retry-After / RESOURCE_EXHAUSTED.
  for (const r of [admissionRefusal({ ...base, admitted: 288 }), wait]) assert.equal(ERROR_STATUS[r!.error.code].http, 503);
  // Refusals are routine answers: no stack trace is captured for them.
  assert.ok(wait!.error instanceof QgateError);
  assert.doesNotMatch(wait!.error.stack ?? '', /\n\s+at /);
});

test('A stackless error is a QgateError without a stack trace, and leaves Error.stackTraceLimit as it was', () => {
  const before = Error.stackTraceLimit;
  const e = stacklessError('OVERLOADED', 'retry later');
  assert.ok(e instanceof QgateError);
  assert.equal(e.code, 'OVERLOADED');
  assert.equal(e.message, 'retry later');
  assert.equal(e.name, 'QgateError');
  assert.doesNotMatch(e.stack ?? '', /\n\s+at /);
  assert.equal(Error.stackTraceLimit, before);
  assert.match(new QgateError('INTERNAL', 'a bug').stack ?? '', /\n\s+at /, 'other errors keep their stack');
});

test('The service-time estimator averages cycle time per item over batches of at least half size', () => {
  const e = new ServiceTimeEstimator(16, 0.5);
  assert.equal(e.perItemMs, undefined);
  e.observe(4, 40); // a small batch: its fixed cost would overstate the per-item time
  assert.equal(e.perItemMs, undefined);
  e.observe(32, 64);
  assert.equal(e.perItemMs, 2);
  assert.equal(e.perBatchMs, 64);
  e.observe(16, 64); // 4 ms an item: the mean moves half way
  assert.equal(e.perItemMs, 3);
  assert.equal(e.perBatchMs, 64);
});

test('The batcher drops queued items past their wait limit or deadline with OVERLOADED, and measures its batches', async () => {
  let clock = 1000;
  const gates: Array<() => void> = [];
  const estimator = new ServiceTimeEstimator(2);
  const batches: number[][] = [];
  const b = new DynamicBatcher<number, number>({
    maxBatchSize: 2, maxQueueDelayMs: 1, maxQueue: 10, estimator, now: () => clock,
    run: (items) => new Promise((resolve) => {
      batches.push(items);
      gates.push(() => resolve(items));
    }),
  });
  // Lets the batcher's turn of the event loop and its 1 ms fill timer pass (no timing is asserted).
  const settle = () => new Promise((r) => setTimeout(r, 20));
  const results = [
    b.submit(1), b.submit(2), // the first batch, run at once
    b.submit(3, { expiresAt: 1500 }), // waits past its limit
    b.submit(4, { deadline: 1600 }), // one batch (measured 200 ms) from 1500 would end past its deadline
    b.submit(5, { expiresAt: 5000, deadline: 5000 }),
  ].map((p) => p.then((v) => `ok ${v}`, (e: QgateError) => e.code));
  assert.equal(b.depth, 3);
  clock = 1200; // the first batch took 200 ms
  gates.shift()!();
  await settle();
  await settle();
  assert.equal(estimator.perBatchMs, 200);
  assert.equal(estimator.perItemMs, 100);
  // The next batch was formed at 1200: nothing had expired yet, so 3 and 4 run.
  assert.deepEqual(batches, [[1, 2], [3, 4]]);
  clock = 1500;
  gates.shift()!();
  await settle();
  await settle();
  // At 1500 item 5 is still within both limits.
  assert.deepEqual(batches.at(-1), [5]);
  gates.shift()!();
  assert.deepEqual(await Promise.all(results), ['ok 1', 'ok 2', 'ok 3', 'ok 4', 'ok 5']);
  await settle();

  // Now with the queue held back by a running batch: expired items never reach the model.
  const held = b.submit(10).then(String);
  const blocked = b.submit(11).then(String);
  const late = [b.submit(12, { expiresAt: 1600 }), b.submit(13, { deadline: 1700 }), b.submit(14, { deadline: 1900 })]
    .map((p) => p.then((v) => `ok ${v}`, (e: QgateError) => e.code));
  clock = 1650; // 12's wait limit passed; 13's deadline is 50 ms away, less than a batch (about 200 ms)
  gates.shift()!();
  await settle();
  await settle();
  assert.deepEqual(batches.at(-1), [14], 'only the item that can still make it is run');
  gates.shift()!();
  assert.deepEqual(await Promise.all([held, blocked, ...late]), ['10', '11', 'OVERLOADED', 'OVERLOADED', 'ok 14']);
  assert.equal(b.depth, 0);
});
