/**
 * Sampling from a generator with an optional gate. The latent vectors come from mulberry32(seed)
 * in order, so image k of a call always comes from the k-th latent vector: the same seed gives the
 * same images whatever the batch size.
 *
 * Rejection sampling: with tau, only images with Q < tau are kept, and at most
 * n × QGATE_GENERATE_MAX_ATTEMPTS_PER_IMAGE samples are drawn. When that bound is hit the call
 * still succeeds, with the images that passed (possibly none) and the number of attempts, so the
 * caller sees how selective its tau was instead of a bare error.
 */
import { randomInt } from 'node:crypto';
import * as tf from '@tensorflow/tfjs';
import type { ServiceConfig } from '../config.ts';
import { encodePng } from '../data/images.ts';
import { QgateError } from '../errors.ts';
import { validateTau, type Quality } from '../quality/index.ts';
import { mulberry32 } from '../random.ts';
import { abortError } from './batcher.ts';
import { observeScore, type Metrics } from './metrics.ts';
import type { GeneratorRegistry } from './registry.ts';

export interface GenerateParams {
  n: number;
  /** The gate for rejection sampling; absent: every sample is kept. */
  tau?: number | undefined;
  generator?: string | undefined;
  version?: string | undefined;
  /** 0 ≤ seed < 2^32; absent: random. */
  seed?: number | undefined;
}

export interface GeneratedImage {
  /** H × W × C values in [0,1]. */
  pixels: Float32Array;
  png: Buffer;
  q: number;
  passed: boolean;
}

export interface GenerateChunk {
  images: GeneratedImage[];
  /** Samples drawn so far in this call. */
  attempts: number;
  generator: string;
  version: string;
  seed: number;
  /** The tau images were judged by (the request's, else the configured one). */
  tau: number;
  imageShape: [number, number, number];
}

export interface GenerateResult extends GenerateChunk {
  /** True when fewer than n images passed within the attempt bound. */
  exhausted: boolean;
}

/** Checks a seed given as a number or a decimal string (uint64 over gRPC). */
export function parseSeed(raw: string | number | undefined): number | undefined {
  if (raw === undefined || raw === '') return undefined;
  const n = typeof raw === 'number' ? raw : /^\d{1,10}$/.test(raw) ? Number(raw) : NaN;
  if (!(Number.isSafeInteger(n) && n >= 0 && n < 2 ** 32)) {
    throw new QgateError('INVALID_ARGUMENT', `seed must be an integer with 0 ≤ seed < 2^32, got ${JSON.stringify(String(raw).slice(0, 40))}`);
  }
  return n;
}

export class GenerationCore {
  private running = 0;
  private readonly quality: Quality;
  private readonly registry: GeneratorRegistry;
  private readonly config: ServiceConfig;
  private readonly metrics: Metrics;

  constructor(quality: Quality, registry: GeneratorRegistry, config: ServiceConfig, metrics: Metrics) {
    this.quality = quality;
    this.registry = registry;
    this.config = config;
    this.metrics = metrics;
  }

  get inFlight(): number {
    return this.running;
  }

  /** The whole call at once (REST GET /generate, gRPC Generate). */
  async generate(p: GenerateParams, signal?: AbortSignal): Promise<GenerateResult> {
    let last: GenerateChunk | undefined;
    const images: GeneratedImage[] = [];
    for await (const chunk of this.chunks(p, this.config.generateMaxN, signal)) {
      images.push(...chunk.images);
      last = chunk;
    }
    return { ...last!, images, exhausted: images.length < p.n };
  }

  /**
   * The call as a stream of model batches (gRPC GenerateStream). Arguments are checked, and the
   * generator resolved, before the first chunk.
   */
  async *chunks(p: GenerateParams, maxN: number, signal?: AbortSignal): AsyncGenerator<GenerateChunk> {
    if (!(Number.isSafeInteger(p.n) && p.n >= 1 && p.n <= maxN)) {
      throw new QgateError('INVALID_ARGUMENT', `n must be an integer from 1 to ${maxN}, got ${p.n}`);
    }
    if (p.tau !== undefined) validateTau(p.tau);
    const tau = p.tau ?? this.quality.options.tau;
    const seed = p.seed ?? randomInt(0, 2 ** 32 - 1);
    if (this.running >= this.config.generateMaxConcurrent) {
      throw new QgateError('OVERLOADED', `${this.running} generate calls are running (QGATE_GENERATE_MAX_CONCURRENT); retry later`);
    }
    this.running++;
    const lease = await this.registry.acquire(p.generator, p.version).catch((e: unknown) => {
      this.running--;
      throw e;
    });
    try {
      const g = lease.generator;
      const shape = g.manifest.imageShape;
      const [h, w, c] = shape;
      const rand = mulberry32(seed);
      const bound = p.tau === undefined ? p.n : p.n * this.config.generateMaxAttemptsPerImage;
      let attempts = 0;
      let kept = 0;
      while (kept < p.n && attempts < bound) {
        // TF.js on wasm resolves data() without a macrotask turn, so without this a long call
        // would starve timers (deadlines) and other requests until it ends.
        await new Promise((r) => setImmediate(r));
        if (signal?.aborted) throw abortError(signal);
        const size = Math.min(this.config.maxBatchSize, p.tau === undefined ? p.n - kept : bound - attempts);
        const images = tf.tidy(() => g.sample(g.latent(size, rand)));
        let scores;
        let pixels: Float32Array;
        try {
          scores = await this.quality.score(images, tau);
          pixels = (await images.data()) as Float32Array;
        } finally {
          images.dispose();
        }
        attempts += size;
        const pending: Array<Promise<GeneratedImage>> = [];
        for (let i = 0; i < size && kept < p.n; i++) {
          const s = scores[i]!;
          observeScore(this.metrics, s.q, s.pass);
          if (p.tau !== undefined && !s.pass) continue;
          const px = pixels.slice(i * h * w * c, (i + 1) * h * w * c);
          // Encoded together: sharp runs each on the libuv pool, so they overlap instead of queueing.
          pending.push(encodePng(px, h, w, c as 1 | 3).then((png) => ({ pixels: px, png, q: s.q, passed: s.pass })));
          kept++;
        }
        const out = await Promise.all(pending);
        const labels = { generator: lease.name, version: lease.version };
        this.metrics.generateAttempts.inc(labels, size);
        if (out.length) this.metrics.generatedImages.inc(labels, out.length);
        this.registry.recordServed(lease.name, lease.version, out.length, size);
        yield { images: out, attempts, generator: lease.name, version: lease.version, seed, tau, imageShape: shape };
      }
    } finally {
      lease.release();
      this.running--;
    }
  }
}

/** Lays images out on a grid of ceil(√n) columns; cells past the last image stay black. */
export function gridPixels(images: Float32Array[], n: number, [h, w, c]: [number, number, number]): { pixels: Float32Array; height: number; width: number } {
  const cols = Math.ceil(Math.sqrt(n));
  const rows = Math.ceil(n / cols);
  const width = cols * w;
  const height = rows * h;
  const pixels = new Float32Array(height * width * c);
  images.forEach((img, k) => {
    const r = Math.floor(k / cols);
    const col = k % cols;
    for (let y = 0; y < h; y++) {
      pixels.set(img.subarray(y * w * c, (y + 1) * w * c), ((r * h + y) * width + col * w) * c);
    }
  });
  return { pixels, height, width };
}
