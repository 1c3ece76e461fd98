import http2 from 'node:http2';
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import * as tf from '@tensorflow/tfjs';
import sharp from 'sharp';
import type { GenerateResponse__Output } from '../src/generated/qgate/v1/GenerateResponse.ts';
import type { ScoreResponse__Output } from '../src/generated/qgate/v1/ScoreResponse.ts';
import type { ScoreStreamResponse__Output } from '../src/generated/qgate/v1/ScoreStreamResponse.ts';
import { loadConfig } from '../src/config.ts';
import { bombPngHeader, digitPng, eventually, metricValue, noisePng, startApp, type Running } from './server-fixture.ts';

let s: Running;
before(async () => {
  s = await startApp();
});
after(async () => {
  await s.close();
});

function score(image: Buffer, tau?: number, options: grpc.CallOptions = {}): Promise<ScoreResponse__Output> {
  return new Promise((resolve, reject) => {
    s.client.Score(tau === undefined ? { image } : { image, tau }, options, (err, res) => (err ? reject(err) : resolve(res!)));
  });
}

function generate(req: Record<string, unknown>): Promise<GenerateResponse__Output> {
  return new Promise((resolve, reject) => {
    s.client.Generate(req, (err, res) => (err ? reject(err) : resolve(res!)));
  });
}

/** The status, details and qgate-error-code trailer of a failed call. */
async function failure(p: Promise<unknown>): Promise<{ code: grpc.status; qgate: string | undefined }> {
  try {
    await p;
  } catch (e) {
    const err = e as grpc.ServiceError;
    return { code: err.code, qgate: err.metadata?.get('qgate-error-code')[0]?.toString() };
  }
  throw new Error('the call succeeded');
}

test('Should score a digit and noise over gRPC with the same result as REST', async () => {
  const png = await digitPng();
  const d = await score(png);
  const n = await score(await noisePng());
  assert.ok(n.q > d.q);
  assert.equal(d.format, 'png');
  assert.equal(d.width, 28);
  assert.equal(d.reference, 'test-ref');
  assert.ok(Math.abs(d.tau - 0.3) < 1e-6, 'absent tau means QGATE_TAU');
  const form = new FormData();
  form.append('image', new Blob([new Uint8Array(png)]), 'x.png');
  const rest = (await (await fetch(`${s.base}/score`, { method: 'POST', body: form })).json()) as { q: number };
  assert.ok(Math.abs(rest.q - d.q) < 1e-6, 'float32 on the wire');
  const tau = (d.q + n.q) / 2;
  assert.equal((await score(png, tau)).passed, true);
  assert.equal((await score(await noisePng(), tau)).passed, false);
});

test('Should get INVALID_ARGUMENT for each class of bad image and a bad tau', async () => {
  const svg = Buffer.from('<svg xmlns="http://www.w3.org/2000/svg" width="8" height="8"/>');
  for (const [what, image, qgate] of [
    ['undecodable', Buffer.from('not an image'), 'IMAGE_UNDECODABLE'],
    ['truncated', (await digitPng()).subarray(0, 60), 'IMAGE_UNDECODABLE'],
    ['empty', Buffer.alloc(0), 'IMAGE_MISSING'],
    ['30000x30000 header', bombPngHeader(30000, 30000), 'IMAGE_TOO_LARGE'],
    ['SVG', svg, 'UNSUPPORTED_FORMAT'],
  ] as const) {
    assert.deepEqual(await failure(score(image)), { code: grpc.status.INVALID_ARGUMENT, qgate }, what);
  }
  for (const tau of [0, -1, 1.5, Number.NaN]) {
    assert.deepEqual(await failure(score(await digitPng(), tau)), { code: grpc.status.INVALID_ARGUMENT, qgate: 'INVALID_ARGUMENT' }, `tau ${tau}`);
  }
});

test('Should get RESOURCE_EXHAUSTED for a message over the size limit', async () => {
  const { code } = await failure(score(Buffer.alloc(300 * 1024, 1)));
  assert.equal(code, grpc.status.RESOURCE_EXHAUSTED);
  assert.equal((await score(await digitPng())).format, 'png', 'still serving');
});

test('Should answer every ScoreStream request in order, with per-item errors', async () => {
  const images = [await digitPng(0), Buffer.from('junk'), await noisePng(), await sharp(await digitPng(2)).jpeg().toBuffer()];
  const got: ScoreStreamResponse__Output[] = [];
  await new Promise<void>((resolve, reject) => {
    const call = s.client.ScoreStream();
    call.on('data', (m: ScoreStreamResponse__Output) => got.push(m));
    call.on('error', reject);
    call.on('end', resolve);
    for (const image of images) call.write({ image, tau: 0.9 });
    call.end();
  });
  assert.deepEqual(got.map((m) => m.index), [0, 1, 2, 3]);
  assert.deepEqual(got.map((m) => m.result), ['score', 'error', 'score', 'score']);
  assert.equal(got[1]!.error!.code, 'IMAGE_UNDECODABLE');
  assert.equal(got[3]!.score!.format, 'jpeg');
  assert.ok(Math.abs(got[0]!.score!.tau - 0.9) < 1e-6);
});

test('Should generate PNGs repeatably by seed, and fail n out of range with INVALID_ARGUMENT', async () => {
  const a = await generate({ n: 3, seed: 9 });
  const b = await generate({ n: 3, seed: '9' });
  assert.equal(a.images.length, 3);
  assert.deepEqual(a.images, b.images);
  assert.equal(a.attempts, 3);
  assert.deepEqual([a.generator, a.version, a.seed], ['tiny', '0001', '9']);
  const meta = await sharp(a.images[0]!.png).metadata();
  assert.deepEqual([meta.format, meta.width, meta.height], ['png', 28, 28]);
  for (const n of [0, 65]) assert.equal((await failure(generate({ n }))).code, grpc.status.INVALID_ARGUMENT, `n=${n}`);
  assert.equal((await failure(generate({ n: 1, seed: '4294967296' }))).code, grpc.status.INVALID_ARGUMENT);
  assert.equal((await failure(generate({ n: 1, generator: 'nope' }))).code, grpc.status.NOT_FOUND);
  assert.equal((await failure(generate({ n: 1, version: '0999' }))).code, grpc.status.NOT_FOUND);
  assert.equal((await failure(generate({ n: 1, generator: '../x' }))).code, grpc.status.INVALID_ARGUMENT);
  const gated = await generate({ n: 2, tau: 0.001, seed: 1 });
  assert.ok(gated.images.length < 2);
  assert.equal(gated.attempts, 2 * 3, 'the attempt bound');
});

test('Should stream GenerateStream in model batches with cumulative attempts', async () => {
  const chunks: GenerateResponse__Output[] = [];
  await new Promise<void>((resolve, reject) => {
    // 70 is above QGATE_GENERATE_MAX_N (64) but within the stream maximum.
    const call = s.client.GenerateStream({ n: 70, seed: 3 });
    call.on('data', (m: GenerateResponse__Output) => chunks.push(m));
    call.on('error', reject);
    call.on('end', resolve);
  });
  assert.ok(chunks.length >= 3, `${chunks.length} chunks of at most QGATE_MAX_BATCH_SIZE (32)`);
  assert.equal(chunks.reduce((n, c) => n + c.images.length, 0), 70);
  assert.equal(chunks.at(-1)!.attempts, 70);
  const unary = await generate({ n: 3, seed: 3 });
  assert.deepEqual(chunks[0]!.images.slice(0, 3), unary.images, 'image k comes from the k-th latent vector');
  const err = await new Promise<grpc.ServiceError>((resolve) => {
    const call = s.client.GenerateStream({ n: 0 });
    call.on('data', () => undefined);
    call.on('error', resolve);
  });
  assert.equal(err.code, grpc.status.INVALID_ARGUMENT);
});

test('Should free the generate slot and the generator lease when a client cancels a stream', async () => {
  const before = tf.memory().numTensors;
  await new Promise<void>((resolve) => {
    const call = s.client.GenerateStream({ n: 4096, seed: 1 });
    call.once('data', () => call.cancel());
    call.on('error', () => resolve());
    call.on('end', () => resolve());
  });
  await eventually(async () => {
    const text = await (await fetch(`${s.base}/metrics`)).text();
    return (metricValue(text, 'qgate_requests_total{transport="grpc",method="GenerateStream",code="CANCELLED"}') ?? 0) >= 1;
  }, 10_000, 'the server to notice the cancel');
  await s.app.service.idle();
  assert.equal(tf.memory().numTensors, before, 'no tensors left behind');
  // All QGATE_GENERATE_MAX_CONCURRENT slots are free again.
  const all = await Promise.all(Array.from({ length: 4 }, () => generate({ n: 1 })));
  assert.equal(all.length, 4);
});

test('Should honour the deadline with DEADLINE_EXCEEDED', async () => {
  const { code } = await failure(new Promise((resolve, reject) => {
    s.client.Generate({ n: 64, tau: 0.001 }, { deadline: Date.now() + 30 }, (err, res) => (err ? reject(err) : resolve(res)));
  }));
  assert.equal(code, grpc.status.DEADLINE_EXCEEDED);
  // The server gives up too (between model batches), rather than finishing work nobody waits for.
  await eventually(async () => {
    const text = await (await fetch(`${s.base}/metrics`)).text();
    return (metricValue(text, 'qgate_requests_total{transport="grpc",method="Generate",code="DEADLINE_EXCEEDED"}') ?? 0) >= 1;
  }, 10_000, 'the server to count the deadline');
});

test('Should serve grpc.health.v1 and server reflection', async () => {
  const health = protoLoader.loadSync(new URL('../node_modules/grpc-health-check/proto/health/v1/health.proto', import.meta.url).pathname, { enums: String });
  const HealthClient = (grpc.loadPackageDefinition(health) as unknown as { grpc: { health: { v1: { Health: typeof grpc.Client } } } }).grpc.health.v1.Health;
  const client = new HealthClient(s.grpcTarget, grpc.credentials.createInsecure()) as grpc.Client & { Check: (req: object, cb: (e: Error | null, r: { status: string }) => void) => void };
  const status = await new Promise<string>((resolve, reject) => client.Check({ service: 'qgate.v1.QualityService' }, (e, r) => (e ? reject(e) : resolve(r.status))));
  assert.equal(status, 'SERVING');
  client.close();

  const reflection = protoLoader.loadSync(new URL('../node_modules/@grpc/reflection/build/proto/grpc/reflection/v1/reflection.proto', import.meta.url).pathname);
  const R = (grpc.loadPackageDefinition(reflection) as unknown as { grpc: { reflection: { v1: { ServerReflection: typeof grpc.Client } } } }).grpc.reflection.v1.ServerReflection;
  const rc = new R(s.grpcTarget, grpc.credentials.createInsecure()) as grpc.Client & { ServerReflectionInfo: () => grpc.ClientDuplexStream<object, { listServicesResponse?: { service: Array<{ name: string }> } }> };
  const services = await new Promise<string[]>((resolve, reject) => {
    const call = rc.ServerReflectionInfo();
    call.on('data', (m: { listServicesResponse?: { service: Array<{ name: string }> } }) => {
      resolve(m.listServicesResponse?.service.map((x) => x.name) ?? []);
      call.end();
    });
    call.on('error', reject);
    call.write({ listServices: '' });
  });
  assert.ok(services.includes('qgate.v1.QualityService'), services.join(','));
  rc.close();
});

/** The connection-level flow-control window an HTTP/2 client connecting to `target` is given. */
async function connectionWindowOffered(target: string, expected: number): Promise<number> {
  const session = http2.connect(`http://${target}`);
  try {
    await new Promise<void>((resolve, reject) => {
      session.once('remoteSettings', () => resolve());
      session.once('error', reject);
    });
    // The WINDOW_UPDATE follows the server's SETTINGS; wait for it (or fail with what was offered).
    await eventually(() => session.state.remoteWindowSize === expected, 5000, 'the connection window').catch(() => undefined);
    return session.state.remoteWindowSize ?? NaN;
  } finally {
    session.close();
  }
}

test('Should give every gRPC connection QGATE_GRPC_CONNECTION_WINDOW_BYTES of flow-control window, not HTTP/2\'s 64 KiB', async () => {
  // Under overload a 64 KiB window left thousands of calls' bodies in the client, where they could
  // not be refused and passed their deadlines (docs/RELIABILITY.md, Overload).
  const byDefault = loadConfig({}).service.grpcConnectionWindowBytes;
  assert.equal(byDefault, 8 * 1024 * 1024);
  assert.equal(await connectionWindowOffered(s.grpcTarget, byDefault), byDefault);
  const other = await startApp({ QGATE_GRPC_CONNECTION_WINDOW_BYTES: String(1024 * 1024) });
  try {
    assert.equal(await connectionWindowOffered(other.grpcTarget, 1024 * 1024), 1024 * 1024);
    // Calls still work on such a connection.
    await new Promise<void>((resolve, reject) => other.client.Score({ image: Buffer.alloc(0) }, (err) => (err?.code === grpc.status.INVALID_ARGUMENT ? resolve() : reject(err ?? new Error('an empty image was scored')))));
  } finally {
    await other.close();
  }
  assert.throws(() => loadConfig({ QGATE_GRPC_CONNECTION_WINDOW_BYTES: '1000' }), /QGATE_GRPC_CONNECTION_WINDOW_BYTES/);
});
