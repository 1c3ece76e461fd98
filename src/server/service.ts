/**
 * The core that both frontends call: scoring, generation and the generator registry, plus the
 * service's lifecycle state. REST and gRPC handlers are thin translations onto these methods.
 */
import type { ServiceConfig } from '../config.ts';
import { QgateError } from '../errors.ts';
import type { Quality } from '../quality/index.ts';
import { GenerationCore, type GenerateChunk, type GenerateParams, type GenerateResult } from './generation.ts';
import type { Metrics } from './metrics.ts';
import type { GeneratorInfo, GeneratorRegistry } from './registry.ts';
import { ScoringCore, type ScoreResult } from './scoring.ts';

export type ServiceState = 'starting' | 'serving' | 'draining' | 'stopped';

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
  attachQuality(quality: Quality): void {
    this.cores = {
      quality,
      scoring: new ScoringCore(quality, this.config, this.metrics),
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

  private serving() {
    if (this.state === 'draining' || this.state === 'stopped') throw new QgateError('UNAVAILABLE', 'the service is shutting down');
    if (!this.cores || this.state !== 'serving') throw new QgateError('UNAVAILABLE', 'the service is starting: models are not loaded yet');
    return this.cores;
  }

  score(image: Uint8Array, tau: number | undefined, signal?: AbortSignal): Promise<ScoreResult> {
    return this.serving().scoring.score(image, tau, signal);
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
