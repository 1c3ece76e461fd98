import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import sharp from 'sharp';
import { QgateError } from '../src/errors.ts';
import { decodeImage, encodePng, loadImageFolder } from '../src/data/images.ts';
import { pngClaiming } from './hostile/corpus.ts';

const GRAY28 = { height: 28, width: 28, channels: 1 } as const;
const RGB28 = { height: 28, width: 28, channels: 3 } as const;

/** Asserts that a promise rejects with a QgateError of `code` (and a message matching `pattern`). */
async function rejectsWith(promise: Promise<unknown>, code: string, pattern?: RegExp): Promise<void> {
  await assert.rejects(promise, (e: unknown) => {
    assert.ok(e instanceof QgateError, `expected a QgateError, got ${String(e)}`);
    assert.equal(e.code, code, e.message);
    if (pattern) assert.match(e.message, pattern);
    return true;
  });
}

/** A deterministic pseudo-random byte sequence (xorshift), so failures reproduce. */
function noiseBytes(n: number, seed = 1): Uint8Array {
  const out = new Uint8Array(n);
  let x = seed;
  for (let i = 0; i < n; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out[i] = x & 0xff;
  }
  return out;
}

function solid(width: number, height: number, background: string | { r: number; g: number; b: number; alpha?: number }, channels: 3 | 4 = 3) {
  return sharp({ create: { width, height, channels, background } });
}

describe('decodeImage', () => {
  test('a 28x28 gray PNG made by encodePng decodes to exactly its bytes / 255', async () => {
    const bytes = noiseBytes(28 * 28);
    const png = await encodePng(bytes, 28, 28, 1);
    const decoded = await decodeImage(png, GRAY28);
    assert.equal(decoded.format, 'png');
    assert.deepEqual([decoded.width, decoded.height, decoded.channels, decoded.bitDepth], [28, 28, 1, 8]);
    assert.deepEqual(decoded.pixels, Float32Array.from(bytes, (b) => b / 255));
  });

  test('float pixels survive encodePng and decodeImage within rounding', async () => {
    const pixels = Float32Array.from(noiseBytes(28 * 28 * 3, 7), (b) => b / 255);
    const decoded = await decodeImage(await encodePng(pixels, 28, 28, 3), RGB28);
    assert.deepEqual(decoded.pixels, pixels);
  });

  test('decoding the same bytes twice gives identical pixels', async () => {
    const png = await solid(50, 31, { r: 10, g: 200, b: 90 }).png().toBuffer();
    const a = await decodeImage(png, GRAY28);
    const b = await decodeImage(Uint8Array.from(png), GRAY28);
    assert.deepEqual(a.pixels, b.pixels);
  });

  test('an RGBA PNG is flattened onto black and decodes to the target shape', async () => {
    const png = await solid(40, 40, { r: 255, g: 255, b: 255, alpha: 0 }, 4).png().toBuffer();
    const gray = await decodeImage(png, GRAY28);
    assert.equal(gray.channels, 4);
    assert.equal(gray.pixels.length, 28 * 28);
    assert.ok(gray.pixels.every((v) => v === 0), 'fully transparent white must become black');
    const rgb = await decodeImage(png, RGB28);
    assert.equal(rgb.pixels.length, 28 * 28 * 3);
  });

  test('a 16-bit PNG is reported as 16-bit and scaled to [0, 1]', async () => {
    const png = await solid(30, 20, { r: 255, g: 128, b: 0, alpha: 1 }, 4).toColourspace('rgb16').png().toBuffer();
    const decoded = await decodeImage(png, RGB28);
    assert.equal(decoded.bitDepth, 16);
    assert.equal(decoded.pixels.length, 28 * 28 * 3);
    // Centre pixel: the orange survives to within one 8-bit step.
    const at = (14 * 28 + 14) * 3;
    const centre = [...decoded.pixels.subarray(at, at + 3)].map((v) => Math.round(v * 255));
    [255, 128, 0].forEach((want, i) => assert.ok(Math.abs((centre[i] ?? -9) - want) <= 1, `${centre.join(',')}`));
    const gray16 = await sharp(new Uint16Array(16).fill(65535), { raw: { width: 4, height: 4, channels: 1 } })
      .toColourspace('grey16')
      .png()
      .toBuffer();
    const g = await decodeImage(gray16, { height: 4, width: 4, channels: 1 });
    assert.equal(g.bitDepth, 16);
    assert.ok(g.pixels.every((v) => v === 1), `16-bit white should be 1, got ${g.pixels[0]}`);
  });

  test('a CMYK JPEG is converted to sRGB at the target shape', async () => {
    const jpeg = await solid(33, 33, { r: 200, g: 40, b: 40 }).toColourspace('cmyk').jpeg().toBuffer();
    const decoded = await decodeImage(jpeg, RGB28);
    assert.equal(decoded.format, 'jpeg');
    assert.equal(decoded.channels, 4);
    assert.equal(decoded.pixels.length, 28 * 28 * 3);
    const [r = 0, g = 0, b = 0] = decoded.pixels.subarray((14 * 28 + 14) * 3);
    assert.ok(r > 0.6 && g < 0.35 && b < 0.35, `expected red, got ${r} ${g} ${b}`);
  });

  test('a palette PNG decodes like any other', async () => {
    const png = await solid(28, 28, '#808080').png({ palette: true }).toBuffer();
    assert.equal((await sharp(png).metadata()).isPalette, true);
    const decoded = await decodeImage(png, GRAY28);
    assert.ok(decoded.pixels.every((v) => Math.abs(v - 128 / 255) < 2 / 255));
  });

  test('a 1x1 image decodes and is letterboxed into the target', async () => {
    const png = await encodePng(Uint8Array.of(255), 1, 1, 1);
    const decoded = await decodeImage(png, GRAY28);
    assert.deepEqual([decoded.width, decoded.height], [1, 1]);
    assert.equal(decoded.pixels.length, 28 * 28);
    assert.ok(decoded.pixels.every((v) => v === 1), 'a square 1x1 fills the square target');
    const same = await decodeImage(png, { height: 1, width: 1, channels: 3 });
    assert.deepEqual([...same.pixels], [1, 1, 1]);
  });

  test('a large wide image is shrunk to fit and letterboxed with black above and below', async () => {
    const png = await solid(2000, 1000, '#ffffff').png().toBuffer();
    const decoded = await decodeImage(png, GRAY28);
    assert.deepEqual([decoded.width, decoded.height], [2000, 1000]);
    const row = (y: number) => [...decoded.pixels.subarray(y * 28, (y + 1) * 28)];
    // 2000x1000 contained in 28x28 is 28x14, centred: rows 7..20 image, the rest black.
    for (const y of [0, 6, 21, 27]) assert.ok(row(y).every((v) => v === 0), `row ${y} should be black`);
    for (const y of [8, 14, 19]) assert.ok(row(y).every((v) => v > 0.99), `row ${y} should be white`);
  });

  test('the EXIF orientation is applied before sizing', async () => {
    // 20 wide, 10 high, left half white; orientation 6 means "rotate 90° clockwise to display".
    const raw = new Uint8Array(20 * 10).map((_, i) => (i % 20 < 10 ? 255 : 0));
    const jpeg = await sharp(raw, { raw: { width: 20, height: 10, channels: 1 } })
      .jpeg({ quality: 100 })
      .withMetadata({ orientation: 6 })
      .toBuffer();
    const decoded = await decodeImage(jpeg, { height: 20, width: 10, channels: 1 });
    assert.deepEqual([decoded.width, decoded.height], [10, 20]);
    // After rotating clockwise, the white (left) half is on top.
    assert.ok((decoded.pixels[2 * 10 + 5] ?? 0) > 0.9 && (decoded.pixels[17 * 10 + 5] ?? 1) < 0.1);
  });

  test('only the first frame of an animated GIF is used', async () => {
    const white = await solid(8, 8, '#ffffff').png().toBuffer();
    const black = await solid(8, 8, '#000000').png().toBuffer();
    const gif = await sharp([white, black], { join: { animated: true } }).gif().toBuffer();
    assert.equal((await sharp(gif).metadata()).pages, 2);
    const decoded = await decodeImage(gif, { height: 8, width: 8, channels: 1 });
    assert.deepEqual([decoded.format, decoded.width, decoded.height], ['gif', 8, 8]);
    assert.ok(decoded.pixels.every((v) => v === 1));
  });

  test('WebP and TIFF are accepted', async () => {
    for (const format of ['webp', 'tiff'] as const) {
      const bytes = await solid(10, 10, '#ffffff').toFormat(format, { lossless: true }).toBuffer();
      assert.equal((await decodeImage(bytes, GRAY28)).format, format);
    }
  });

  test('SVG is refused as UNSUPPORTED_FORMAT', async () => {
    const svg = Buffer.from('<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"><rect width="10" height="10" fill="#fff"/></svg>');
    await rejectsWith(decodeImage(svg, GRAY28), 'UNSUPPORTED_FORMAT', /svg/i);
  });

  test('PDF is refused as UNSUPPORTED_FORMAT', async () => {
    const pdf = Buffer.from('%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n');
    await rejectsWith(decodeImage(pdf, GRAY28), 'UNSUPPORTED_FORMAT', /PDF/);
  });

  test('a truncated PNG is IMAGE_UNDECODABLE', async () => {
    const png = await encodePng(noiseBytes(64 * 64), 64, 64, 1);
    await rejectsWith(decodeImage(png.subarray(0, png.length - 40), GRAY28), 'IMAGE_UNDECODABLE');
    await rejectsWith(decodeImage(png.subarray(0, 20), GRAY28), 'IMAGE_UNDECODABLE');
  });

  test('random bytes are IMAGE_UNDECODABLE', async () => {
    await rejectsWith(decodeImage(Buffer.from(noiseBytes(1000, 3)), GRAY28), 'IMAGE_UNDECODABLE');
  });

  test('empty input is IMAGE_MISSING', async () => {
    await rejectsWith(decodeImage(Buffer.alloc(0), GRAY28), 'IMAGE_MISSING');
    await rejectsWith(decodeImage(new Uint8Array(0), GRAY28), 'IMAGE_MISSING');
  });

  test('input over maxBytes is IMAGE_TOO_LARGE before decoding', async () => {
    const png = await encodePng(noiseBytes(28 * 28), 28, 28, 1);
    await rejectsWith(decodeImage(png, GRAY28, { maxBytes: 100 }), 'IMAGE_TOO_LARGE', /bytes/);
  });

  test('a PNG header claiming 30000x30000 pixels is IMAGE_TOO_LARGE without decoding', async () => {
    const started = performance.now();
    await rejectsWith(decodeImage(pngClaiming(30000, 30000), GRAY28), 'IMAGE_TOO_LARGE');
    assert.ok(performance.now() - started < 1000, 'the refusal must come from the header alone');
  });

  test('an image over a custom maxPixels is IMAGE_TOO_LARGE', async () => {
    const png = await solid(100, 100, '#ffffff').png().toBuffer();
    await rejectsWith(decodeImage(png, GRAY28, { maxPixels: 9999 }), 'IMAGE_TOO_LARGE', /pixels/);
    assert.equal((await decodeImage(png, GRAY28, { maxPixels: 10000 })).width, 100);
  });

  test('an impossible target is INVALID_ARGUMENT', async () => {
    const png = await encodePng(Uint8Array.of(1), 1, 1, 1);
    await rejectsWith(decodeImage(png, { height: 0, width: 28, channels: 1 }), 'INVALID_ARGUMENT');
    await rejectsWith(decodeImage(png, { height: 28, width: 28, channels: 2 as 1 }), 'INVALID_ARGUMENT');
  });
});

describe('encodePng', () => {
  test('float values are clamped to [0, 1] and NaN becomes 0', async () => {
    const png = await encodePng(Float32Array.of(-1, 0.5, 2, NaN), 2, 2, 1);
    assert.equal((await sharp(png).metadata()).channels, 1);
    const data = await sharp(png).toColourspace('b-w').raw().toBuffer();
    assert.deepEqual([...data], [0, 128, 255, 0]);
  });

  test('a pixel count that does not match the size is INVALID_ARGUMENT', async () => {
    await rejectsWith(encodePng(new Float32Array(5), 2, 2, 1), 'INVALID_ARGUMENT');
  });
});

describe('loadImageFolder', () => {
  let dir = '';
  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'qgate-images-'));
    writeFileSync(join(dir, 'b.png'), await encodePng(new Uint8Array(4 * 4).fill(255), 4, 4, 1));
    writeFileSync(join(dir, 'a.png'), await encodePng(new Uint8Array(4 * 4), 4, 4, 1));
    writeFileSync(join(dir, 'c.JPG'), await solid(4, 4, '#ffffff').jpeg().toBuffer());
    writeFileSync(join(dir, 'notes.txt'), 'not an image');
    mkdirSync(join(dir, 'nested.png'));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  test('image files are decoded in name order, skipping other files and folders', async () => {
    const target = { height: 4, width: 4, channels: 1 } as const;
    const { files, pixels } = await loadImageFolder(dir, target);
    assert.deepEqual(files, ['a.png', 'b.png', 'c.JPG'].map((f) => join(dir, f)));
    assert.equal(pixels.length, 3 * 16);
    assert.ok(pixels.subarray(0, 16).every((v) => v === 0));
    assert.ok(pixels.subarray(16, 32).every((v) => v === 1));
    assert.ok(pixels.subarray(32).every((v) => v > 0.98));
  });

  test('limit keeps the first files by name', async () => {
    const { files, pixels } = await loadImageFolder(dir, GRAY28, { limit: 1 });
    assert.deepEqual(files, [join(dir, 'a.png')]);
    assert.equal(pixels.length, 28 * 28);
  });

  test('a file that fails to decode is named in the error, which keeps its code', async () => {
    const bad = mkdtempSync(join(tmpdir(), 'qgate-bad-'));
    try {
      writeFileSync(join(bad, 'a.png'), await encodePng(new Uint8Array(4), 2, 2, 1));
      writeFileSync(join(bad, 'b.png'), Buffer.from(noiseBytes(300, 9)));
      writeFileSync(join(bad, 'c.svg.png'), '<svg xmlns="http://www.w3.org/2000/svg" width="1" height="1"/>');
      await rejectsWith(loadImageFolder(bad, GRAY28), 'IMAGE_UNDECODABLE', /b\.png: cannot decode/);
      rmSync(join(bad, 'b.png'));
      await rejectsWith(loadImageFolder(bad, GRAY28), 'UNSUPPORTED_FORMAT', /c\.svg\.png: /);
    } finally {
      rmSync(bad, { recursive: true, force: true });
    }
  });

  test('a missing folder is NOT_FOUND', async () => {
    await rejectsWith(loadImageFolder(join(dir, 'nope'), GRAY28), 'NOT_FOUND', /nope/);
  });
});
