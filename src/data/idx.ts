import { readFileSync } from 'node:fs';
import { gunzipSync } from 'node:zlib';
import { QgateError } from '../errors.ts';

/**
 * qgate's own reader for IDX files, the format MNIST ships in
 * (http://yann.lecun.com/exdb/mnist/). We parse it ourselves rather than depend on a package because
 * the format is tiny and because every way a file can be wrong must surface as one stable error
 * (DATA_MALFORMED, naming the file and the defect) instead of a garbage tensor further down.
 *
 * Layout: two zero bytes, a type code byte, a dimension-count byte, one big-endian uint32 per
 * dimension, then the elements in row-major order, big-endian for the multi-byte types. A file may
 * be gzip-compressed as a whole (as the files on LeCun's site are); that is detected by the gzip
 * magic 1f 8b, which can never start a raw IDX file since those start with 00 00.
 */

/** Element types by IDX name, with the typed array each one is returned in. */
export interface IdxTypedArrays {
  ubyte: Uint8Array;
  sbyte: Int8Array;
  short: Int16Array;
  int: Int32Array;
  float: Float32Array;
  double: Float64Array;
}

export type IdxDtype = keyof IdxTypedArrays;

/**
 * A parsed IDX file. `data` is a fresh array owned by the result (never a view on the input bytes),
 * holding `shape.reduce((a, b) => a * b, 1)` elements in row-major order, already in host order.
 */
export type IdxArray = {
  [D in IdxDtype]: { dtype: D; shape: number[]; data: IdxTypedArrays[D] };
}[IdxDtype];

interface DtypeInfo {
  dtype: IdxDtype;
  bytes: number;
}

/** The type codes of the IDX specification. */
const TYPE_CODES: ReadonlyMap<number, DtypeInfo> = new Map([
  [0x08, { dtype: 'ubyte', bytes: 1 }],
  [0x09, { dtype: 'sbyte', bytes: 1 }],
  [0x0b, { dtype: 'short', bytes: 2 }],
  [0x0c, { dtype: 'int', bytes: 4 }],
  [0x0d, { dtype: 'float', bytes: 4 }],
  [0x0e, { dtype: 'double', bytes: 8 }],
]);

/** The IDX type code for a dtype, for writers (tests, tools) that build IDX files. */
export function idxTypeCode(dtype: IdxDtype): number {
  for (const [code, info] of TYPE_CODES) if (info.dtype === dtype) return code;
  throw new QgateError('INVALID_ARGUMENT', `unknown IDX dtype ${String(dtype)}`);
}

function malformed(source: string, what: string, cause?: unknown): QgateError {
  return new QgateError('DATA_MALFORMED', `${source}: ${what}`, cause === undefined ? undefined : { cause });
}

function isGzip(bytes: Uint8Array): boolean {
  return bytes.length >= 2 && bytes[0] === 0x1f && bytes[1] === 0x8b;
}

function hex(n: number): string {
  return `0x${n.toString(16).padStart(2, '0')}`;
}

/**
 * Parses an IDX file from memory; `source` names it in error messages (a path, or any label).
 * Gzip-compressed input is decompressed first. Throws QgateError DATA_MALFORMED for: a header too
 * short, nonzero first two bytes, an unknown type code, zero dimensions, data shorter than the
 * dimensions need or followed by trailing bytes, and corrupt gzip.
 */
export function parseIdx(input: Uint8Array, source: string): IdxArray {
  let bytes = input;
  if (isGzip(bytes)) {
    try {
      bytes = gunzipSync(bytes);
    } catch (e) {
      throw malformed(source, `corrupt gzip data (${(e as Error).message})`, e);
    }
  }

  if (bytes.length < 4) {
    throw malformed(source, `too short for an IDX header: ${bytes.length} bytes, need at least 4`);
  }
  if (bytes[0] !== 0 || bytes[1] !== 0) {
    throw malformed(
      source,
      `not an IDX file: magic must start with two zero bytes, found ${hex(bytes[0] ?? 0)} ${hex(bytes[1] ?? 0)}`,
    );
  }
  const typeCode = bytes[2] ?? 0;
  const info = TYPE_CODES.get(typeCode);
  if (info === undefined) {
    throw malformed(source, `unknown IDX type code ${hex(typeCode)} (expected 0x08, 0x09, 0x0b, 0x0c, 0x0d or 0x0e)`);
  }
  const ndims = bytes[3] ?? 0;
  if (ndims === 0) throw malformed(source, 'IDX header declares zero dimensions');

  const headerBytes = 4 + 4 * ndims;
  if (bytes.length < headerBytes) {
    throw malformed(
      source,
      `too short for an IDX header with ${ndims} dimensions: ${bytes.length} bytes, need ${headerBytes}`,
    );
  }

  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const shape: number[] = [];
  for (let i = 0; i < ndims; i++) shape.push(view.getUint32(4 + 4 * i, false));
  // A float product is fine here: anything that loses precision (or reaches Infinity) is far more
  // than the bytes present and fails as "too short"; a zero dimension is handled first so that
  // Infinity * 0 cannot turn into NaN.
  const count = shape.includes(0) ? 0 : shape.reduce((a, b) => a * b, 1);
  const needed = count * info.bytes;
  const available = bytes.length - headerBytes;
  if (needed > available) {
    const need = Number.isSafeInteger(needed) ? `${needed}` : `more than ${Number.MAX_SAFE_INTEGER}`;
    throw malformed(
      source,
      `data too short: shape [${shape.join(', ')}] of ${info.dtype} needs ${need} bytes, found ${available}`,
    );
  }
  if (needed < available) {
    throw malformed(
      source,
      `${available - needed} trailing bytes after the data: shape [${shape.join(', ')}] of ${info.dtype} needs ${needed} bytes, found ${available}`,
    );
  }

  return { ...decodeElements(info.dtype, view, headerBytes, count), shape } as IdxArray;
}

/** Reads `count` big-endian elements starting at `offset` into a fresh host-order typed array. */
function decodeElements(
  dtype: IdxDtype,
  view: DataView,
  offset: number,
  count: number,
): { dtype: IdxDtype; data: IdxTypedArrays[IdxDtype] } {
  const start = view.byteOffset + offset;
  switch (dtype) {
    case 'ubyte':
      return { dtype, data: new Uint8Array(view.buffer.slice(start, start + count)) };
    case 'sbyte':
      return { dtype, data: new Int8Array(view.buffer.slice(start, start + count)) };
    case 'short': {
      const data = new Int16Array(count);
      for (let i = 0; i < count; i++) data[i] = view.getInt16(offset + 2 * i, false);
      return { dtype, data };
    }
    case 'int': {
      const data = new Int32Array(count);
      for (let i = 0; i < count; i++) data[i] = view.getInt32(offset + 4 * i, false);
      return { dtype, data };
    }
    case 'float': {
      const data = new Float32Array(count);
      for (let i = 0; i < count; i++) data[i] = view.getFloat32(offset + 4 * i, false);
      return { dtype, data };
    }
    case 'double': {
      const data = new Float64Array(count);
      for (let i = 0; i < count; i++) data[i] = view.getFloat64(offset + 8 * i, false);
      return { dtype, data };
    }
  }
}

/**
 * Reads and parses an IDX file (raw or gzip) from disk, synchronously: IDX files are read once at
 * start-up, where blocking is cheaper than the complexity of streaming. A missing file is
 * QgateError NOT_FOUND naming the path; a directory is DATA_MALFORMED; other I/O errors (permissions,
 * disk) are not the data's fault and propagate unchanged.
 */
export function readIdxFile(path: string): IdxArray {
  let bytes: Buffer;
  try {
    bytes = readFileSync(path);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') {
      throw new QgateError('NOT_FOUND', `IDX file not found: ${path}`, { cause: e });
    }
    if (code === 'EISDIR') throw malformed(path, 'is a directory, not an IDX file', e);
    throw e;
  }
  return parseIdx(bytes, path);
}

/**
 * Serialises an array as an uncompressed IDX file, the inverse of parseIdx. qgate does not write
 * IDX in production; this exists so tests and tools can build files without hand-packing bytes.
 */
export function encodeIdx(array: IdxArray): Uint8Array {
  const code = idxTypeCode(array.dtype);
  const bytesPer = TYPE_CODES.get(code)?.bytes ?? 1;
  if (array.shape.length === 0 || array.shape.length > 255) {
    throw new QgateError('INVALID_ARGUMENT', `IDX needs 1 to 255 dimensions, got ${array.shape.length}`);
  }
  const count = array.shape.reduce((a, b) => a * b, 1);
  if (count !== array.data.length) {
    throw new QgateError(
      'INVALID_ARGUMENT',
      `shape [${array.shape.join(', ')}] has ${count} elements but data has ${array.data.length}`,
    );
  }
  const header = 4 + 4 * array.shape.length;
  const out = new Uint8Array(header + count * bytesPer);
  const view = new DataView(out.buffer);
  out[2] = code;
  out[3] = array.shape.length;
  array.shape.forEach((dim, i) => view.setUint32(4 + 4 * i, dim, false));
  for (let i = 0; i < count; i++) {
    const v = array.data[i] ?? 0;
    const at = header + i * bytesPer;
    switch (array.dtype) {
      case 'ubyte':
        view.setUint8(at, v);
        break;
      case 'sbyte':
        view.setInt8(at, v);
        break;
      case 'short':
        view.setInt16(at, v, false);
        break;
      case 'int':
        view.setInt32(at, v, false);
        break;
      case 'float':
        view.setFloat32(at, v, false);
        break;
      case 'double':
        view.setFloat64(at, v, false);
        break;
    }
  }
  return out;
}
