import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { startApp, type Running } from './server-fixture.ts';

let s: Running;
before(async () => {
  s = await startApp({ QGATE_WEB_DIR: path.join(import.meta.dirname, 'no-such-web-dir') });
});
after(async () => {
  await s.close();
});

type History = { generator: string; version: string; available: boolean; lines: Array<{ type?: string; step: number }>; thinned: number; skipped: number };
const history = async (p: string) => {
  const res = await fetch(`${s.base}/v1/generators/${p}/metrics`);
  return { status: res.status, body: (await res.json()) as History & { error?: { code: string } } };
};

test('Should say which backend, models, gate and limits serve in /v1/status', async () => {
  const res = await fetch(`${s.base}/v1/status`);
  assert.equal(res.status, 200);
  const st = (await res.json()) as {
    state: string; ready: boolean; backend: { name: string; tfBackend: string; reason: string };
    gate: { tau: number; alpha: number; beta: number; noiseEstimator: string; calibration: { noise: { lo: number; hi: number }; distance: { lo: number; hi: number } } };
    models: { extractor: { id: string; input: { width: number; height: number } }; reference: { id: string; count: number }; generators: Array<{ name: string; active: string; loaded: string[] }> };
    limits: { maxUploadBytes: number; generateMaxN: number };
  };
  assert.deepEqual([st.state, st.ready], ['serving', true]);
  assert.deepEqual([st.backend.name, st.backend.tfBackend], ['wasm', 'wasm']);
  assert.deepEqual([st.gate.tau, st.gate.alpha, st.gate.beta, st.gate.noiseEstimator], [0.3, 0.5, 0.5, 'structure']);
  assert.ok(st.gate.calibration.noise.hi > st.gate.calibration.noise.lo);
  assert.ok(st.gate.calibration.distance.hi > st.gate.calibration.distance.lo);
  assert.equal(st.models.extractor.id, 'random-lenet');
  assert.deepEqual([st.models.extractor.input.width, st.models.extractor.input.height], [28, 28]);
  assert.deepEqual([st.models.reference.id, st.models.reference.count], ['test-ref', 100]);
  assert.deepEqual(st.models.generators, [{ name: 'tiny', active: '0001', pinned: null, loaded: ['0001'] }]);
  assert.deepEqual([st.limits.maxUploadBytes, st.limits.generateMaxN], [256 * 1024, 64]);
});

test("Should return a version's metrics.jsonl as published, and an empty history without one", async () => {
  const none = await history('tiny/0001');
  assert.equal(none.status, 200);
  assert.deepEqual(none.body, { generator: 'tiny', version: '0001', available: false, lines: [], thinned: 0, skipped: 0 });

  const lines = [
    { step: 50, epoch: 0.1, lossD: 1.3, lossG: 0.9, lossGan: 0.8, q: 0.5, noise: 0.1, distance: 0.6, stepMs: 95 },
    { type: 'fid', step: 500, epoch: 1, samples: 500, fid: 40, meanQ: 0.3, precision: 0.5, recall: 0.4 },
    { type: 'eval', step: 500, samples: 2000, fid: 30, passRate: 0.8 },
  ];
  // A partial last line (a run still writing) is skipped, not an error.
  await writeFile(path.join(s.registryDir, 'tiny', '0001', 'metrics.jsonl'), lines.map((l) => JSON.stringify(l)).join('\n') + '\n{"step": 5');
  const some = await history('tiny/0001');
  assert.equal(some.status, 200);
  assert.equal(some.body.available, true);
  assert.deepEqual(some.body.lines, lines);
  assert.equal(some.body.skipped, 1);
});

test('Should thin a long history evenly, keeping every fid/eval line and the last step', async () => {
  const steps = Array.from({ length: 4500 }, (_, i) => ({ step: (i + 1) * 10, lossD: 1, lossG: 1, q: 0.5 }));
  const evalLine = { type: 'eval', step: 45000, fid: 12 };
  await writeFile(path.join(s.registryDir, 'tiny', '0001', 'metrics.jsonl'), [...steps, evalLine].map((l) => JSON.stringify(l)).join('\n') + '\n');
  const { body } = await history('tiny/0001');
  const kept = body.lines.filter((l) => l.type === undefined);
  assert.ok(kept.length <= 2000 && kept.length >= 1400, `kept ${kept.length}`);
  assert.equal(kept.at(-1)!.step, 45000);
  assert.equal(body.lines.filter((l) => l.type === 'eval').length, 1);
  assert.equal(body.thinned, 4500 - kept.length);
});

test('Should answer NOT_FOUND for an unknown generator or version and INVALID_ARGUMENT for a bad name', async () => {
  assert.equal((await history('tiny/0009')).body.error?.code, 'NOT_FOUND');
  assert.equal((await history('nope/0001')).body.error?.code, 'NOT_FOUND');
  const bad = await history('tiny/..%2F..%2Fetc');
  assert.deepEqual([bad.status, bad.body.error?.code], [400, 'INVALID_ARGUMENT']);
  const upper = await history('Tiny/0001');
  assert.deepEqual([upper.status, upper.body.error?.code], [400, 'INVALID_ARGUMENT']);
});

test('Should answer / with NOT_FOUND and how to build it when the web page is not built', async () => {
  const res = await fetch(`${s.base}/`);
  assert.equal(res.status, 404);
  const body = (await res.json()) as { error: { code: string; message: string } };
  assert.equal(body.error.code, 'NOT_FOUND');
  assert.match(body.error.message, /npm run build/);
});
