/**
 * The hostile-input corpus (test/hostile/corpus.ts) against a real app, over REST and over gRPC:
 * each case gets its catalogue code (or scores, for the valid oddities), within a few seconds, and
 * a good request succeeds right after it.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import * as grpc from '@grpc/grpc-js';
import { ErrorCodes } from '../src/errors.ts';
import { ERROR_STATUS } from '../src/server/errors.ts';
import { buildCorpus, validPng, type ImageCase } from './hostile/corpus.ts';
import { startApp, type Running } from './server-fixture.ts';

const LIMIT_MS = 5000;
const MAX_UPLOAD = 256 * 1024;
const CATALOGUE = new Set<string>(Object.values(ErrorCodes));

let s: Running;
let corpus: ImageCase[];
let good: Buffer;
before(async () => {
  s = await startApp({ QGATE_MAX_UPLOAD_BYTES: String(MAX_UPLOAD), QGATE_ADMIN_TOKEN: 'hostile-test-token-0123456789' });
  corpus = await buildCorpus(MAX_UPLOAD);
  good = await validPng();
});
after(async () => {
  await s.close();
});

interface RestAnswer { status: number; code: string; text: string; ms: number }

async function rest(url: string, init: RequestInit = {}): Promise<RestAnswer> {
  const t = Date.now();
  const res = await fetch(`${s.base}${url}`, { ...init, signal: AbortSignal.timeout(LIMIT_MS) });
  const text = await res.text();
  const ms = Date.now() - t;
  let code = 'OK';
  if (res.status !== 200) {
    const body = JSON.parse(text) as { error: { code: string; message: string } };
    assert.equal(typeof body.error.message, 'string', text);
    code = body.error.code;
  }
  return { status: res.status, code, text, ms };
}

function multipart(parts: Array<[field: string, bytes: Buffer | string, type?: string]>): FormData {
  const form = new FormData();
  for (const [field, bytes, type] of parts) {
    if (typeof bytes === 'string') form.append(field, bytes);
    else form.append(field, new Blob([new Uint8Array(bytes)], { type: type ?? 'application/octet-stream' }), `${field}.bin`);
  }
  return form;
}

interface GrpcAnswer { status: grpc.status; code: string | undefined; ms: number }

function grpcAnswer<T>(invoke: (deadline: grpc.CallOptions, done: (err: grpc.ServiceError | null, res?: T) => void) => void): Promise<GrpcAnswer> {
  const t = Date.now();
  return new Promise((resolve) => {
    invoke({ deadline: Date.now() + LIMIT_MS }, (err) => resolve({
      status: err ? err.code : grpc.status.OK,
      code: err ? err.metadata?.get('qgate-error-code')[0]?.toString() : 'OK',
      ms: Date.now() - t,
    }));
  });
}

const grpcScore = (image: Buffer, tau?: number) => grpcAnswer((o, done) => s.client.Score(tau === undefined ? { image } : { image, tau }, o, done));
const grpcGenerate = (req: Record<string, unknown>) => grpcAnswer((o, done) => s.client.Generate(req, o, done));
const grpcGenerateStream = (req: Record<string, unknown>) => grpcAnswer((o, done) => {
  const call = s.client.GenerateStream(req, o);
  call.on('data', () => undefined);
  call.on('error', (e: grpc.ServiceError) => done(e));
  call.on('end', () => done(null));
});

async function stillServingRest(what: string): Promise<void> {
  const r = await rest('/score', { method: 'POST', body: new Uint8Array(good), headers: { 'content-type': 'image/png' } });
  assert.equal(r.status, 200, `a good request after ${what}`);
}

async function stillServingGrpc(what: string): Promise<void> {
  assert.equal((await grpcScore(good)).status, grpc.status.OK, `a good call after ${what}`);
}

function expectRest(r: RestAnswer, code: string, what: string): void {
  const status = code === 'OK' ? 200 : ERROR_STATUS[code as keyof typeof ERROR_STATUS].http;
  assert.deepEqual([r.status, r.code], [status, code], `${what}: ${r.text.slice(0, 200)}`);
  assert.ok(r.status < 500, what);
  assert.ok(code === 'OK' || CATALOGUE.has(r.code), what);
  assert.ok(r.ms < LIMIT_MS, `${what} took ${r.ms} ms`);
  assert.doesNotMatch(r.text, /root:.*:0:0:/, `${what} leaked a local file`);
}

test('Should answer every corpus image over REST (multipart and raw body) with its code, and keep serving', async () => {
  for (const c of corpus) {
    expectRest(await rest('/score', { method: 'POST', body: multipart([['image', c.bytes, c.contentType]]) }), c.expect, `${c.name} (multipart)`);
    await stillServingRest(c.name);
    expectRest(await rest('/score', { method: 'POST', body: new Uint8Array(c.bytes), headers: { 'content-type': c.contentType } }), c.expect, `${c.name} (raw)`);
    await stillServingRest(c.name);
  }
});

test('Should answer every corpus image over gRPC Score with its status and qgate-error-code, and keep serving', async () => {
  for (const c of corpus) {
    const r = await grpcScore(c.bytes);
    if (c.grpcTransportRefusal) {
      // grpc-js refuses the message before the handler runs: no qgate trailer, still not a crash.
      assert.equal(r.status, grpc.status.RESOURCE_EXHAUSTED, c.name);
    } else {
      const status = c.expect === 'OK' ? grpc.status.OK : ERROR_STATUS[c.expect].grpc;
      assert.deepEqual([r.status, r.code], [status, c.expect], c.name);
    }
    assert.ok(r.ms < LIMIT_MS, `${c.name} took ${r.ms} ms`);
    await stillServingGrpc(c.name);
  }
});

test('Should refuse malformed REST request shapes with stable 4xx codes', async () => {
  const png = good;
  const cases: Array<[string, string, RequestInit, string]> = [
    ['wrong field name', '/score', { method: 'POST', body: multipart([['file', png, 'image/png']]) }, 'INVALID_ARGUMENT'],
    ['two files where one is expected', '/score', { method: 'POST', body: multipart([['image', png, 'image/png'], ['image', png, 'image/png']]) }, 'INVALID_ARGUMENT'],
    ['an image and a stray file', '/score', { method: 'POST', body: multipart([['image', png, 'image/png'], ['other', png, 'image/png']]) }, 'INVALID_ARGUMENT'],
    ['a text field over 1 KiB', '/score', { method: 'POST', body: multipart([['note', 'x'.repeat(4096)], ['image', png, 'image/png']]) }, 'INVALID_ARGUMENT'],
    ['too many parts', '/score', { method: 'POST', body: multipart(Array.from({ length: 40 }, (_, i) => [`f${i}`, 'x'] as [string, string])) }, 'INVALID_ARGUMENT'],
    ['only text fields', '/score', { method: 'POST', body: multipart([['image', 'not a file']]) }, 'IMAGE_MISSING'],
    ['a JSON body', '/score', { method: 'POST', body: '{"image": "aGVsbG8="}', headers: { 'content-type': 'application/json' } }, 'IMAGE_MISSING'],
    ['no Content-Type', '/score', { method: 'POST', body: new Uint8Array(png) }, 'IMAGE_MISSING'],
    ['batch: a file over the limit', '/score/batch', { method: 'POST', body: multipart([['images', Buffer.alloc(MAX_UPLOAD + 1), 'image/png']]) }, 'IMAGE_TOO_LARGE'],
    ['batch: raw body', '/score/batch', { method: 'POST', body: new Uint8Array(png), headers: { 'content-type': 'image/png' } }, 'IMAGE_MISSING'],
    ['admin JSON over 1 KiB', '/v1/generators/tiny/pin', { method: 'PUT', body: JSON.stringify({ version: 'x'.repeat(4096) }), headers: { 'content-type': 'application/json' } }, 'PAYLOAD_TOO_LARGE'],
    ['admin JSON malformed', '/v1/generators/tiny/pin', { method: 'PUT', body: '{"version":', headers: { 'content-type': 'application/json' } }, 'INVALID_ARGUMENT'],
  ];
  for (const [what, url, init, code] of cases) {
    expectRest(await rest(url, init), code, what);
    await stillServingRest(what);
  }
});

test('Should refuse bad tau, n, seed, names and formats over REST with INVALID_ARGUMENT', async () => {
  const score = (q: string) => rest(`/score?${q}`, { method: 'POST', body: new Uint8Array(good), headers: { 'content-type': 'image/png' } });
  for (const q of ['tau=NaN', 'tau=-0.1', 'tau=0', 'tau=1.0001', 'tau=abc', 'tau=', 'tau=Infinity', 'tau=1e400', 'tau=0x1p-2', 'tau=0.1&tau=0.2']) {
    expectRest(await score(q), 'INVALID_ARGUMENT', `/score?${q}`);
  }
  expectRest(await rest('/score/batch?tau=2', { method: 'POST', body: multipart([['images', good, 'image/png']]) }), 'INVALID_ARGUMENT', 'batch tau=2');
  for (const q of ['n=0', 'n=-1', 'n=1000000000', 'n=abc', 'n=1.5', 'n=65', 'seed=-1', 'seed=4294967296', 'seed=x', 'tau=NaN', 'tau=-1',
    'generator=../../etc', 'generator=A', 'version=..', 'version=0001/../../x', `generator=${'a'.repeat(65)}`, 'format=gif']) {
    expectRest(await rest(`/generate?${q}`), 'INVALID_ARGUMENT', `/generate?${q}`);
  }
  await stillServingRest('bad parameters');
});

test('Should refuse bad tau and n over gRPC with INVALID_ARGUMENT (negative n arrives as a huge uint32)', async () => {
  for (const tau of [Number.NaN, -0.1, 0, 1.5, Infinity, -Infinity]) {
    assert.deepEqual(await grpcScore(good, tau).then((r) => [r.status, r.code]), [grpc.status.INVALID_ARGUMENT, 'INVALID_ARGUMENT'], `tau ${tau}`);
  }
  for (const req of [{ n: 0 }, { n: -1 }, { n: 4294967295 }, { n: 65 }, { n: 2, tau: Number.NaN }, { n: 2, tau: 2 }, { n: 1, seed: '-1' },
    { n: 1, generator: '../../etc' }, { n: 1, version: 'A/B' }]) {
    const r = await grpcGenerate(req);
    assert.deepEqual([r.status, r.code], [grpc.status.INVALID_ARGUMENT, 'INVALID_ARGUMENT'], `Generate ${JSON.stringify(req)}`);
    assert.ok(r.ms < LIMIT_MS);
  }
  for (const req of [{ n: 0 }, { n: -1 }, { n: 4294967295 }]) {
    const r = await grpcGenerateStream(req);
    assert.deepEqual([r.status, r.code], [grpc.status.INVALID_ARGUMENT, 'INVALID_ARGUMENT'], `GenerateStream ${JSON.stringify(req)}`);
  }
  await stillServingGrpc('bad parameters');
});
