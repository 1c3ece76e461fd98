import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { saveLayersModel } from '../src/backend/model-io.ts';
import { loadMnist } from '../src/data/mnist.ts';
import { buildLeNet, extractorFromModel, LENET_FEATURE_LAYER } from '../src/quality/extractor.ts';
import { buildReference, saveReference } from '../src/quality/reference.ts';
import { eventually, publishGenerator } from './server-fixture.ts';

/** A models folder with an untrained extractor, a small reference set and one tiny generator. */
async function tinyModels(dir: string): Promise<void> {
  const manifest = { id: 'random-lenet', architecture: 'untrained', featureLayer: LENET_FEATURE_LAYER, input: { height: 28, width: 28, channels: 1 as const, range: [0, 1] as [number, number] } };
  const model = buildLeNet(7);
  await saveLayersModel(model, path.join(dir, 'features', 'lenet-mnist'), { 'manifest.json': manifest });
  const extractor = extractorFromModel(model, manifest, 'test');
  const digits = loadMnist('train', { limit: 60 });
  await saveReference(path.join(dir, 'reference', 'mnist'), buildReference(extractor, digits.images, [28, 28, 1], 60, { id: 'tiny', k: 3, dataSpec: 'mnist:train', noiseImages: 10 }));
  extractor.dispose();
  await publishGenerator(path.join(dir, 'generators'), 'tiny', '0001');
}

test('npm start builds and serves the web page, and on SIGTERM finishes in-flight requests and exits 0', async () => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'qgate-process-'));
  try {
    await tinyModels(dir);
    const child = spawn('npm', ['start'], {
      env: { ...process.env, QGATE_MODELS_DIR: dir, QGATE_BACKEND: 'wasm', QGATE_HOST: '127.0.0.1', QGATE_HTTP_PORT: '0', QGATE_GRPC_PORT: '0', QGATE_LOG_LEVEL: 'info' },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    let log = '';
    child.stderr.on('data', (b: Buffer) => (log += b.toString()));
    await eventually(() => /"httpPort":\d+/.test(log), 60_000, 'the service to listen');
    const port = Number(/"httpPort":(\d+)/.exec(log)![1]);
    const base = `http://127.0.0.1:${port}`;
    await eventually(async () => (await fetch(`${base}/readyz`).catch(() => undefined))?.status === 200, 60_000, 'readiness');
    // prestart built the web page from this checkout's sources: npm start serves it at /.
    const page = await fetch(`${base}/`);
    assert.equal(page.status, 200);
    assert.match(await page.text(), /<script type="module" src="\/assets\/app-\w+\.js">/);
    // About 5,000 samples (n × 20 attempts): long enough to be in flight when SIGTERM arrives.
    const inFlight = fetch(`${base}/generate?n=256&tau=0.001&seed=1`);
    await new Promise((r) => setTimeout(r, 300));
    child.kill('SIGTERM');
    const res = await inFlight;
    assert.equal(res.status, 200, 'the in-flight request completes');
    assert.equal(res.headers.get('x-qgate-attempts'), String(256 * 20), 'all of it, not cut short');
    assert.equal(await exited, 0);
    assert.match(log, /"msg":"stopped"/);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
