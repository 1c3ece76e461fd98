import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import * as tf from '@tensorflow/tfjs';
import sharp from 'sharp';
import { ErrorCodes } from '../src/errors.ts';
import { openApiDocument } from '../src/server/openapi.ts';
import { bombPngHeader, digitPng, metricValue, noisePng, startApp, type Running } from './server-fixture.ts';

let s: Running;
before(async () => {
  s = await startApp();
});
after(async () => {
  await s.close();
});

async function postImage(bytes: Buffer, query = '', type = 'image/png', field = 'image'): Promise<Response> {
  const form = new FormData();
  form.append(field, new Blob([new Uint8Array(bytes)], { type }), 'x');
  return fetch(`${s.base}/score${query}`, { method: 'POST', body: form });
}

async function errorCode(res: Response): Promise<string> {
  const body = (await res.json()) as { error: { code: string; message: string } };
  assert.equal(typeof body.error.message, 'string');
  return body.error.code;
}

test('Should score a real digit and uniform noise over multipart and raw bodies', async () => {
  const digit = await postImage(await digitPng());
  assert.equal(digit.status, 200);
  const d = (await digit.json()) as Record<string, unknown>;
  for (const key of ['q', 'pass', 'tau', 'noise', 'noiseNorm', 'distance', 'distanceNorm', 'realism', 'format', 'width', 'height', 'reference', 'extractor']) {
    assert.ok(key in d, `missing ${key}`);
  }
  assert.equal(d.format, 'png');
  assert.equal(d.width, 28);
  assert.equal(d.reference, 'test-ref');
  assert.equal(d.extractor, 'random-lenet');
  assert.equal(digit.headers.get('x-qgate-pass'), String(d.pass));

  const noise = await fetch(`${s.base}/score`, { method: 'POST', body: new Uint8Array(await noisePng()), headers: { 'content-type': 'image/png' } });
  assert.equal(noise.status, 200);
  const n = (await noise.json()) as { q: number };
  assert.ok(n.q > (d.q as number), `noise q ${n.q} should be worse than digit q ${d.q}`);
});

test('Should gate on tau: a tau between the two scores passes the digit and fails the noise', async () => {
  const qd = ((await (await postImage(await digitPng())).json()) as { q: number }).q;
  const qn = ((await (await postImage(await noisePng())).json()) as { q: number }).q;
  const tau = (qd + qn) / 2;
  const d = await postImage(await digitPng(), `?tau=${tau}`);
  const n = await postImage(await noisePng(), `?tau=${tau}`);
  assert.equal(d.headers.get('x-qgate-pass'), 'true');
  assert.equal(n.headers.get('x-qgate-pass'), 'false');
  assert.equal(((await d.json()) as { tau: number }).tau, tau);
  for (const bad of ['0', '-0.1', '1.5', 'NaN', 'abc', '']) {
    const res = await postImage(await digitPng(), `?tau=${encodeURIComponent(bad)}`);
    assert.equal(res.status, 400, `tau=${bad}`);
    assert.equal(await errorCode(res), 'INVALID_ARGUMENT');
  }
});

test('Should refuse every class of bad image with a 4xx and a stable code', async () => {
  const png = await digitPng();
  const svg = Buffer.from('<svg xmlns="http://www.w3.org/2000/svg" width="28" height="28"><rect width="28" height="28"/></svg>');
  const cases: Array<[string, Response, number, string]> = [
    ['undecodable', await postImage(Buffer.from('definitely not an image')), 400, 'IMAGE_UNDECODABLE'],
    ['truncated', await postImage(png.subarray(0, 60)), 400, 'IMAGE_UNDECODABLE'],
    ['empty raw body', await fetch(`${s.base}/score`, { method: 'POST', body: new Uint8Array(0), headers: { 'content-type': 'image/png' } }), 400, 'IMAGE_MISSING'],
    ['no image at all', await fetch(`${s.base}/score`, { method: 'POST', body: 'hello', headers: { 'content-type': 'text/plain' } }), 400, 'IMAGE_MISSING'],
    ['oversized bytes (multipart)', await postImage(Buffer.alloc(300 * 1024, 1)), 413, 'IMAGE_TOO_LARGE'],
    ['oversized bytes (raw)', await fetch(`${s.base}/score`, { method: 'POST', body: new Uint8Array(300 * 1024), headers: { 'content-type': 'image/png' } }), 413, 'IMAGE_TOO_LARGE'],
    ['30000x30000 header', await postImage(bombPngHeader(30000, 30000)), 413, 'IMAGE_TOO_LARGE'],
    ['SVG', await postImage(svg, '', 'image/svg+xml'), 415, 'UNSUPPORTED_FORMAT'],
    ['wrong field name', await postImage(png, '', 'image/png', 'file'), 400, 'INVALID_ARGUMENT'],
    ['multipart without boundary', await fetch(`${s.base}/score`, { method: 'POST', body: 'abc', headers: { 'content-type': 'multipart/form-data' } }), 400, 'INVALID_ARGUMENT'],
    ['truncated multipart', await fetch(`${s.base}/score`, {
      method: 'POST', body: '--xx\r\nContent-Disposition: form-data; name="image"; filename="a"\r\n\r\nabc', headers: { 'content-type': 'multipart/form-data; boundary=xx' },
    }), 400, 'INVALID_ARGUMENT'],
  ];
  for (const [what, res, status, code] of cases) {
    assert.equal(res.status, status, what);
    assert.equal(await errorCode(res), code, what);
  }
  const two = new FormData();
  two.append('image', new Blob([new Uint8Array(png)]), 'a.png');
  two.append('image', new Blob([new Uint8Array(png)]), 'b.png');
  const res = await fetch(`${s.base}/score`, { method: 'POST', body: two });
  assert.equal(res.status, 400);
  assert.equal(await errorCode(res), 'INVALID_ARGUMENT');
  // Still serving afterwards.
  assert.equal((await postImage(png)).status, 200);
});

test('Should score a batch in order with per-item errors', async () => {
  const form = new FormData();
  form.append('images', new Blob([new Uint8Array(await digitPng(1))]), 'digit.png');
  form.append('images', new Blob([new Uint8Array(Buffer.from('junk'))]), 'junk.png');
  form.append('images', new Blob([new Uint8Array(await sharp(await noisePng()).jpeg().toBuffer())]), 'noise.jpg');
  const res = await fetch(`${s.base}/score/batch?tau=0.5`, { method: 'POST', body: form });
  assert.equal(res.status, 200);
  const items = (await res.json()) as Array<Record<string, unknown>>;
  assert.deepEqual(items.map((i) => i.filename), ['digit.png', 'junk.png', 'noise.jpg']);
  assert.deepEqual(items.map((i) => i.index), [0, 1, 2]);
  assert.equal(typeof items[0]!.q, 'number');
  assert.equal((items[1]!.error as { code: string }).code, 'IMAGE_UNDECODABLE');
  assert.equal(items[2]!.format, 'jpeg');
  assert.equal(items[2]!.tau, 0.5);

  const tooMany = new FormData();
  for (let i = 0; i < 9; i++) tooMany.append('images', new Blob([new Uint8Array(await digitPng())]), `${i}.png`);
  const refused = await fetch(`${s.base}/score/batch`, { method: 'POST', body: tooMany });
  assert.equal(refused.status, 400);
  assert.equal(await errorCode(refused), 'INVALID_ARGUMENT');
});

test('Should generate a PNG grid and JSON images, repeatable by seed', async () => {
  const res = await fetch(`${s.base}/generate?n=5&seed=42`);
  assert.equal(res.status, 200);
  assert.equal(res.headers.get('content-type'), 'image/png');
  assert.equal(res.headers.get('x-qgate-generator'), 'tiny');
  assert.equal(res.headers.get('x-qgate-version'), '0001');
  assert.equal(res.headers.get('x-qgate-count'), '5');
  const meta = await sharp(Buffer.from(await res.arrayBuffer())).metadata();
  assert.deepEqual([meta.width, meta.height], [3 * 28, 2 * 28]);

  const a = (await (await fetch(`${s.base}/generate?n=3&seed=7&format=json`)).json()) as { images: Array<{ png: string; q: number; passed: boolean }>; attempts: number; seed: number };
  const b = (await (await fetch(`${s.base}/generate?n=3&seed=7&format=json`)).json()) as typeof a;
  assert.equal(a.images.length, 3);
  assert.equal(a.attempts, 3);
  assert.equal(a.seed, 7);
  assert.deepEqual(a.images, b.images, 'the same seed gives the same images');
  const first = await sharp(Buffer.from(a.images[0]!.png, 'base64')).metadata();
  assert.deepEqual([first.format, first.width, first.height], ['png', 28, 28]);
});

test('Should stop rejection sampling at the attempt bound and say so', async () => {
  // The untrained generator's gray images never reach Q < 0.001.
  const res = await fetch(`${s.base}/generate?n=4&tau=0.001&seed=1&format=json`);
  assert.equal(res.status, 200);
  const body = (await res.json()) as { count: number; attempts: number; exhausted: boolean; images: unknown[] };
  assert.equal(body.count, body.images.length);
  assert.ok(body.count < 4);
  assert.equal(body.exhausted, true);
  assert.equal(body.attempts, 4 * 3, 'n × QGATE_GENERATE_MAX_ATTEMPTS_PER_IMAGE');
});

test('Should refuse bad generate arguments and unknown generators', async () => {
  for (const [query, status, code] of [
    ['n=0', 400, 'INVALID_ARGUMENT'], ['n=65', 400, 'INVALID_ARGUMENT'], ['n=-1', 400, 'INVALID_ARGUMENT'], ['n=2.5', 400, 'INVALID_ARGUMENT'],
    ['seed=-1', 400, 'INVALID_ARGUMENT'], ['seed=99999999999', 400, 'INVALID_ARGUMENT'], ['format=gif', 400, 'INVALID_ARGUMENT'],
    ['generator=nope', 404, 'NOT_FOUND'], ['version=0999', 404, 'NOT_FOUND'],
    ['generator=..%2F..%2Fetc', 400, 'INVALID_ARGUMENT'], ['version=..', 400, 'INVALID_ARGUMENT'],
  ] as const) {
    const res = await fetch(`${s.base}/generate?${query}`);
    assert.equal(res.status, status, query);
    assert.equal(await errorCode(res), code, query);
  }
});

test('Should list generators with versions, the active one, manifests and metrics', async () => {
  const list = (await (await fetch(`${s.base}/v1/generators`)).json()) as { generators: Array<{ name: string; active: string }> };
  assert.deepEqual(list.generators.map((g) => [g.name, g.active]), [['tiny', '0001']]);
  const one = (await (await fetch(`${s.base}/v1/generators/tiny`)).json()) as { versions: Array<{ version: string; state: string; manifest: { latentSize: number }; metrics: { images: number } }> };
  assert.equal(one.versions[0]!.state, 'active');
  assert.equal(one.versions[0]!.manifest.latentSize, 8);
  assert.ok(one.versions[0]!.metrics.images > 0);
  assert.equal((await fetch(`${s.base}/v1/generators/nope`)).status, 404);
});

test('Should keep state-changing endpoints off without an admin token', async () => {
  const res = await fetch(`${s.base}/v1/generators/tiny/pin`, { method: 'PUT', body: JSON.stringify({ version: '0001' }), headers: { 'content-type': 'application/json', authorization: 'Bearer whatever-token-123456' } });
  assert.equal(res.status, 401);
  assert.equal(await errorCode(res), 'UNAUTHORIZED');
});

test('Should answer health, readiness and unknown routes', async () => {
  assert.equal((await fetch(`${s.base}/healthz`)).status, 200);
  const ready = await fetch(`${s.base}/readyz`);
  assert.equal(ready.status, 200);
  assert.deepEqual(((await ready.json()) as { models: { generators: string[] } }).models.generators, ['tiny/0001']);
  const missing = await fetch(`${s.base}/nope`);
  assert.equal(missing.status, 404);
  assert.equal(await errorCode(missing), 'NOT_FOUND');
});

test('Should serve /metrics as Prometheus text with every qgate metric', async () => {
  const res = await fetch(`${s.base}/metrics`);
  assert.equal(res.status, 200);
  assert.match(res.headers.get('content-type') ?? '', /^text\/plain/);
  const text = await res.text();
  const names = ['qgate_requests_total', 'qgate_request_duration_seconds', 'qgate_quality_score', 'qgate_gate_decisions_total', 'qgate_generated_images_total',
    'qgate_generate_attempts_total', 'qgate_batch_size', 'qgate_queue_depth', 'qgate_model_info', 'qgate_model_reloads_total', 'qgate_tf_tensors'];
  const types = new Map<string, string>();
  for (const line of text.split('\n')) {
    if (line === '') continue;
    const m = /^# (HELP|TYPE) (\S+) (.*)$/.exec(line);
    if (m) {
      if (m[1] === 'TYPE') types.set(m[2]!, m[3]!);
      continue;
    }
    // name{labels} value: the exposition format's sample line.
    assert.match(line, /^[a-zA-Z_:][a-zA-Z0-9_:]*(\{([a-zA-Z_][a-zA-Z0-9_]*="([^"\\]|\\.)*",?)*\})? -?([0-9.e+-]+|NaN|\+Inf|-Inf)$/, line);
  }
  for (const name of names) assert.ok(types.has(name), `missing ${name}`);
  assert.equal(types.get('qgate_request_duration_seconds'), 'histogram');
  assert.equal(types.get('qgate_requests_total'), 'counter');
  assert.ok(types.has('process_cpu_seconds_total'), 'default process metrics');
  assert.ok((metricValue(text, 'qgate_requests_total{transport="http",method="score",code="OK"}') ?? 0) > 0);
  assert.ok((metricValue(text, 'qgate_gate_decisions_total{decision="fail"}') ?? 0) > 0);
  assert.equal(metricValue(text, 'qgate_model_info{kind="generator",name="tiny",version="0001"}'), 1);
  assert.ok((metricValue(text, 'qgate_generated_images_total{generator="tiny",version="0001"}') ?? 0) > 0);

  // promtool, where installed (Debian package prometheus), must accept every qgate_* metric.
  const promtool = await promisify(execFile)('promtool', ['--version']).then(() => true, () => false);
  if (!promtool) return;
  const dir = await mkdtemp(path.join(os.tmpdir(), 'qgate-metrics-'));
  try {
    await writeFile(path.join(dir, 'metrics.txt'), text);
    const out = await promisify(execFile)('sh', ['-c', `promtool check metrics < '${path.join(dir, 'metrics.txt')}' 2>&1; true`]);
    const problems = out.stdout.split('\n').filter((l) => l.includes('qgate_'));
    assert.deepEqual(problems, [], out.stdout);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('Should describe exactly the routes express serves in /openapi.json', async () => {
  const doc = (await (await fetch(`${s.base}/openapi.json`)).json()) as { openapi: string; paths: Record<string, Record<string, unknown>>; components: { schemas: { Error: unknown } } };
  assert.match(doc.openapi, /^3\./);
  assert.deepEqual(doc, JSON.parse(JSON.stringify(openApiDocument(s.app.config.service))));
  const documented = Object.entries(doc.paths).flatMap(([p, ops]) => Object.keys(ops).map((m) => `${m.toUpperCase()} ${p}`)).sort();
  type Layer = { route?: { path: string; methods: Record<string, boolean> } };
  const router = (s.app.httpApp as unknown as { router: { stack: Layer[] } }).router;
  const served = router.stack.filter((l) => l.route).flatMap((l) => Object.keys(l.route!.methods).filter((m) => m !== '_all')
    .map((m) => `${m.toUpperCase()} ${l.route!.path.replace(/:(\w+)/g, '{$1}')}`)).sort();
  assert.deepEqual(served, documented);
  const codes = (doc.components.schemas.Error as { properties: { error: { properties: { code: { enum: string[] } } } } }).properties.error.properties.code.enum;
  assert.deepEqual(codes, Object.values(ErrorCodes));
});

test('Should leak no tensors over requests', async () => {
  const png = await digitPng();
  await postImage(png);
  await fetch(`${s.base}/generate?n=2&seed=1&format=json`);
  const before = tf.memory().numTensors;
  await Promise.all(Array.from({ length: 8 }, () => postImage(png)));
  await fetch(`${s.base}/generate?n=4&seed=2&tau=0.5`);
  await postImage(Buffer.from('junk'));
  assert.equal(tf.memory().numTensors, before);
});
