/**
 * The gray-PNG fast path of decodeImage (src/data/png-gray.ts) against sharp, the decoder it
 * stands in for: files it takes must give sharp's exact pixels, and everything else must be left
 * to sharp (undefined).
 */
import assert from 'node:assert/strict';
import { crc32, deflateSync } from 'node:zlib';
import { test } from 'node:test';
import fc from 'fast-check';
import { decodeImage, decodeWithSharp, encodePng } from '../src/data/images.ts';
import { decodeGray8Png } from '../src/data/png-gray.ts';
import { loadMnist } from '../src/data/mnist.ts';
import { fixPngCrcs, validPng } from './hostile/corpus.ts';

const GRAY28 = { height: 28, width: 28, channels: 1 } as const;
const SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);

function chunk(type: string, data: Uint8Array = new Uint8Array(0)): Buffer {
  const body = Buffer.concat([Buffer.from(type, 'latin1'), data]);
  const out = Buffer.alloc(12 + data.length);
  out.writeUInt32BE(data.length, 0);
  body.copy(out, 4);
  out.writeUInt32BE(crc32(body), 8 + data.length);
  return out;
}

function ihdr(width: number, height: number, depth = 8, colour = 0, interlace = 0): Buffer {
  const d = Buffer.alloc(13);
  d.writeUInt32BE(width, 0);
  d.writeUInt32BE(height, 4);
  d.set([depth, colour, 0, 0, interlace], 8);
  return chunk('IHDR', d);
}

/** Rows filtered with the given PNG filter per row (0 None … 4 Paeth), as an encoder would. */
function filterRows(pixels: Uint8Array, width: number, height: number, filters: number[]): Buffer {
  const out = Buffer.alloc(height * (width + 1));
  const at = (x: number, y: number) => (x < 0 || y < 0 ? 0 : pixels[y * width + x]!);
  for (let y = 0; y < height; y++) {
    const f = filters[y % filters.length]!;
    out[y * (width + 1)] = f;
    for (let x = 0; x < width; x++) {
      const a = at(x - 1, y);
      const b = at(x, y - 1);
      const c = at(x - 1, y - 1);
      const p = a + b - c;
      const paeth = Math.abs(p - a) <= Math.abs(p - b) && Math.abs(p - a) <= Math.abs(p - c) ? a : Math.abs(p - b) <= Math.abs(p - c) ? b : c;
      const pred = [0, a, b, (a + b) >> 1, paeth][f]!;
      out[y * (width + 1) + 1 + x] = (pixels[y * width + x]! - pred) & 0xff;
    }
  }
  return out;
}

function grayPng(pixels: Uint8Array, width: number, height: number, filters = [0], extra: Buffer[] = []): Buffer {
  return Buffer.concat([SIGNATURE, ihdr(width, height), ...extra, chunk('IDAT', deflateSync(filterRows(pixels, width, height, filters))), chunk('IEND')]);
}

function noise(n: number, seed: number): Uint8Array {
  let x = seed;
  return Uint8Array.from({ length: n }, () => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return x & 0xff;
  });
}

async function sharpPixels(bytes: Buffer): Promise<Float32Array> {
  return (await decodeWithSharp(bytes, GRAY28, 4096 * 4096)).pixels;
}

test('Every PNG row filter, alone and mixed, decodes to the encoded pixels, exactly as sharp decodes it', async () => {
  const pixels = noise(28 * 28, 3);
  for (const filters of [[0], [1], [2], [3], [4], [0, 1, 2, 3, 4], [4, 3, 2, 1, 0]]) {
    const png = grayPng(pixels, 28, 28, filters);
    assert.deepEqual(decodeGray8Png(png, 28, 28), pixels, `filters ${filters}`);
    assert.deepEqual((await decodeImage(png, GRAY28)).pixels, await sharpPixels(png), `filters ${filters}`);
  }
});

test("PNGs written by sharp (qgate's own encoder) and MNIST digits take the fast path and match sharp", async () => {
  const digits = loadMnist('test', { limit: 20 });
  for (let i = 0; i < digits.count; i++) {
    const png = await encodePng(digits.images.subarray(i * 784, (i + 1) * 784), 28, 28, 1);
    assert.ok(decodeGray8Png(png, 28, 28), `digit ${i} takes the fast path`);
    const fast = await decodeImage(png, GRAY28);
    assert.deepEqual([fast.format, fast.width, fast.height, fast.channels, fast.bitDepth], ['png', 28, 28, 1, 8]);
    assert.deepEqual(fast.pixels, await sharpPixels(png), `digit ${i}`);
  }
});

test('Text, time and pHYs chunks are skipped; anything that can change the pixels is left to sharp', async () => {
  const pixels = noise(28 * 28, 5);
  const text = chunk('tEXt', Buffer.from('Comment\0made by a test'));
  assert.deepEqual(decodeGray8Png(grayPng(pixels, 28, 28, [1], [text, chunk('pHYs', Buffer.alloc(9))]), 28, 28), pixels);
  // A file far larger than its pixels need (here 1 MiB of text) is sharp's, off the event loop.
  const padded = grayPng(pixels, 28, 28, [1], [chunk('tEXt', Buffer.concat([Buffer.from('Comment\0'), Buffer.alloc(1 << 20, 0x61)]))]);
  assert.equal(decodeGray8Png(padded, 28, 28), undefined);
  assert.deepEqual((await decodeImage(padded, GRAY28)).pixels, Float32Array.from(pixels, (b) => b / 255));
  for (const type of ['tRNS', 'gAMA', 'iCCP', 'sRGB', 'sBIT', 'eXIf', 'cHRM', 'zzZz']) {
    assert.equal(decodeGray8Png(grayPng(pixels, 28, 28, [0], [chunk(type, Buffer.alloc(4))]), 28, 28), undefined, type);
  }
});

test('Any other size, depth, colour type, interlacing or damage is left to sharp', async () => {
  const pixels = noise(28 * 28, 9);
  const good = grayPng(pixels, 28, 28);
  const idat = chunk('IDAT', deflateSync(filterRows(pixels, 28, 28, [0])));
  const withHeader = (h: Buffer, body = idat) => Buffer.concat([SIGNATURE, h, body, chunk('IEND')]);
  const rows = filterRows(pixels, 28, 28, [0]);
  const cases: Record<string, Buffer> = {
    'another size': grayPng(noise(27 * 28, 1), 27, 28),
    '16-bit': withHeader(ihdr(28, 28, 16, 0)),
    RGB: withHeader(ihdr(28, 28, 8, 2)),
    palette: withHeader(ihdr(28, 28, 8, 3)),
    'gray + alpha': withHeader(ihdr(28, 28, 8, 4)),
    interlaced: withHeader(ihdr(28, 28, 8, 0, 1)),
    'bad CRC': Buffer.concat([good.subarray(0, good.length - 13), Buffer.from([good[good.length - 13]! ^ 1]), good.subarray(good.length - 12)]),
    'bytes after IEND': Buffer.concat([good, Buffer.from([0])]),
    'no IEND': good.subarray(0, good.length - 12),
    'a row short': withHeader(ihdr(28, 28), chunk('IDAT', deflateSync(rows.subarray(0, rows.length - 29)))),
    'a byte long': withHeader(ihdr(28, 28), chunk('IDAT', deflateSync(Buffer.concat([rows, Buffer.from([0])])))),
    'data after the zlib stream': withHeader(ihdr(28, 28), chunk('IDAT', Buffer.concat([deflateSync(rows), Buffer.from([1, 2, 3])]))),
    'filter type 5': withHeader(ihdr(28, 28), chunk('IDAT', deflateSync(Buffer.from(rows).fill(5, 0, 1)))),
    'IDAT split by a text chunk': withHeader(ihdr(28, 28), Buffer.concat([
      chunk('IDAT', deflateSync(rows).subarray(0, 10)), chunk('tEXt', Buffer.from('a\0b')), chunk('IDAT', deflateSync(rows).subarray(10)),
    ])),
    'IHDR not first': Buffer.concat([SIGNATURE, chunk('tEXt', Buffer.from('a\0b')), ihdr(28, 28), idat, chunk('IEND')]),
  };
  for (const [name, png] of Object.entries(cases)) assert.equal(decodeGray8Png(png, 28, 28), undefined, name);
  // The damaged ones still get sharp's answer through decodeImage, not a crash.
  await assert.rejects(decodeImage(cases['bad CRC']!, GRAY28), (e: { code?: string }) => e.code === 'IMAGE_UNDECODABLE');
  // IDAT split across several consecutive chunks is normal PNG.
  const z = deflateSync(rows);
  assert.deepEqual(decodeGray8Png(withHeader(ihdr(28, 28), Buffer.concat([chunk('IDAT', z.subarray(0, 7)), chunk('IDAT', z.subarray(7))])), 28, 28), pixels);
});

test('Fuzz: whenever the fast path takes a mutated PNG, sharp decodes the same file to the same pixels', async () => {
  const base = await validPng();
  const edits = fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 6 });
  // Two families: bytes of the file edited (CRCs repaired or not), and well-compressed image data
  // whose filter bytes and samples are random (filter types up to 6, so some are invalid).
  const files = fc.oneof(
    fc.tuple(edits, fc.boolean()).map(([e, fixCrc]) => {
      const png = Buffer.from(base);
      for (const [at, v] of e) png[at % png.length] = v;
      return fixCrc ? fixPngCrcs(png) : png;
    }),
    fc.tuple(fc.uint8Array({ minLength: 28 * 29, maxLength: 28 * 29 }), fc.integer({ min: 0, max: 6 })).map(([rows, maxFilter]) => {
      const r = Buffer.from(rows);
      for (let y = 0; y < 28; y++) r[y * 29] = r[y * 29]! % (maxFilter + 1);
      return Buffer.concat([SIGNATURE, ihdr(28, 28), chunk('IDAT', deflateSync(r)), chunk('IEND')]);
    }),
  );
  let taken = 0;
  await fc.assert(
    fc.asyncProperty(
      files,
      async (png) => {
        const fast = decodeGray8Png(png, 28, 28);
        if (!fast) return;
        taken++;
        const sharpSide = await sharpPixels(png);
        assert.deepEqual(Float32Array.from(fast, (b) => b / 255), sharpSide);
      },
    ),
    { numRuns: Number(process.env.QGATE_FUZZ_RUNS ?? 150) * 2, seed: Number(process.env.QGATE_FUZZ_SEED ?? 20261203) },
  );
  assert.ok(taken > 0, 'some mutated files reach the fast path');
  if (process.env.QGATE_FUZZ_RUNS) console.log(`fast path took ${taken} files`);
});
