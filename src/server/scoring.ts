/**
 * Scoring requests: admit (or refuse at once: see admission.ts), decode (sharp, on the libuv pool,
 * so off the event loop), then queue the pixels on the dynamic batcher, which scores concurrent
 * requests in one model call.
 */
import * as tf from '@tensorflow/tfjs';
import type { ServiceConfig } from '../config.ts';
import { decodeImage } from '../data/images.ts';
import type { ImageScore, Quality } from '../quality/index.ts';
import { validateTau } from '../quality/index.ts';
import { admissionRefusal, ServiceTimeEstimator, type Refusal } from './admission.ts';
import { abortError, DynamicBatcher } from './batcher.ts';
import { observeScore, type Metrics } from './metrics.ts';
import type { ScorePool } from './score-pool.ts';

export interface ScoreResult extends ImageScore {
  tau: number;
  format: string;
  width: number;
  height: number;
  reference: string;
  extractor: string;
}

interface Item {
  pixels: Float32Array;
  tau: number;
}

export class ScoringCore {
  private readonly batcher: DynamicBatcher<Item, ImageScore>;
  private readonly quality: Quality;
  private readonly config: ServiceConfig;
  private readonly metrics: Metrics;
  /** Requests between admission and their answer: decoding, queued or in the running batch. */
  private admitted = 0;
  /** Per-item service time, measured on batches of at least half the maximum size. */
  private readonly serviceTime: ServiceTimeEstimator;

  /**
   * `pool`: score on its worker threads, one batch per worker at a time; without it, batches run
   * one at a time on this (the main) thread.
   */
  constructor(quality: Quality, config: ServiceConfig, metrics: Metrics, pool?: ScorePool) {
    this.quality = quality;
    this.config = config;
    this.metrics = metrics;
    const { height, width, channels } = quality.extractor.input;
    const parallel = pool?.size ?? 1;
    this.serviceTime = new ServiceTimeEstimator(Math.ceil(config.maxBatchSize / 2), undefined, parallel);
    this.batcher = new DynamicBatcher<Item, ImageScore>({
      concurrency: parallel,
      maxBatchSize: config.maxBatchSize,
      maxQueueDelayMs: config.maxQueueDelayMs,
      // Admission is the only place an image is refused for space: it admits up to QGATE_MAX_QUEUE
      // + QGATE_MAX_BATCH_SIZE (decoding, queued or running), and the batcher may hold all of them.
      // With QGATE_MAX_QUEUE here, admitted images that met no running batch (between batches, or
      // waiting for one to fill) were refused after their decode, uncounted as shed: 16,815 of
      // 49,122 refusals in an 8 s gRPC overload run (docs/RELIABILITY.md, Overload).
      maxQueue: config.maxQueue + config.maxBatchSize,
      estimator: this.serviceTime,
      onQueueDepth: (d) => metrics.queueDepth.set(d),
      onBatch: (n) => metrics.batchSize.observe(n),
      onExpired: () => metrics.scoringShed.inc({ reason: 'expired' }),
      run: async (items) => {
        const size = height * width * channels;
        const pixels = new Float32Array(items.length * size);
        items.forEach((it, i) => pixels.set(it.pixels, i * size));
        // One model call serves requests with different taus: the gate is applied per item.
        const gate = (scores: ImageScore[]) => scores.map((s, i) => ({ ...s, pass: s.q < items[i]!.tau }));
        if (pool) return gate(await pool.score(pixels));
        const batch = tf.tensor4d(pixels, [items.length, height, width, channels]);
        try {
          return gate(await quality.score(batch));
        } finally {
          batch.dispose();
        }
      },
    });
  }

  get defaultTau(): number {
    return this.quality.options.tau;
  }

  /** Resolves when no image waits or is being scored. */
  idle(): Promise<void> {
    return this.batcher.idle();
  }

  /**
   * Decodes and scores one image. Bad bytes and a bad tau reject with their catalogue codes.
   * Admission comes first, before the request costs a decode: it is OVERLOADED at once when
   * QGATE_MAX_QUEUE images wait and a batch's worth is being decoded or scored, when the expected
   * wait is over QGATE_MAX_QUEUE_WAIT_MS, or when it is past `deadline` (gRPC; ms, Date.now's clock).
   */
  /**
   * What admission would answer a score request arriving now: undefined to admit, else why not.
   * No side effects, so the REST server can ask it before it reads a request (see app.ts).
   */
  refusal(now = Date.now(), deadline?: number): Refusal | undefined {
    return admissionRefusal({
      admitted: this.admitted, maxAdmitted: this.config.maxQueue + this.config.maxBatchSize,
      perItemMs: this.serviceTime.perItemMs, maxWaitMs: this.config.maxQueueWaitMs, now, deadline,
    });
  }

  async score(bytes: Uint8Array, tau: number | undefined, signal?: AbortSignal, deadline?: number): Promise<ScoreResult> {
    const t = tau ?? this.defaultTau;
    validateTau(t);
    const now = Date.now();
    const refusal = this.refusal(now, deadline);
    if (refusal) {
      this.metrics.scoringShed.inc({ reason: refusal.reason });
      throw refusal.error;
    }
    this.admitted++;
    try {
      return await this.decodeAndScore(bytes, t, signal, now + this.config.maxQueueWaitMs, deadline);
    } finally {
      this.admitted--;
    }
  }

  private async decodeAndScore(bytes: Uint8Array, t: number, signal: AbortSignal | undefined, expiresAt: number, deadline: number | undefined): Promise<ScoreResult> {
    const decoded = await decodeImage(bytes, this.quality.extractor.input, {
      maxBytes: this.config.maxUploadBytes,
      maxPixels: this.config.maxPixels,
    });
    if (signal?.aborted) throw abortError(signal);
    const s = await this.batcher.submit({ pixels: decoded.pixels, tau: t }, { signal, expiresAt, deadline });
    observeScore(this.metrics, s.q, s.pass);
    return {
      ...s,
      tau: t,
      format: decoded.format,
      width: decoded.width,
      height: decoded.height,
      reference: this.quality.reference.manifest.id,
      extractor: this.quality.extractor.id,
    };
  }
}
