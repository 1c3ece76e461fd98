/**
 * Reference sets: the features of real images that D_r measures against, plus the calibration of
 * both Norm maps, computed once when the set is built and stored with it.
 *
 * Calibration (the bounds Norm maps to 0 and 1):
 *  - noise, per estimator: lo = the median NoiseLevel of the clean reference images, hi = the
 *    median NoiseLevel of uniform-noise images (every pixel U[0,1], i.e. σ = 1/√12 ≈ 0.289).
 *    A typical real image reads 0, an image that is nothing but noise reads 1.
 *  - distance: lo = the median leave-one-out k-NN distance among the reference features (how far
 *    a real image typically is from the other real images), hi = the median k-NN distance of the
 *    same uniform-noise images. A typical real image reads 0, pure noise reads 1.
 * Medians, not min/max, so one odd image cannot move the bounds. The uniform-noise images come from
 * a fixed seed; the bounds never change after the build, so the same image gets the same Q in
 * every process and on every call.
 *
 * Files: manifest.json, features.f32 ([count, featureSize] float32 little-endian) and radii.f32
 * ([count]: each reference's distance to its own k-th nearest neighbour, for the realism score).
 * The manifest holds SHA-256 checksums of both and they are checked on load.
 */
import { createHash } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { writeDirAtomically } from '../atomic-dir.ts';
import { QgateError } from '../errors.ts';
import { mulberry32 } from '../random.ts';
import type { FeatureExtractor } from './extractor.ts';
import { NOISE_ESTIMATOR_NAMES, noiseEstimators, type NoiseEstimatorName } from './noise.ts';
import type { NormBounds, ReferenceTensors } from './score.ts';
import { squaredDistances } from './score.ts';

export const REFERENCE_FORMAT = 'qgate-reference/1';
/** The seed of the uniform-noise images used as the "pure noise" calibration point. */
export const CALIBRATION_NOISE_SEED = 20240607;

export interface ReferenceManifest {
  format: typeof REFERENCE_FORMAT;
  id: string;
  extractor: { id: string; featureLayer: string; featureSize: number };
  data: { spec: string; count: number; [key: string]: unknown };
  count: number;
  featureSize: number;
  k: number;
  calibration: {
    method: string;
    noiseImages: { kind: 'uniform'; count: number; seed: number };
    noise: Record<NoiseEstimatorName, NormBounds>;
    distance: NormBounds;
  };
  realism: { radiusCutoff: number; used: number };
  files: { features: string; radii: string };
  sha256: { features: string; radii: string };
  createdAt: string;
  [key: string]: unknown;
}

export interface ReferenceSet {
  manifest: ReferenceManifest;
  tensors: ReferenceTensors;
  dispose(): void;
}

export interface BuiltReference {
  manifest: ReferenceManifest;
  features: Float32Array;
  radii: Float32Array;
}

const FEATURES_FILE = 'features.f32';
const RADII_FILE = 'radii.f32';

function median(values: ArrayLike<number>): number {
  const sorted = Float64Array.from(values).sort();
  const n = sorted.length;
  return n % 2 ? sorted[(n - 1) / 2]! : (sorted[n / 2 - 1]! + sorted[n / 2]!) / 2;
}

function sha256(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

function bytesOf(a: Float32Array): Uint8Array {
  return new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
}

/** Runs `fn` over [n, ...] images in batches and concatenates the per-image rows. */
function mapBatches(
  images: Float32Array, shape: [number, number, number], n: number, rowSize: number,
  fn: (batch: tf.Tensor4D) => tf.Tensor, batchSize = 256,
): Float32Array {
  const pixels = shape[0] * shape[1] * shape[2];
  const out = new Float32Array(n * rowSize);
  for (let start = 0; start < n; start += batchSize) {
    const m = Math.min(batchSize, n - start);
    // Read after the tidy: a tidy walks every element of what it returns looking for tensors, and
    // for a typed array of 256 rows of features that walk took longer than computing them.
    const rows = tf.tidy(() => fn(tf.tensor4d(images.subarray(start * pixels, (start + m) * pixels), [m, ...shape])));
    try {
      out.set(rows.dataSync(), start * rowSize);
    } finally {
      rows.dispose();
    }
  }
  return out;
}

export function tensorsFrom(features: Float32Array, radii: Float32Array, featureSize: number, k: number, radiusCutoff: number): ReferenceTensors {
  return tf.tidy(() => {
    const count = radii.length;
    const f = tf.tensor2d(features, [count, featureSize]);
    const r = tf.tensor1d(radii);
    return {
      features: tf.keep(f),
      featuresT: tf.keep(f.transpose() as tf.Tensor2D),
      normsSq: tf.keep(f.square().sum(1) as tf.Tensor1D),
      radii: tf.keep(r),
      realismMask: tf.keep(tf.sub(1, tf.step(r.sub(radiusCutoff), 0)) as tf.Tensor1D),
      k,
    };
  });
}

export function disposeReferenceTensors(t: ReferenceTensors): void {
  tf.dispose([t.features, t.featuresT, t.normsSq, t.radii, t.realismMask]);
}

/** The k-th nearest distance of each query row to the reference rows, skipping `skip` nearest (1 = itself). */
function kthDistances(queries: Float32Array, count: number, ref: ReferenceTensors, featureSize: number, skip: number, chunk = 500): Float32Array {
  const out = new Float32Array(count);
  for (let start = 0; start < count; start += chunk) {
    const m = Math.min(chunk, count - start);
    const values = tf.tidy(() => {
      const q = tf.tensor2d(queries.subarray(start * featureSize, (start + m) * featureSize), [m, featureSize]);
      const { values } = tf.topk(squaredDistances(q, ref).neg(), ref.k + skip, true);
      return values.slice([0, ref.k + skip - 1], [-1, 1]).neg().sqrt().dataSync();
    });
    out.set(values, start);
  }
  return out;
}

export function uniformNoiseImages(count: number, shape: [number, number, number], seed: number): Float32Array {
  const rng = mulberry32(seed);
  const out = new Float32Array(count * shape[0] * shape[1] * shape[2]);
  for (let i = 0; i < out.length; i++) out[i] = rng();
  return out;
}

/**
 * Builds a reference set from `count` real images ([count, ...shape] in [0,1]; the extractor
 * resizes them to its input) and calibrates both Norm maps.
 */
export function buildReference(
  extractor: FeatureExtractor,
  images: Float32Array,
  shape: [number, number, number],
  count: number,
  opts: { id: string; k: number; dataSpec: string; dataInfo?: Record<string, unknown>; noiseImages?: number },
): BuiltReference {
  const [height, width, channels] = shape;
  if (!Number.isInteger(opts.k) || opts.k < 1 || opts.k >= count) {
    throw new QgateError('INVALID_ARGUMENT', `k must be an integer with 1 ≤ k < count (${count}), got ${opts.k}`);
  }
  if (images.length !== count * height * width * channels) {
    throw new QgateError('INVALID_ARGUMENT', `expected ${count} images of ${height}×${width}×${channels}, got ${images.length} values`);
  }
  const D = extractor.featureSize;
  const features = mapBatches(images, shape, count, D, (b) => extractor.features(b));

  const noiseCount = opts.noiseImages ?? 1000;
  const noise = uniformNoiseImages(noiseCount, shape, CALIBRATION_NOISE_SEED);
  const noiseFeatures = mapBatches(noise, shape, noiseCount, D, (b) => extractor.features(b));

  // Radii first, with a placeholder cutoff: the realism mask is not needed for distances.
  const provisional = tensorsFrom(features, new Float32Array(count), D, opts.k, 0);
  let radii: Float32Array;
  let noiseDistances: Float32Array;
  try {
    radii = kthDistances(features, count, provisional, D, 1);
    noiseDistances = kthDistances(noiseFeatures, noiseCount, provisional, D, 0);
  } finally {
    disposeReferenceTensors(provisional);
  }

  const noiseBounds = {} as Record<NoiseEstimatorName, NormBounds>;
  for (const name of NOISE_ESTIMATOR_NAMES) {
    const estimate = noiseEstimators[name];
    const lo = median(mapBatches(images, shape, count, 1, estimate));
    const hi = median(mapBatches(noise, shape, noiseCount, 1, estimate));
    if (!(hi > lo)) throw new QgateError('MODEL_INVALID', `noise calibration for '${name}' is degenerate (lo ${lo}, hi ${hi})`);
    noiseBounds[name] = { lo, hi };
  }
  const distance = { lo: median(radii), hi: median(noiseDistances) };
  if (!(distance.hi > distance.lo)) {
    throw new QgateError('MODEL_INVALID', `distance calibration is degenerate (lo ${distance.lo}, hi ${distance.hi}): noise lies as close to the references as they lie to each other`);
  }
  const radiusCutoff = median(radii);
  const manifest: ReferenceManifest = {
    format: REFERENCE_FORMAT,
    id: opts.id,
    extractor: { id: extractor.id, featureLayer: extractor.manifest.featureLayer, featureSize: D },
    data: { spec: opts.dataSpec, count, ...opts.dataInfo },
    count,
    featureSize: D,
    k: opts.k,
    calibration: {
      method: 'Norm bounds: lo = median over the clean reference images, hi = median over uniform-noise images; distance lo uses leave-one-out k-NN distances among the references',
      noiseImages: { kind: 'uniform', count: noiseCount, seed: CALIBRATION_NOISE_SEED },
      noise: noiseBounds,
      distance,
    },
    realism: { radiusCutoff, used: radii.filter((r) => r <= radiusCutoff).length },
    files: { features: FEATURES_FILE, radii: RADII_FILE },
    sha256: { features: sha256(bytesOf(features)), radii: sha256(bytesOf(radii)) },
    createdAt: new Date().toISOString(),
  };
  return { manifest, features, radii };
}

/** Writes a reference set atomically (temporary folder, then rename). */
export async function saveReference(dir: string, built: BuiltReference, extraManifest: Record<string, unknown> = {}): Promise<void> {
  await writeDirAtomically(dir, async (tmp) => {
    await writeFile(path.join(tmp, FEATURES_FILE), bytesOf(built.features));
    await writeFile(path.join(tmp, RADII_FILE), bytesOf(built.radii));
    await writeFile(path.join(tmp, 'manifest.json'), JSON.stringify({ ...built.manifest, ...extraManifest }, null, 2) + '\n');
  }, { replace: true });
}

async function readChecked(dir: string, file: string, expectedBytes: number, expectedSha: string): Promise<Float32Array> {
  const p = path.join(dir, file);
  let bytes: Buffer;
  try {
    bytes = await readFile(p);
  } catch (e) {
    throw new QgateError('MODEL_INVALID', `${p}: ${(e as Error).message}`, { cause: e });
  }
  if (bytes.byteLength !== expectedBytes) {
    throw new QgateError('MODEL_INVALID', `${p}: ${bytes.byteLength} bytes, the manifest implies ${expectedBytes}`);
  }
  if (sha256(bytes) !== expectedSha) throw new QgateError('MODEL_INVALID', `${p}: checksum does not match the manifest`);
  // Copy into an aligned buffer: a Buffer may sit at an odd offset inside Node's pool.
  return new Float32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength));
}

/** Loads a reference set, checking its files against the manifest. */
export async function loadReference(dir: string): Promise<ReferenceSet> {
  const manifestPath = path.join(dir, 'manifest.json');
  let manifest: ReferenceManifest;
  try {
    manifest = JSON.parse(await readFile(manifestPath, 'utf8')) as ReferenceManifest;
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code === 'ENOENT' ? 'NOT_FOUND' : 'MODEL_INVALID';
    throw new QgateError(code, `${manifestPath}: ${(e as Error).message}`, { cause: e });
  }
  if (manifest.format !== REFERENCE_FORMAT) {
    throw new QgateError('MODEL_INVALID', `${manifestPath}: format '${String(manifest.format)}' is not ${REFERENCE_FORMAT}`);
  }
  const { count, featureSize } = manifest;
  const features = await readChecked(dir, manifest.files.features, count * featureSize * 4, manifest.sha256.features);
  const radii = await readChecked(dir, manifest.files.radii, count * 4, manifest.sha256.radii);
  const tensors = tensorsFrom(features, radii, featureSize, manifest.k, manifest.realism.radiusCutoff);
  return { manifest, tensors, dispose: () => disposeReferenceTensors(tensors) };
}

/** The reference set in memory, without files (tests, and building then scoring in one process). */
export function referenceFromBuilt(built: BuiltReference): ReferenceSet {
  const m = built.manifest;
  const tensors = tensorsFrom(built.features, built.radii, m.featureSize, m.k, m.realism.radiusCutoff);
  return { manifest: m, tensors, dispose: () => disposeReferenceTensors(tensors) };
}
