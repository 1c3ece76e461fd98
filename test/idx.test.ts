import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { gzipSync } from 'node:zlib';
import { QgateError } from '../src/errors.ts';
import { encodeIdx, parseIdx, readIdxFile, type IdxArray } from '../src/data/idx.ts';

/** Builds IDX bytes by hand, so the tests do not trust encodeIdx to check parseIdx. */
function idxBytes(typeCode: number, shape: number[], data: number[], bytesPer: number, write: (v: DataView, at: number, x: number) => void): Uint8Array {
  const header = 4 + 4 * shape.length;
  const out = new Uint8Array(header + data.length * bytesPer);
  const view = new DataView(out.buffer);
  out[2] = typeCode;
  out[3] = shape.length;
  shape.forEach((d, i) => view.setUint32(4 + 4 * i, d, false));
  data.forEach((x, i) => write(view, header + i * bytesPer, x));
  return out;
}

function ubyte(shape: number[], data: number[]): Uint8Array {
  return idxBytes(0x08, shape, data, 1, (v, at, x) => v.setUint8(at, x));
}

function assertMalformed(fn: () => unknown, ...fragments: (string | RegExp)[]): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof QgateError, `expected a QgateError, got ${String(e)}`);
    assert.equal(e.code, 'DATA_MALFORMED');
    for (const f of fragments) {
      if (typeof f === 'string') assert.ok(e.message.includes(f), `${JSON.stringify(e.message)} should mention ${f}`);
      else assert.match(e.message, f);
    }
    return true;
  });
}

describe('parseIdx', () => {
  test('a valid ubyte file round-trips with its shape and values', () => {
    const parsed = parseIdx(ubyte([2, 3], [0, 1, 2, 253, 254, 255]), 'mem');
    assert.equal(parsed.dtype, 'ubyte');
    assert.deepEqual(parsed.shape, [2, 3]);
    assert.ok(parsed.data instanceof Uint8Array);
    assert.deepEqual([...parsed.data], [0, 1, 2, 253, 254, 255]);
  });

  const cases: { name: string; code: number; bytes: number; ctor: new (n: number) => ArrayLike<number>; values: number[]; write: (v: DataView, at: number, x: number) => void }[] = [
    { name: 'sbyte', code: 0x09, bytes: 1, ctor: Int8Array, values: [-128, -1, 0, 127], write: (v, at, x) => v.setInt8(at, x) },
    { name: 'short', code: 0x0b, bytes: 2, ctor: Int16Array, values: [-32768, -2, 258, 32767], write: (v, at, x) => v.setInt16(at, x, false) },
    { name: 'int', code: 0x0c, bytes: 4, ctor: Int32Array, values: [-2147483648, -3, 16909060, 2147483647], write: (v, at, x) => v.setInt32(at, x, false) },
    { name: 'float', code: 0x0d, bytes: 4, ctor: Float32Array, values: [-1.5, 0, 0.25, 3.4e38], write: (v, at, x) => v.setFloat32(at, x, false) },
    { name: 'double', code: 0x0e, bytes: 8, ctor: Float64Array, values: [-1e300, Math.PI, 0, 1e-300], write: (v, at, x) => v.setFloat64(at, x, false) },
  ];
  for (const c of cases) {
    test(`a valid ${c.name} file is read big-endian into a ${c.ctor.name}`, () => {
      const parsed = parseIdx(idxBytes(c.code, [2, 2], c.values, c.bytes, c.write), 'mem');
      assert.equal(parsed.dtype, c.name);
      assert.deepEqual(parsed.shape, [2, 2]);
      assert.ok(parsed.data instanceof c.ctor);
      assert.deepEqual([...parsed.data], c.values.map((x) => (c.name === 'float' ? Math.fround(x) : x)));
    });
  }

  test('encodeIdx output parses back to the same array for every dtype', () => {
    const arrays: IdxArray[] = [
      { dtype: 'ubyte', shape: [3], data: Uint8Array.of(1, 2, 3) },
      { dtype: 'sbyte', shape: [1, 3], data: Int8Array.of(-1, 0, 1) },
      { dtype: 'short', shape: [3, 1], data: Int16Array.of(-300, 0, 300) },
      { dtype: 'int', shape: [1, 1, 3], data: Int32Array.of(-70000, 0, 70000) },
      { dtype: 'float', shape: [3], data: Float32Array.of(-0.5, 0, 0.5) },
      { dtype: 'double', shape: [3], data: Float64Array.of(-0.1, 0, 0.1) },
    ];
    for (const a of arrays) assert.deepEqual(parseIdx(encodeIdx(a), 'mem'), a);
  });

  test('the result does not share memory with the input bytes', () => {
    const bytes = ubyte([2], [7, 8]);
    const parsed = parseIdx(bytes, 'mem');
    bytes[bytes.length - 1] = 99;
    assert.deepEqual([...parsed.data], [7, 8]);
  });

  test('an input that is a view into a larger buffer is read from its own offset', () => {
    const inner = idxBytes(0x0b, [2], [1, -1], 2, (v, at, x) => v.setInt16(at, x, false));
    const outer = new Uint8Array(inner.length + 3);
    outer.set(inner, 3);
    assert.deepEqual([...parseIdx(outer.subarray(3), 'mem').data], [1, -1]);
  });

  test('a zero-sized dimension gives an empty array', () => {
    const parsed = parseIdx(ubyte([0, 28, 28], []), 'mem');
    assert.deepEqual(parsed.shape, [0, 28, 28]);
    assert.equal(parsed.data.length, 0);
  });

  test('gzip-compressed input is detected and decompressed', () => {
    const parsed = parseIdx(gzipSync(ubyte([4], [9, 8, 7, 6])), 'mem.gz');
    assert.deepEqual([...parsed.data], [9, 8, 7, 6]);
  });

  test('an input shorter than four bytes is refused as too short for a header', () => {
    assertMalformed(() => parseIdx(new Uint8Array([0, 0, 8]), 'short.idx'), 'short.idx', /too short for an IDX header/);
    assertMalformed(() => parseIdx(new Uint8Array(0), 'empty.idx'), 'empty.idx', /too short/);
  });

  test('a header cut off inside its dimensions is refused as too short', () => {
    assertMalformed(() => parseIdx(ubyte([1, 2, 3], [1, 2, 3, 4, 5, 6]).subarray(0, 10), 'cut.idx'), 'cut.idx', /too short for an IDX header with 3 dimensions/);
  });

  test('nonzero first magic bytes are refused', () => {
    const bytes = ubyte([1], [5]);
    bytes[1] = 0x08;
    assertMalformed(() => parseIdx(bytes, 'magic.idx'), 'magic.idx', /two zero bytes/);
    const first = ubyte([1], [5]);
    first[0] = 0x01;
    assertMalformed(() => parseIdx(first, 'magic0.idx'), 'magic0.idx', /two zero bytes/);
  });

  test('an unknown type code is refused and named', () => {
    const bytes = ubyte([1], [5]);
    bytes[2] = 0x0a;
    assertMalformed(() => parseIdx(bytes, 'type.idx'), 'type.idx', /unknown IDX type code 0x0a/);
  });

  test('a header declaring zero dimensions is refused', () => {
    assertMalformed(() => parseIdx(new Uint8Array([0, 0, 8, 0, 1, 2]), 'zero.idx'), 'zero.idx', /zero dimensions/);
  });

  test('data shorter than the product of the dimensions is refused', () => {
    assertMalformed(() => parseIdx(ubyte([2, 3], [1, 2, 3, 4, 5, 6]).subarray(0, 17), 'trunc.idx'), 'trunc.idx', /data too short: shape \[2, 3\] of ubyte needs 6 bytes, found 5/);
  });

  test('data for a multi-byte type that is short of whole elements is refused', () => {
    const bytes = idxBytes(0x0c, [2], [1, 2], 4, (v, at, x) => v.setInt32(at, x, false));
    assertMalformed(() => parseIdx(bytes.subarray(0, bytes.length - 1), 'int.idx'), 'int.idx', /needs 8 bytes, found 7/);
  });

  test('dimensions whose product overflows are refused as too short, not as a crash', () => {
    assertMalformed(() => parseIdx(ubyte([0xffffffff, 0xffffffff, 0xffffffff], [1]), 'huge.idx'), 'huge.idx', /data too short/);
  });

  test('trailing bytes after the data are refused', () => {
    const bytes = new Uint8Array([...ubyte([2], [1, 2]), 0, 0, 0]);
    assertMalformed(() => parseIdx(bytes, 'trail.idx'), 'trail.idx', /3 trailing bytes/);
  });

  test('corrupt gzip data is refused', () => {
    const gz = gzipSync(ubyte([64], new Array<number>(64).fill(3)));
    assertMalformed(() => parseIdx(gz.subarray(0, gz.length - 8), 'cut.gz'), 'cut.gz', /corrupt gzip/);
    const flipped = Uint8Array.from(gz);
    flipped[12] = (flipped[12] ?? 0) ^ 0xff;
    assertMalformed(() => parseIdx(flipped, 'flip.gz'), 'flip.gz', /corrupt gzip/);
  });

  test('a well-formed gzip of a malformed IDX is refused for the IDX defect', () => {
    assertMalformed(() => parseIdx(gzipSync(new Uint8Array([0, 0, 8, 0])), 'inner.gz'), 'inner.gz', /zero dimensions/);
  });
});

describe('readIdxFile', () => {
  const dir = mkdtempSync(join(tmpdir(), 'qgate-idx-'));
  after(() => rmSync(dir, { recursive: true, force: true }));

  test('a file on disk is read and parsed, raw or gzip', () => {
    const raw = join(dir, 'a-idx1-ubyte');
    const gz = join(dir, 'a-idx1-ubyte.gz');
    writeFileSync(raw, ubyte([3], [1, 2, 3]));
    writeFileSync(gz, gzipSync(ubyte([3], [1, 2, 3])));
    assert.deepEqual([...readIdxFile(raw).data], [1, 2, 3]);
    assert.deepEqual([...readIdxFile(gz).data], [1, 2, 3]);
  });

  test('a malformed file is refused with its path in the message', () => {
    const path = join(dir, 'bad-idx');
    writeFileSync(path, new Uint8Array([1, 2, 3, 4, 5]));
    assertMalformed(() => readIdxFile(path), path);
  });

  test('a missing file is NOT_FOUND naming the path', () => {
    const path = join(dir, 'missing-idx');
    assert.throws(() => readIdxFile(path), (e: unknown) => e instanceof QgateError && e.code === 'NOT_FOUND' && e.message.includes(path));
  });

  test('a directory is refused as malformed', () => {
    assertMalformed(() => readIdxFile(dir), dir, /directory/);
  });
});
