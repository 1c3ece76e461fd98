/**
 * Property-based fuzzing of the decoder path with fast-check: random bytes, random bytes behind a
 * real format's magic number, and mutated valid PNG and JPEG files (byte edits, cuts, insertions;
 * PNGs also with their chunk CRCs repaired so the mutation reaches libpng and zlib). decodeImage
 * must resolve with a well-formed 28×28 image or reject with an input-error code of the catalogue,
 * and the REST endpoint must never answer 5xx.
 *
 * Seeded and short in `npm test`; longer: QGATE_FUZZ_RUNS=5000 [QGATE_FUZZ_SEED=n] node --import tsx
 * --test test/decoder-fuzz.test.ts
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { decodeImage } from '../src/data/images.ts';
import { isQgateError } from '../src/errors.ts';
import { fixPngCrcs, validJpeg, validPng } from './hostile/corpus.ts';
import { startApp, type Running } from './server-fixture.ts';

const RUNS = Number(process.env.QGATE_FUZZ_RUNS ?? 150);
const SEED = Number(process.env.QGATE_FUZZ_SEED ?? 20261203);
const GRAY28 = { height: 28, width: 28, channels: 1 } as const;
/** Codes bad input may get; anything else (INTERNAL above all) is a bug. */
const INPUT_CODES = new Set(['IMAGE_MISSING', 'IMAGE_UNDECODABLE', 'IMAGE_TOO_LARGE', 'UNSUPPORTED_FORMAT']);

const MAGICS = [
  [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a], // PNG
  [0xff, 0xd8, 0xff], // JPEG
  [...Buffer.from('GIF89a')],
  [...Buffer.from('RIFF'), 0, 0, 0, 0, ...Buffer.from('WEBPVP8 ')],
  [0x49, 0x49, 0x2a, 0x00], // TIFF, little-endian
  [0, 0, 0, 0x1c, ...Buffer.from('ftypavif')],
].map((m) => Uint8Array.from(m));

interface Mutation {
  edits: Array<[number, number]>;
  cut: number | null;
  insert: [number, Uint8Array] | null;
  fixCrc: boolean;
}

const mutationArb: fc.Arbitrary<Mutation> = fc.record({
  edits: fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { maxLength: 12 }),
  cut: fc.option(fc.nat(), { nil: null }),
  insert: fc.option(fc.tuple(fc.nat(), fc.uint8Array({ maxLength: 64 })), { nil: null }),
  fixCrc: fc.boolean(),
});

function mutate(base: Buffer, m: Mutation, isPng: boolean): Buffer {
  let out = Buffer.from(base);
  for (const [at, value] of m.edits) out[at % out.length] = value;
  if (m.insert) {
    const at = m.insert[0] % (out.length + 1);
    out = Buffer.concat([out.subarray(0, at), m.insert[1], out.subarray(at)]);
  }
  if (m.cut !== null) out = out.subarray(0, m.cut % (out.length + 1));
  return isPng && m.fixCrc ? fixPngCrcs(out) : out;
}

/** Arbitrary hostile inputs of every family, built around the two valid images. */
function inputArb(png: Buffer, jpeg: Buffer): fc.Arbitrary<Buffer> {
  return fc.oneof(
    fc.uint8Array({ maxLength: 2048 }).map((b) => Buffer.from(b)),
    fc.tuple(fc.constantFrom(...MAGICS), fc.uint8Array({ maxLength: 512 })).map(([m, b]) => Buffer.concat([m, b])),
    mutationArb.map((m) => mutate(png, m, true)),
    mutationArb.map((m) => mutate(jpeg, m, false)),
  );
}

let png: Buffer;
let jpeg: Buffer;
let s: Running;
before(async () => {
  png = await validPng();
  jpeg = await validJpeg();
  s = await startApp();
});
after(async () => {
  await s.close();
});

test('Fuzz: decodeImage gives a well-formed image or an input-error code, never anything else', async () => {
  const seen = new Map<string, number>();
  await fc.assert(
    fc.asyncProperty(inputArb(png, jpeg), async (bytes) => {
      try {
        const d = await decodeImage(bytes, GRAY28);
        assert.equal(d.pixels.length, 28 * 28);
        for (const v of d.pixels) assert.ok(v >= 0 && v <= 1);
        seen.set('OK', (seen.get('OK') ?? 0) + 1);
      } catch (e) {
        assert.ok(isQgateError(e), `not a QgateError: ${String(e)}`);
        assert.ok(INPUT_CODES.has(e.code), `${e.code}: ${e.message}`);
        seen.set(e.code, (seen.get(e.code) ?? 0) + 1);
      }
    }),
    { numRuns: RUNS * 4, seed: SEED },
  );
  // The generators must reach both sides of the decoder, or the property proves little.
  assert.ok((seen.get('OK') ?? 0) > 0 && (seen.get('IMAGE_UNDECODABLE') ?? 0) > 0, JSON.stringify([...seen]));
});

test('Fuzz: POST /score never answers 5xx, and always with a catalogue code', async () => {
  await fc.assert(
    fc.asyncProperty(inputArb(png, jpeg), async (bytes) => {
      const res = await fetch(`${s.base}/score`, { method: 'POST', body: new Uint8Array(bytes), headers: { 'content-type': 'image/png' }, signal: AbortSignal.timeout(5000) });
      const body = (await res.json()) as { q?: number; error?: { code: string } };
      assert.ok(res.status < 500, `HTTP ${res.status}: ${JSON.stringify(body)}`);
      if (res.status === 200) assert.equal(typeof body.q, 'number');
      else assert.ok(INPUT_CODES.has(body.error!.code), JSON.stringify(body));
    }),
    { numRuns: RUNS, seed: SEED },
  );
  const ok = await fetch(`${s.base}/score`, { method: 'POST', body: new Uint8Array(png), headers: { 'content-type': 'image/png' } });
  assert.equal(ok.status, 200, 'still serving');
});
