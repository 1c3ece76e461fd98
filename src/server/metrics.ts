/**
 * The service's Prometheus metrics, all on one injected Registry (never prom-client's global one),
 * so each app instance, and each test, has its own.
 */
import * as tf from '@tensorflow/tfjs';
import { collectDefaultMetrics, Counter, Gauge, Histogram, type Registry } from 'prom-client';

export type Transport = 'http' | 'grpc';

export interface Metrics {
  readonly registry: Registry;
  requests: Counter<'transport' | 'method' | 'code'>;
  requestDuration: Histogram<'transport' | 'method'>;
  qualityScore: Histogram;
  gateDecisions: Counter<'decision'>;
  generatedImages: Counter<'generator' | 'version'>;
  generateAttempts: Counter<'generator' | 'version'>;
  batchSize: Histogram;
  queueDepth: Gauge;
  scoringShed: Counter<'reason'>;
  modelInfo: Gauge<'kind' | 'name' | 'version'>;
  modelReloads: Counter<'result'>;
}

export interface MetricsOptions {
  /** prom-client's default process metrics (on by default). */
  defaultMetrics?: boolean;
  /** Tensors held by the scoring worker threads, which tf.memory() here does not see. */
  workerTensors?: () => Promise<number>;
}

export function createMetrics(registry: Registry, options: MetricsOptions = {}): Metrics {
  const registers = [registry];
  if (options.defaultMetrics ?? true) collectDefaultMetrics({ register: registry });
  new Gauge({
    name: 'qgate_tf_tensors',
    help: 'Tensors currently allocated by TF.js (tf.memory().numTensors), main thread and scoring workers together; flat under steady load',
    registers,
    async collect() {
      // A pool shutting down answers UNAVAILABLE: the main thread's count is still worth reporting.
      const workers = options.workerTensors ? await options.workerTensors().catch(() => 0) : 0;
      this.set(tf.memory().numTensors + workers);
    },
  });
  return {
    registry,
    requests: new Counter({
      name: 'qgate_requests_total',
      help: 'Requests answered, by transport, method and result code (OK or a qgate error code)',
      labelNames: ['transport', 'method', 'code'] as const,
      registers,
    }),
    requestDuration: new Histogram({
      name: 'qgate_request_duration_seconds',
      help: 'Time from request received to response sent',
      labelNames: ['transport', 'method'] as const,
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers,
    }),
    qualityScore: new Histogram({
      name: 'qgate_quality_score',
      help: 'Q of every scored or generated image (0 best, 1 worst)',
      buckets: [0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5, 0.6, 0.8, 1],
      registers,
    }),
    gateDecisions: new Counter({
      name: 'qgate_gate_decisions_total',
      help: 'Gate decisions on scored and generated images (pass: Q < tau)',
      labelNames: ['decision'] as const,
      registers,
    }),
    generatedImages: new Counter({
      name: 'qgate_generated_images_total',
      help: 'Images returned by generate calls',
      labelNames: ['generator', 'version'] as const,
      registers,
    }),
    generateAttempts: new Counter({
      name: 'qgate_generate_attempts_total',
      help: 'Samples drawn by generate calls, including those rejected by the gate',
      labelNames: ['generator', 'version'] as const,
      registers,
    }),
    batchSize: new Histogram({
      name: 'qgate_batch_size',
      help: 'Images per model call made by the dynamic batcher',
      buckets: [1, 2, 4, 8, 16, 32, 64, 128, 256],
      registers,
    }),
    queueDepth: new Gauge({
      name: 'qgate_queue_depth',
      help: 'Images waiting in the scoring queue',
      registers,
    }),
    scoringShed: new Counter({
      name: 'qgate_scoring_shed_total',
      help: 'Score requests refused with OVERLOADED, by reason: queue_full (count bound), wait (expected wait over QGATE_MAX_QUEUE_WAIT_MS), deadline (expected wait past the call deadline), expired (dropped from the queue)',
      labelNames: ['reason'] as const,
      registers,
    }),
    modelInfo: new Gauge({
      name: 'qgate_model_info',
      help: 'Models being served (value 1): the extractor, the reference set and each active generator version',
      labelNames: ['kind', 'name', 'version'] as const,
      registers,
    }),
    modelReloads: new Counter({
      name: 'qgate_model_reloads_total',
      help: 'Generator versions loaded from the registry folder, by result',
      labelNames: ['result'] as const,
      registers,
    }),
  };
}

/** Counts one gate decision and its Q. */
export function observeScore(m: Metrics, q: number, passed: boolean): void {
  m.qualityScore.observe(q);
  m.gateDecisions.inc({ decision: passed ? 'pass' : 'fail' });
}
