/**
 * The web page, end to end: the real app on port 0 (the shipped φ and reference set, the shipped
 * bootstrap generator and a tiny one with a training history), the page built by esbuild into a
 * temporary folder, driven in Debian's chromium through playwright-core. Screenshots go to
 * test-artifacts/web/ (git-ignored).
 *
 * Without /usr/bin/chromium the browser tests are skipped with a note (`.ci/run` installs it and
 * sets QGATE_REQUIRE_BROWSER=1, which turns the skip into a failure).
 */
import { after, afterEach, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { cp, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { chromium, type Browser, type Page } from 'playwright-core';
import { buildWeb } from '../scripts/build-web.ts';
import { saveLayersModel } from '../src/backend/model-io.ts';
import { loadConfig } from '../src/config.ts';
import { encodePng } from '../src/data/images.ts';
import { loadMnist } from '../src/data/mnist.ts';
import { GENERATOR_FORMAT } from '../src/generator/manifest.ts';
import { loadQuality, type Quality } from '../src/quality/index.ts';
import { mulberry32 } from '../src/random.ts';
import { buildGenerator } from '../src/train/gan-bootstrap.ts';
import { digitPng, eventually, noisePng, publishGenerator, startApp, type Running } from './server-fixture.ts';

/** The browser globals that page.evaluate callbacks use: they run in chromium, not in Node. */
interface BrowserElement { id: string; tagName: string; className: string; textContent: string | null; getBoundingClientRect(): { right: number } }
declare const document: {
  activeElement: BrowserElement | null;
  documentElement: { scrollWidth: number; clientWidth: number };
  querySelector(selector: string): BrowserElement | null;
  querySelectorAll(selector: string): Iterable<BrowserElement>;
};

const CHROMIUM = '/usr/bin/chromium';
const ARTIFACTS = path.resolve('test-artifacts', 'web');
const haveBrowser = existsSync(CHROMIUM);
if (!haveBrowser && process.env.QGATE_REQUIRE_BROWSER === '1') throw new Error(`${CHROMIUM} is missing and QGATE_REQUIRE_BROWSER=1: apt-get install -y chromium`);
if (!haveBrowser) console.log(`# ${CHROMIUM} not found: browser tests skipped (apt-get install -y chromium)`);

/** A test digit with Gaussian noise of σ (clipped): Q between a clean digit's and noise's. */
async function noisyDigitPng(sigma: number, seed = 9): Promise<Buffer> {
  const d = loadMnist('test', { limit: 1 }).images;
  const rng = mulberry32(seed);
  const x = new Float32Array(784);
  for (let i = 0; i < 784; i++) {
    const g = Math.sqrt(-2 * Math.log(rng() + 1e-12)) * Math.cos(2 * Math.PI * rng());
    x[i] = Math.min(1, Math.max(0, d[i]! + sigma * g));
  }
  return encodePng(x, 28, 28, 1);
}

/** A synthetic run history in the trainer's metrics.jsonl format. */
function historyJsonl(steps = 2000, scale = 1): Buffer {
  const lines: object[] = [];
  for (let step = 50; step <= steps; step += 50) {
    const t = step / 2000;
    lines.push({ step, epoch: step / 500, lossD: scale * (1.2 + 0.1 * Math.sin(step / 90)), lossG: scale * (1.1 - 0.3 * t), lossGan: 1.0, q: 0.6 - 0.45 * t, noise: 0.1, distance: 0.5, stepMs: 95 });
    if (step % 500 === 0) lines.push({ type: 'fid', step, epoch: step / 500, samples: 500, fid: scale * 80 / (1 + 3 * t), meanQ: 0.6 - 0.45 * t, precision: 0.5, recall: 0.4 });
  }
  lines.push({ type: 'eval', step: steps, samples: 2000, fid: scale * 19.5, fidFloor: 2.1, precision: 0.71, recall: 0.55, meanQ: 0.16, passRate: 0.88, tau: 0.3 });
  return Buffer.from(lines.map((l) => JSON.stringify(l)).join('\n') + '\n');
}

let s: Running;
let quality: Quality;
let webDir: string;

before(async () => {
  webDir = await mkdtemp(path.join(os.tmpdir(), 'qgate-web-'));
  await buildWeb(webDir);
  quality = await loadQuality(loadConfig({ QGATE_BACKEND: 'wasm' }));
  s = await startApp({ QGATE_WEB_DIR: webDir, QGATE_DEFAULT_GENERATOR: 'mlp-gan' }, { quality });
  await cp(path.resolve('models', 'generators', 'mlp-gan'), path.join(s.registryDir, 'mlp-gan'), { recursive: true });
  const model = buildGenerator(8, 16, 2);
  await saveLayersModel(model, path.join(s.registryDir, 'tiny', '0002'), {
    'manifest.json': {
      format: GENERATOR_FORMAT, name: 'tiny', version: '0002', architecture: 'test MLP', latentSize: 8, imageShape: [28, 28, 1], outputRange: [-1, 1],
      createdAt: new Date().toISOString(), training: { script: 'test fixture', steps: 2000, lambda: 0.1 },
      metrics: { samples: 2000, fid: 19.5, fidFloor: 2.1, precision: 0.71, recall: 0.55, meanQ: 0.16, passRate: 0.88, tau: 0.3 },
    },
    'metrics.jsonl': historyJsonl(),
  });
  model.dispose();
  // An older run with half the steps and higher losses, to compare against on the same axes.
  await writeFile(path.join(s.registryDir, 'tiny', '0001', 'metrics.jsonl'), historyJsonl(1000, 1.6));
  await s.app.service.registry.rescan();
  await eventually(() => s.app.service.describeGenerator('tiny').active === '0002' && s.app.service.describeGenerator('mlp-gan').active === '0001', 15_000, 'tiny/0002 and mlp-gan/0001 active');
});
after(async () => {
  await s?.close();
  quality?.dispose();
  await rm(webDir, { recursive: true, force: true });
});

describe('serving the page', () => {
  test('Should serve the built page at / and its hashed assets as immutable', async () => {
    const res = await fetch(`${s.base}/`);
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type') ?? '', /text\/html/);
    assert.match(res.headers.get('content-security-policy') ?? '', /default-src 'self'; script-src 'self'/);
    const html = await res.text();
    const js = /src="(\/assets\/app-[\w]+\.js)"/.exec(html)?.[1];
    const css = /href="(\/assets\/app-[\w]+\.css)"/.exec(html)?.[1];
    assert.ok(js && css, 'index.html links the bundle');
    const asset = await fetch(`${s.base}${js}`);
    assert.equal(asset.status, 200);
    assert.match(asset.headers.get('cache-control') ?? '', /immutable/);
    const missing = await fetch(`${s.base}/assets/nope.js`);
    assert.equal(missing.status, 404);
    assert.equal(((await missing.json()) as { error: { code: string } }).error.code, 'NOT_FOUND');
  });
});

describe('web page in chromium', { skip: !haveBrowser && `${CHROMIUM} not installed` }, () => {
  let browser: Browser;
  let page: Page;
  const scoreRequests: string[] = [];
  const problems: string[] = [];

  before(async () => {
    await mkdir(ARTIFACTS, { recursive: true });
    // launch() gives every run a fresh temporary profile (its own --user-data-dir).
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      headless: true,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    });
    page = await browser.newPage({ viewport: { width: 1200, height: 900 }, acceptDownloads: true });
    page.on('request', (r) => { if (r.url().endsWith('/score')) scoreRequests.push(r.url()); });
    page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
    // A Content-Security-Policy violation is only a console message: each test fails on one.
    page.on('console', (m) => { if (m.type() === 'error' && /Content Security Policy/i.test(m.text())) problems.push(m.text()); });
    await page.goto(`${s.base}/`);
    await page.waitForSelector('body[data-ready=true]', { timeout: 15_000 });
  });
  afterEach(() => {
    assert.deepEqual(problems.splice(0), [], 'no script errors or CSP violations in the page');
  });
  after(async () => {
    await browser?.close();
  });

  const shot = (name: string) => page.screenshot({ path: path.join(ARTIFACTS, `${name}.png`), fullPage: true });
  const verdict = () => page.locator('#score-verdict').textContent();
  const upload = async (name: string, buffer: Buffer, mimeType = 'image/png') => {
    const before = scoreRequests.length;
    await page.setInputFiles('#score-file', { name, mimeType, buffer });
    await eventually(async () => scoreRequests.length > before && (await page.locator('#score-result[aria-busy]').count()) === 0, 10_000, `${name} scored`);
  };

  test('Should show a real MNIST digit as PASS and uniform noise as FAIL', async () => {
    await upload('digit.png', await digitPng());
    assert.equal(await verdict(), '✓ PASS');
    assert.equal(await page.locator('#score-q').textContent(), '0.000');
    assert.equal(await page.locator('#score-preview').isVisible(), true);
    assert.equal(await page.locator('#score-result [role=meter]').count(), 5);
    await shot('score-digit');
    await upload('noise.png', await noisePng());
    assert.equal(await verdict(), '✕ FAIL');
    assert.equal(await page.locator('#score-q').textContent(), '1.000');
    await shot('score-noise');
  });

  test('Should re-gate live when τ moves, with the keyboard and without another upload', async () => {
    await upload('noisy-digit.png', await noisyDigitPng(0.2));
    const q = Number(await page.locator('#score-q').textContent());
    assert.ok(q > 0.05 && q < 0.3, `a noisy digit's Q ${q} lies between a digit's and noise's`);
    assert.equal(await verdict(), '✓ PASS');
    const requests = scoreRequests.length;
    await page.focus('#score-tau');
    const presses = Math.ceil((0.3 - q) / 0.01) + 1;
    for (let i = 0; i < presses; i++) await page.keyboard.press('ArrowLeft');
    const tau = Number(await page.locator('#score-tau-value').textContent());
    assert.ok(tau < q, `τ ${tau} < Q ${q}`);
    assert.equal(await verdict(), '✕ FAIL');
    await shot('score-tau-lowered');
    await page.keyboard.press('End');
    assert.equal(await page.locator('#score-tau-value').textContent(), '1.00');
    assert.equal(await verdict(), '✓ PASS');
    assert.equal(scoreRequests.length, requests, 'moving τ sends no request');
  });

  test('Should say "not an image" and "too large" from the API error codes', async () => {
    await upload('notes.png', Buffer.from('definitely not an image'));
    assert.match((await page.locator('#score-error').textContent()) ?? '', /^Not an image.*IMAGE_UNDECODABLE/);
    await upload('huge.png', Buffer.alloc(300 * 1024, 1)); // the fixture's limit is 256 KiB
    assert.match((await page.locator('#score-error').textContent()) ?? '', /^Too large.*IMAGE_TOO_LARGE/);
    await shot('score-too-large');
    await upload('drawing.svg', Buffer.from('<svg xmlns="http://www.w3.org/2000/svg" width="28" height="28"><rect width="28" height="28"/></svg>'), 'image/svg+xml');
    assert.match((await page.locator('#score-error').textContent()) ?? '', /^Unsupported format.*UNSUPPORTED_FORMAT/);
    await upload('digit.png', await digitPng());
    assert.equal(await page.locator('#score-error').textContent(), '');
  });

  test('Should score an image dropped on the drop zone', async () => {
    const before = scoreRequests.length;
    // A string, not a function: it runs in chromium, where DataTransfer and File exist.
    const b64 = (await noisePng()).toString('base64');
    const dataTransfer = await page.evaluateHandle(`(() => {
      const dt = new DataTransfer();
      dt.items.add(new File([Uint8Array.from(atob('${b64}'), (c) => c.charCodeAt(0))], 'dropped.png', { type: 'image/png' }));
      return dt;
    })()`);
    await page.dispatchEvent('#score-drop', 'drop', { dataTransfer });
    await eventually(async () => scoreRequests.length > before && (await verdict()) === '✕ FAIL', 10_000, 'the dropped image scored');
    assert.match((await page.locator('#score-result').textContent()) ?? '', /dropped\.png/);
  });

  test('Should move between tabs with the arrow keys', async () => {
    await page.focus('#tab-score');
    await page.keyboard.press('ArrowRight');
    assert.equal(await page.locator('#tab-generate').getAttribute('aria-selected'), 'true');
    assert.equal(await page.locator('#panel-generate').isVisible(), true);
    assert.equal(await page.evaluate(() => document.activeElement?.id), 'tab-generate');
    await page.keyboard.press('End');
    assert.equal(await page.locator('#tab-status').getAttribute('aria-selected'), 'true');
    await page.keyboard.press('Home');
    assert.equal(await page.locator('#tab-score').getAttribute('aria-selected'), 'true');
  });

  test('Should generate a labelled grid, mark the failing images and download it as a PNG', async () => {
    // 98% of the bootstrap generator's samples pass τ = 0.3: find a seed whose grid has failures.
    type Sample = { q: number; passed: boolean };
    let seed: number;
    let expected: Sample[] = [];
    for (seed = 1; seed < 50; seed++) {
      expected = ((await (await fetch(`${s.base}/generate?n=25&seed=${seed}&generator=mlp-gan&format=json`)).json()) as { images: Sample[] }).images;
      if (expected.some((im) => !im.passed)) break;
    }
    const failing = expected.filter((im) => !im.passed).length;
    assert.ok(failing > 0, 'a seed with failing samples');
    await page.click('#tab-generate');
    await page.selectOption('#gen-generator', 'mlp-gan');
    await page.fill('#gen-n', '25');
    await page.fill('#gen-seed', String(seed));
    await page.click('#gen-go');
    await page.waitForSelector('#gen-grid figure', { timeout: 15_000 });
    assert.equal(await page.locator('#gen-grid figure').count(), 25);
    assert.equal(await page.locator('#gen-grid figure.fail').count(), failing);
    const captions = await page.locator('#gen-grid figcaption').allTextContents();
    assert.deepEqual(captions, expected.map((im) => `${im.passed ? '' : '✕ '}Q ${im.q.toFixed(3)}`));
    assert.match((await page.locator('#gen-summary').textContent()) ?? '', new RegExp(`mlp-gan/0001 · seed ${seed} · 25 of 25 .* ${failing} fail`));
    await shot('generate-grid');
    const [download] = await Promise.all([page.waitForEvent('download'), page.click('#gen-download')]);
    assert.equal(download.suggestedFilename(), `qgate-mlp-gan-0001-seed${seed}.png`);
    const file = path.join(ARTIFACTS, 'generate-download.png');
    await download.saveAs(file);
    assert.deepEqual([...(await readFile(file)).subarray(0, 8)], [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);

    // Rejection sampling with τ: every image shown passes.
    await page.fill('#gen-n', '9');
    await page.check('#gen-use-tau');
    await page.fill('#gen-tau', '0.15');
    await page.click('#gen-go');
    await page.waitForFunction(() => document.querySelector('#gen-summary')?.textContent?.includes('at τ 0.15'));
    assert.equal(await page.locator('#gen-grid figure').count(), 9);
    assert.equal(await page.locator('#gen-grid figure.fail').count(), 0);
    await shot('generate-tau');
    // A τ nothing passes: an empty grid that says so.
    await page.selectOption('#gen-generator', 'tiny');
    await page.fill('#gen-n', '2');
    await page.fill('#gen-tau', '0.01');
    await page.click('#gen-go');
    await page.waitForSelector('#gen-grid .empty');
    assert.match((await page.locator('#gen-grid .empty').textContent()) ?? '', /No sample passed τ = 0.01 within 6 attempts/);
  });

  test("Should show each version's manifest metrics and open a version's curves next to another", async () => {
    await page.click('#tab-runs');
    const row = page.locator('#runs-tiny tr[data-version="0002"]');
    assert.deepEqual((await row.locator('td.num').allTextContents()), ['2000', '19.50', '0.710', '0.550', '0.160', '88.0%', '0.1']);
    const boot = page.locator('#runs-mlp-gan tr[data-version="0001"]');
    assert.deepEqual((await boot.locator('td.num').allTextContents()), ['15000', '—', '—', '—', '—', '—', '—']);
    await page.click('button[data-curves="tiny/0002"]');
    const card = page.locator('[data-version-card="tiny/0002"]');
    await card.locator('canvas').nth(2).waitFor({ timeout: 10_000 });
    assert.equal(await card.locator('.uplot').count(), 3);
    await page.click('button[data-curves="tiny/0001"]');
    await page.locator('[data-version-card="tiny/0001"] canvas').nth(2).waitFor({ timeout: 10_000 });
    await page.click('button[data-curves="mlp-gan/0001"]');
    await page.locator('[data-version-card="mlp-gan/0001"] [data-empty=history]').waitFor({ timeout: 10_000 });
    await shot('runs-curves');
    // A version published while the page is open shows up on "Reload versions".
    await publishGenerator(s.registryDir, 'late', '0001');
    await eventually(() => s.app.service.listGenerators().some((g) => g.name === 'late' && g.active === '0001'), 15_000, 'late/0001 active');
    await page.click('#runs-reload');
    await page.locator('#runs-late tr[data-version="0001"]').waitFor({ timeout: 10_000 });
  });

  test('Should show the backend and models on the status tab, with working links', async () => {
    await page.click('#tab-status');
    assert.equal(await page.locator('#status-backend').textContent(), 'wasm');
    assert.match((await page.locator('#status-models').textContent()) ?? '', /generator tiny.*active 0002/);
    for (const href of ['/metrics', '/openapi.json']) {
      const link = page.locator(`a[href="${href}"]`);
      assert.equal(await link.count(), 1);
      assert.equal((await fetch(`${s.base}${href}`)).status, 200);
    }
    await shot('status');
  });

  test('Should stay usable on a narrow screen: no sideways scrolling', async () => {
    await page.setViewportSize({ width: 360, height: 740 });
    for (const tab of ['score', 'generate', 'runs', 'status']) {
      await page.click(`#tab-${tab}`);
      await shot(`narrow-${tab}`);
      const overflow = await page.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
      const wide = overflow > 0 ? await page.evaluate(() => [...document.querySelectorAll('body *')].filter((e) => e.getBoundingClientRect().right > document.documentElement.clientWidth).map((e) => `${e.tagName}#${e.id}.${e.className}`).slice(0, 5).join(', ')) : '';
      assert.ok(overflow <= 0, `${tab} scrolls sideways by ${overflow}px at 360px: ${wide}`);
    }
  });
});
