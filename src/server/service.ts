/**
 * The core that both frontends call: scoring, generation and the generator registry, plus the
 * service's lifecycle state. REST and gRPC handlers are thin translations onto these methods.
 */
import { activeBackend } from '../backend/index.ts';
import type { ServiceConfig } from '../config.ts';
import { QgateError } from '../errors.ts';
import type { Quality } from '../quality/index.ts';
import { GenerationCore, type GenerateChunk, type GenerateParams, type GenerateResult } from './generation.ts';
import { readTrainingHistory, type TrainingHistory } from './history.ts';
import type { Metrics } from './metrics.ts';
import type { GeneratorInfo, GeneratorRegistry } from './registry.ts';
import type { Refusal } from './admission.ts';
import type { ScorePool } from './score-pool.ts';
import { ScoringCore, type ScoreResult } from './scoring.ts';

export type ServiceState = 'starting' | 'serving' | 'draining' | 'stopped';

export interface ServiceStatus {
  state: ServiceState;
  ready: boolean;
  /** qgate's backend name (gpu, node, wasm, cpu) and the TF.js one; null before the backend starts. */
  backend: { name: string; tfBackend: string; reason: string } | null;
  /** The gate and Norm's bounds: Norm(x) = clamp((x − lo)/(hi − lo), 0, 1). */
  gate: { tau: number; alpha: number; beta: number; noiseEstimator: string; calibration: { noise: { lo: number; hi: number }; distance: { lo: number; hi: number } } } | null;
  models: {
    extractor: { id: string; architecture: string; featureLayer: string; input: { height: number; width: number; channels: number } } | null;
    reference: { id: string; count: number; k: number; data: string } | null;
    generators: Array<{ name: string; active: string | null; pinned: string | null; loaded: string[] }>;
  };
  limits: { maxUploadBytes: number; maxPixels: number; generateMaxN: number; batchMaxFiles: number };
  uptimeSeconds: number;
}

export class QgateService {
  state: ServiceState = 'starting';
  readonly registry: GeneratorRegistry;
  private readonly config: ServiceConfig;
  private readonly metrics: Metrics;
  private cores: { quality: Quality; scoring: ScoringCore; generation: GenerationCore } | undefined;

  constructor(config: ServiceConfig, registry: GeneratorRegistry, metrics: Metrics) {
    this.config = config;
    this.registry = registry;
    this.metrics = metrics;
  }

  /** Called once the extractor and reference set are loaded. */
  /** `pool`: scoring runs on its worker threads (the main thread keeps generation and I/O). */
  attachQuality(quality: Quality, pool?: ScorePool): void {
    this.cores = {
      quality,
      scoring: new ScoringCore(quality, this.config, this.metrics, pool),
      generation: new GenerationCore(quality, this.registry, this.config, this.metrics),
    };
  }

  get quality(): Quality | undefined {
    return this.cores?.quality;
  }

  /** Ready: serving, with the extractor, the reference set and at least one generator loaded. */
  get ready(): boolean {
    return this.state === 'serving' && this.cores !== undefined && this.registry.ready;
  }

  /**
   * Whether a score request arriving now (with `deadline`, a gRPC call's, in ms on Date.now's clock)
   * would be refused at admission (undefined: admitted, or not serving yet).
   */
  scoreRefusal(deadline?: number): Refusal | undefined {
    return this.state === 'serving' ? this.cores?.scoring.refusal(Date.now(), deadline) : undefined;
  }

  private serving() {
    if (this.state === 'draining' || this.state === 'stopped') throw new QgateError('UNAVAILABLE', 'the service is shutting down');
    if (!this.cores || this.state !== 'serving') throw new QgateError('UNAVAILABLE', 'the service is starting: models are not loaded yet');
    return this.cores;
  }

  /** `deadline`: the gRPC call's, in ms on Date.now's clock; admission refuses what cannot make it. */
  score(image: Uint8Array, tau: number | undefined, signal?: AbortSignal, deadline?: number): Promise<ScoreResult> {
    return this.serving().scoring.score(image, tau, signal, deadline);
  }

  generate(p: GenerateParams, signal?: AbortSignal): Promise<GenerateResult> {
    return this.serving().generation.generate(p, signal);
  }

  generateStream(p: GenerateParams, signal?: AbortSignal): AsyncGenerator<GenerateChunk> {
    return this.serving().generation.chunks(p, this.config.generateStreamMaxN, signal);
  }

  listGenerators(): GeneratorInfo[] {
    return this.registry.list();
  }

  describeGenerator(name: string): GeneratorInfo {
    return this.registry.describe(name);
  }

  /** A published version's training history (its metrics.jsonl), if the trainer left one. */
  async trainingHistory(name: string, version: string): Promise<{ generator: string; version: string } & TrainingHistory> {
    const history = await readTrainingHistory(this.registry.versionDir(name, version));
    return { generator: name, version, ...history };
  }

  /** What is serving: the TF.js backend, the models, the gate and the limits a client should know. */
  status(): ServiceStatus {
    const backend = activeBackend();
    const q = this.cores?.quality;
    return {
      state: this.state,
      ready: this.ready,
      backend: backend ? { name: backend.name, tfBackend: backend.tfBackend, reason: backend.reason } : null,
      gate: q ? {
        tau: q.options.tau, alpha: q.options.alpha, beta: 1 - q.options.alpha, noiseEstimator: q.options.noiseEstimator,
        calibration: { noise: { lo: q.noiseBounds.lo, hi: q.noiseBounds.hi }, distance: { lo: q.distanceBounds.lo, hi: q.distanceBounds.hi } },
      } : null,
      models: {
        extractor: q ? { id: q.extractor.id, architecture: q.extractor.manifest.architecture, featureLayer: q.extractor.manifest.featureLayer, input: q.extractor.input } : null,
        reference: q ? { id: q.reference.manifest.id, count: q.reference.manifest.count, k: q.reference.manifest.k, data: q.reference.manifest.data.spec } : null,
        generators: this.registry.list().map((g) => ({
          name: g.name, active: g.active, pinned: g.pinned,
          loaded: g.versions.filter((v) => v.state === 'active' || v.state === 'loaded').map((v) => v.version),
        })),
      },
      limits: {
        maxUploadBytes: this.config.maxUploadBytes, maxPixels: this.config.maxPixels,
        generateMaxN: this.config.generateMaxN, batchMaxFiles: this.config.batchMaxFiles,
      },
      uptimeSeconds: Math.round(process.uptime()),
    };
  }

  pinGenerator(name: string, version: string | null): Promise<GeneratorInfo> {
    this.serving();
    return this.registry.pin(name, version);
  }

  /** Resolves when no scoring or generation work is left. */
  async idle(): Promise<void> {
    await this.cores?.scoring.idle();
    while ((this.cores?.generation.inFlight ?? 0) > 0) await new Promise((r) => setTimeout(r, 10));
  }
}
