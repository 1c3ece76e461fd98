/**
 * Fault tests for the generator registry: a version written file by file (half-written, then
 * completed), a trainer killed in the middle of an atomic publish, and the registry folder removed
 * while serving. The app must keep serving what it has loaded, count what failed, never load a
 * temporary folder, and never crash. (A broken version renamed into place atomically is covered in
 * server-lifecycle.test.ts.)
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { copyFile, mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { eventually, metricValue, publishGenerator, startApp, type Running } from './server-fixture.ts';

async function metric(s: Running, series: string): Promise<number | undefined> {
  return metricValue(await (await fetch(`${s.base}/metrics`)).text(), series);
}

async function listing(s: Running, name = 'tiny'): Promise<{ active: string | null; versions: Array<{ version: string; state: string }> }> {
  return (await fetch(`${s.base}/v1/generators/${name}`)).json() as Promise<{ active: string | null; versions: Array<{ version: string; state: string }> }>;
}

async function generatedVersion(s: Running, query = ''): Promise<string | null> {
  const res = await fetch(`${s.base}/generate?n=1&format=json${query}`);
  assert.equal(res.status, 200, await res.clone().text());
  return res.headers.get('x-qgate-version');
}

test('Should keep serving the old version while a new one is half-written, count the failure, and load it once complete', async () => {
  const s = await startApp();
  const staging = await mkdtemp(path.join(os.tmpdir(), 'qgate-staging-'));
  try {
    await publishGenerator(staging, 'tiny', '0002', 2);
    const from = path.join(staging, 'tiny', '0002');
    const to = path.join(s.registryDir, 'tiny', '0002');
    // A careless publisher copying file by file: the folder appears with no weights yet.
    await mkdir(to);
    await copyFile(path.join(from, 'manifest.json'), path.join(to, 'manifest.json'));
    await copyFile(path.join(from, 'model.json'), path.join(to, 'model.json'));
    await eventually(async () => (await metric(s, 'qgate_model_reloads_total{result="failure"}')) === 1, 10_000, 'the failed load to be counted');
    assert.equal((await listing(s)).active, '0001');
    assert.equal(await generatedVersion(s), '0001', 'the old version keeps serving');
    assert.equal((await fetch(`${s.base}/readyz`)).status, 200);
    // The last file lands: the folder's signature changes, so the version is tried again and swapped in.
    await copyFile(path.join(from, 'weights.bin'), path.join(to, 'weights.bin'));
    await eventually(async () => (await listing(s)).active === '0002', 10_000, 'the completed version to be served');
    assert.equal(await generatedVersion(s), '0002');
    assert.equal(await metric(s, 'qgate_model_reloads_total{result="failure"}'), 1);
  } finally {
    await s.close();
    await rm(staging, { recursive: true, force: true });
  }
});

async function copyVersion(from: string, to: string): Promise<void> {
  await mkdir(to, { recursive: true });
  for (const f of ['manifest.json', 'model.json', 'weights.bin']) await copyFile(path.join(from, f), path.join(to, f));
}

/** A child process that publishes with writeDirAtomically and hangs inside `fill` until killed. */
const PUBLISHER = `
import { copyFile } from 'node:fs/promises';
import path from 'node:path';
import { writeDirAtomically } from ${JSON.stringify(fileURLToPath(new URL('../src/atomic-dir.ts', import.meta.url)))};
const [from, to] = process.argv.slice(2);
setInterval(() => undefined, 1000);
await writeDirAtomically(to, async (tmp) => {
  for (const f of ['manifest.json', 'model.json', 'weights.bin']) await copyFile(path.join(from, f), path.join(tmp, f));
  console.log('written, not renamed');
  await new Promise(() => undefined);
});
`;

test('Should never load the temporary folder a trainer killed mid-publish leaves behind', async () => {
  const s = await startApp();
  const staging = await mkdtemp(path.join(os.tmpdir(), 'qgate-staging-'));
  try {
    await publishGenerator(staging, 'tiny', '0009', 9);
    const script = path.join(staging, 'publish.mts');
    await writeFile(script, PUBLISHER);
    const child = spawn(process.execPath, ['--import', 'tsx', script, path.join(staging, 'tiny', '0009'), path.join(s.registryDir, 'tiny', '0009')], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.on('data', (b: Buffer) => (out += b.toString()));
    await eventually(() => out.includes('written'), 30_000, 'the publisher to write its files');
    child.kill('SIGKILL');
    await new Promise((r) => child.once('exit', r));
    const left = (await readdir(path.join(s.registryDir, 'tiny'))).filter((n) => n.startsWith('.'));
    assert.equal(left.length, 1, 'the killed publisher left its temporary folder');
    assert.match(left[0]!, /^\.0009\.tmp-\d+-\d+$/);
    // Also a complete, valid model under a `.tmp-*` name, at both levels of the registry.
    const valid = path.join(staging, 'tiny', '0009');
    await copyVersion(valid, path.join(s.registryDir, 'tiny', '.tmp-0010'));
    await copyVersion(valid, path.join(s.registryDir, '.tmp-gen', '0001'));
    const successes = await metric(s, 'qgate_model_reloads_total{result="success"}');
    await s.app.service.registry.rescan();
    await new Promise((r) => setTimeout(r, 600)); // a few periodic rescans and watcher events
    const info = await listing(s);
    assert.deepEqual(info.versions.map((v) => v.version), ['0001'], 'temporary folders are not versions');
    assert.equal(info.active, '0001');
    assert.deepEqual(((await (await fetch(`${s.base}/v1/generators`)).json()) as { generators: Array<{ name: string }> }).generators.map((g) => g.name), ['tiny']);
    assert.equal(await metric(s, 'qgate_model_reloads_total{result="success"}'), successes, 'nothing was loaded');
    assert.equal(await metric(s, 'qgate_model_reloads_total{result="failure"}'), undefined, 'nothing was tried');
    assert.equal((await fetch(`${s.base}/generate?n=1&version=.0009.tmp-1-1`)).status, 400, 'nor can a request name one');
    assert.equal(await generatedVersion(s), '0001');
  } finally {
    await s.close();
    await rm(staging, { recursive: true, force: true });
  }
});

for (const [mode, env] of [['the periodic rescan', {}], ['fs.watch alone', { QGATE_REGISTRY_RESCAN_MS: '0' }]] as const) {
test(`Should keep serving loaded generators and stay ready when the registry folder is removed, and find it again through ${mode} when it returns`, async () => {
  const s = await startApp(env);
  try {
    await publishGenerator(s.registryDir, 'tiny', '0002', 2);
    await eventually(async () => (await listing(s)).active === '0002', 10_000, '0002 to be served');
    await rm(s.registryDir, { recursive: true, force: true });
    await new Promise((r) => setTimeout(r, 800)); // several rescans and the watchers' events
    assert.equal(await generatedVersion(s), '0002', 'the loaded version keeps serving');
    assert.equal((await fetch(`${s.base}/readyz`)).status, 200, 'readiness stays: what is loaded still serves');
    assert.equal((await listing(s)).active, '0002');
    // A version that was never loaded cannot be loaded from a folder that is gone: NOT_FOUND, not 500.
    assert.equal((await fetch(`${s.base}/generate?n=1&version=0001`)).status, 404);
    assert.equal(await metric(s, 'qgate_model_reloads_total{result="failure"}'), undefined, 'a missing folder is not a failed load');
    // The folder comes back with a newer version.
    await publishGenerator(s.registryDir, 'tiny', '0003', 3);
    await eventually(async () => (await listing(s)).active === '0003', 10_000, 'the restored registry to be scanned');
    assert.equal(await generatedVersion(s), '0003');
  } finally {
    await s.close();
  }
});
}
