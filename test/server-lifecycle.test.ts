import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, rename, writeFile } from 'node:fs/promises';
import path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { create } from '../src/server/app.ts';
import { loadConfig } from '../src/config.ts';
import type { Quality } from '../src/quality/index.ts';
import { digitPng, eventually, metricValue, publishGenerator, silentLog, startApp, testQuality } from './server-fixture.ts';

async function metrics(base: string): Promise<string> {
  return (await fetch(`${base}/metrics`)).text();
}

async function active(base: string): Promise<string | null> {
  return ((await (await fetch(`${base}/v1/generators/tiny`)).json()) as { active: string | null }).active;
}

test('Should hot-swap a newly published version, and keep serving when a broken one appears', async () => {
  const s = await startApp();
  try {
    await publishGenerator(s.registryDir, 'tiny', '0002', 2);
    await eventually(async () => (await active(s.base)) === '0002', 15_000, 'version 0002 to be served');
    const res = await fetch(`${s.base}/generate?n=1&format=json`);
    assert.equal(res.headers.get('x-qgate-version'), '0002');
    // The older version still serves requests that ask for it.
    assert.equal((await fetch(`${s.base}/generate?n=1&version=0001`)).headers.get('x-qgate-version'), '0001');
    let text = await metrics(s.base);
    assert.equal(metricValue(text, 'qgate_model_info{kind="generator",name="tiny",version="0002"}'), 1);
    assert.equal(metricValue(text, 'qgate_model_info{kind="generator",name="tiny",version="0001"}'), undefined);

    // A broken version, published atomically (a temp folder renamed into place).
    const tmp = path.join(s.registryDir, 'tiny', '.0003.tmp');
    await mkdir(tmp);
    await writeFile(path.join(tmp, 'manifest.json'), JSON.stringify({ format: 'qgate-generator/1', latentSize: 8, imageShape: [28, 28, 1], outputRange: [-1, 1], architecture: 'x', createdAt: 'now' }));
    await writeFile(path.join(tmp, 'model.json'), '{"modelTopology": {"this is": "not a model"}, "weightsManifest": []}');
    await rename(tmp, path.join(s.registryDir, 'tiny', '0003'));
    await eventually(async () => metricValue(await metrics(s.base), 'qgate_model_reloads_total{result="failure"}') === 1, 15_000, 'the failure to be counted');
    assert.equal(await active(s.base), '0002');
    const generated = await fetch(`${s.base}/generate?n=2`);
    assert.equal(generated.status, 200);
    assert.equal(generated.headers.get('x-qgate-version'), '0002');
    const info = (await (await fetch(`${s.base}/v1/generators/tiny`)).json()) as { versions: Array<{ version: string; state: string; error?: { code: string } }> };
    assert.deepEqual(info.versions.map((v) => [v.version, v.state]), [['0003', 'failed'], ['0002', 'active'], ['0001', 'loaded']]);
    assert.equal(info.versions[0]!.error!.code, 'MODEL_INVALID');
    // Asking for the broken version is NOT_FOUND, not a 500.
    assert.equal((await fetch(`${s.base}/generate?n=1&version=0003`)).status, 404);
    // Several rescans later it is still counted once: it is skipped until its files change.
    await new Promise((r) => setTimeout(r, 700));
    text = await metrics(s.base);
    assert.equal(metricValue(text, 'qgate_model_reloads_total{result="failure"}'), 1);
  } finally {
    await s.close();
  }
});

test('Should pick up a new version and a new generator through fs.watch alone', async () => {
  const s = await startApp({ QGATE_REGISTRY_RESCAN_MS: '0' });
  try {
    await publishGenerator(s.registryDir, 'tiny', '0002', 2);
    await eventually(async () => (await active(s.base)) === '0002', 10_000, 'the watcher to find 0002');
    await publishGenerator(s.registryDir, 'other', '1', 3);
    await eventually(async () => (await fetch(`${s.base}/generate?n=1&generator=other`)).status === 200, 10_000, 'the watcher to find a new generator');
  } finally {
    await s.close();
  }
});

test('Should serve the version pinned by config, and let an admin with the token re-pin it', async () => {
  const token = 'test-admin-token-0123456789';
  const s = await startApp({ QGATE_PIN: 'tiny=0001', QGATE_ADMIN_TOKEN: token });
  try {
    await publishGenerator(s.registryDir, 'tiny', '0002', 2);
    await fetch(`${s.base}/v1/generators/rescan`, { method: 'POST', headers: { authorization: `Bearer ${token}` } });
    assert.equal(await active(s.base), '0001', 'pinned by QGATE_PIN');
    const listing = (await (await fetch(`${s.base}/v1/generators/tiny`)).json()) as { pinned: string; versions: Array<{ version: string; state: string; manifest?: { version: string } }> };
    assert.equal(listing.pinned, '0001');
    assert.deepEqual(listing.versions.map((v) => [v.version, v.state, v.manifest?.version]), [['0002', 'available', '0002'], ['0001', 'active', '0001']]);
    const wrong = await fetch(`${s.base}/v1/generators/tiny/pin`, { method: 'PUT', body: JSON.stringify({ version: '0002' }), headers: { 'content-type': 'application/json', authorization: 'Bearer nope' } });
    assert.equal(wrong.status, 401);
    const pinned = await fetch(`${s.base}/v1/generators/tiny/pin`, { method: 'PUT', body: JSON.stringify({ version: '0002' }), headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` } });
    assert.equal(pinned.status, 200);
    assert.equal(((await pinned.json()) as { active: string }).active, '0002');
    const missing = await fetch(`${s.base}/v1/generators/tiny/pin`, { method: 'PUT', body: JSON.stringify({ version: '0009' }), headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` } });
    assert.equal(missing.status, 404);
  } finally {
    await s.close();
  }
});

/** The test Quality, with score() held until release() is called. */
function heldQuality(): { quality: Quality; started: Promise<void>; release(): void } {
  const q = testQuality();
  let release!: () => void;
  let markStarted!: () => void;
  const gate = new Promise<void>((r) => (release = r));
  const started = new Promise<void>((r) => (markStarted = r));
  const quality: Quality = {
    ...q,
    score: async (images, tau) => {
      markStarted();
      await gate;
      return q.score(images, tau);
    },
  };
  return { quality, started, release };
}

test('Should answer 503 with Retry-After and RESOURCE_EXHAUSTED when the queue is full', async () => {
  const held = heldQuality();
  const s = await startApp({ QGATE_MAX_QUEUE: '1', QGATE_MAX_BATCH_SIZE: '1', QGATE_MAX_QUEUE_DELAY_MS: '0' }, { quality: held.quality });
  try {
    const png = await digitPng();
    const post = () => fetch(`${s.base}/score`, { method: 'POST', body: new Uint8Array(png), headers: { 'content-type': 'image/png' } });
    const first = post();
    await held.started; // the first image is in the running batch
    const second = post();
    await eventually(async () => metricValue(await metrics(s.base), 'qgate_queue_depth') === 1, 10_000, 'the second image to queue');
    const third = await post();
    assert.equal(third.status, 503);
    assert.equal(third.headers.get('retry-after'), '1');
    assert.equal(((await third.json()) as { error: { code: string } }).error.code, 'OVERLOADED');
    // Refused before Express (refuseScoreEarly), and counted as the handler would count it.
    const m = await metrics(s.base);
    assert.equal(metricValue(m, 'qgate_requests_total{transport="http",method="score",code="OVERLOADED"}'), 1);
    assert.equal(metricValue(m, 'qgate_scoring_shed_total{reason="queue_full"}'), 1);
    const grpcErr = await new Promise<grpc.ServiceError | null>((resolve) => s.client.Score({ image: png }, { deadline: Date.now() + 30_000 }, (e) => resolve(e)));
    assert.equal(grpcErr?.code, grpc.status.RESOURCE_EXHAUSTED);
    // Refused before the call's signal and timers are set up, with the same answer and counters.
    assert.equal(grpcErr.metadata.get('qgate-error-code')[0], 'OVERLOADED');
    assert.equal(grpcErr.metadata.get('retry-after')[0], '1');
    const m2 = await metrics(s.base);
    assert.equal(metricValue(m2, 'qgate_requests_total{transport="grpc",method="Score",code="OVERLOADED"}'), 1);
    assert.equal(metricValue(m2, 'qgate_scoring_shed_total{reason="queue_full"}'), 2);
    // A bad tau is still a bad argument under overload.
    const badTau = await new Promise<grpc.ServiceError | null>((resolve) => s.client.Score({ image: png, tau: 2 }, (e) => resolve(e)));
    assert.equal(badTau?.code, grpc.status.INVALID_ARGUMENT);
    held.release();
    assert.equal((await first).status, 200);
    assert.equal((await second).status, 200);
    assert.equal((await post()).status, 200, 'recovers once the queue drains');
  } finally {
    held.release();
    await s.close();
  }
});

test('Should never refuse an admitted image after its decode: the batcher holds all that admission lets in', async () => {
  // Admission lets in QGATE_MAX_QUEUE + QGATE_MAX_BATCH_SIZE = 3 images. The first waits for its
  // batch to fill (QGATE_MAX_QUEUE_DELAY_MS); when the batcher's own bound was QGATE_MAX_QUEUE (1),
  // the second was admitted, decoded, then refused by the batcher, and not counted as shed.
  const held = heldQuality();
  const s = await startApp({ QGATE_MAX_QUEUE: '1', QGATE_MAX_BATCH_SIZE: '2', QGATE_MAX_QUEUE_DELAY_MS: '1000', QGATE_MAX_QUEUE_WAIT_MS: '10000' }, { quality: held.quality });
  try {
    const png = await digitPng();
    const post = () => fetch(`${s.base}/score`, { method: 'POST', body: new Uint8Array(png), headers: { 'content-type': 'image/png' } });
    const first = post();
    const second = post();
    // Now the two fill one batch, held until released; before, one of them was answered at once.
    await Promise.race([held.started, second, first]);
    held.release();
    assert.equal((await first).status, 200);
    assert.equal((await second).status, 200, 'admitted, so scored');
    const m = await metrics(s.base);
    assert.equal(metricValue(m, 'qgate_requests_total{transport="http",method="score",code="OVERLOADED"}'), undefined);
  } finally {
    held.release();
    await s.close();
  }
});

test('Should answer 503 while starting, then drain in-flight requests on stop', async () => {
  const held = heldQuality();
  const s = await startApp({}, { quality: held.quality });
  const png = await digitPng();
  const inFlight = fetch(`${s.base}/score`, { method: 'POST', body: new Uint8Array(png), headers: { 'content-type': 'image/png' } });
  await held.started;
  const stopped = s.app.stop();
  assert.equal(s.app.service.state, 'draining');
  assert.equal(s.app.service.ready, false);
  const refused = await new Promise<grpc.ServiceError | null>((resolve) => s.client.Score({ image: png }, (e) => resolve(e)));
  assert.equal(refused?.code, grpc.status.UNAVAILABLE);
  held.release();
  const res = await inFlight;
  assert.equal(res.status, 200, 'the in-flight request finishes');
  assert.equal(await stopped, true, 'a clean shutdown');
  await s.close();

  // A fresh app that has not loaded its models yet.
  const config = loadConfig({ QGATE_HOST: '127.0.0.1', QGATE_HTTP_PORT: '0', QGATE_GRPC_PORT: '0', QGATE_MODELS_DIR: '/nonexistent' });
  const app = create(config, { quality: testQuality(), log: silentLog, defaultMetrics: false });
  const { httpPort } = await app.listen();
  try {
    assert.equal((await fetch(`http://127.0.0.1:${httpPort}/healthz`)).status, 200);
    const ready = await fetch(`http://127.0.0.1:${httpPort}/readyz`);
    assert.equal(ready.status, 503);
    const score = await fetch(`http://127.0.0.1:${httpPort}/score`, { method: 'POST', body: new Uint8Array(png), headers: { 'content-type': 'image/png' } });
    assert.equal(score.status, 503);
    assert.equal(((await score.json()) as { error: { code: string } }).error.code, 'UNAVAILABLE');
  } finally {
    await app.stop();
  }
});
