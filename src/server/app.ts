/**
 * The composition root. create() builds everything without listening or loading (tests inject a
 * small Quality); load() loads the models; listen() binds both servers; start() does all three and
 * installs the signal handlers. stop() drains in order: readiness false, in-flight requests finish,
 * HTTP closes and gRPC shuts down (forced after QGATE_SHUTDOWN_TIMEOUT_MS), models are disposed.
 */
import http from 'node:http';
import os from 'node:os';
import type { AddressInfo } from 'node:net';
import * as grpc from '@grpc/grpc-js';
import { ReflectionService } from '@grpc/reflection';
import { HealthImplementation } from 'grpc-health-check';
import { Registry } from 'prom-client';
import { initBackend, wasmThreadsFor, type BackendName } from '../backend/index.ts';
import type { Config } from '../config.ts';
import { logger as defaultLogger, type Logger } from '../log.ts';
import { loadQuality, type Quality } from '../quality/index.ts';
import type { Generator } from '../generator/index.ts';
import { createHttpApp, refuseScoreEarly } from './http.ts';
import { addToServer, loadQgateProto, SERVICE_NAME, setConnectionWindow } from './grpc.ts';
import { createMetrics, type Metrics } from './metrics.ts';
import { GeneratorRegistry } from './registry.ts';
import { ScorePool } from './score-pool.ts';
import { QgateService } from './service.ts';

export interface AppOverrides {
  /** A ready Quality (tests); otherwise loaded from config (and then owned and disposed by the app). */
  quality?: Quality;
  log?: Logger;
  /** prom-client default process metrics (on by default). */
  defaultMetrics?: boolean;
  /** Replaces loadGenerator (tests inject failures). */
  loadGenerator?: (dir: string) => Promise<Generator>;
}

export interface QgateApp {
  readonly config: Config;
  readonly service: QgateService;
  readonly metrics: Metrics;
  readonly registry: Registry;
  readonly httpServer: http.Server;
  /** The Express app behind httpServer (which answers overload before it: see refuseScoreEarly). */
  readonly httpApp: ReturnType<typeof createHttpApp>;
  readonly grpcServer: grpc.Server;
  /** Loads the backend, the extractor and reference set, and the generators; then serves. */
  load(): Promise<void>;
  /** Binds HTTP and gRPC; the ports are the real ones (useful with port 0). */
  listen(): Promise<{ httpPort: number; grpcPort: number }>;
  /** Drains and closes everything; resolves false if a step failed or timed out. Safe to call twice. */
  stop(): Promise<boolean>;
}

/**
 * Scoring workers for QGATE_SCORE_WORKERS. `auto`: one per core, at most 4, where the backend
 * computes on the calling thread (wasm: its own thread pool does not start under Node; cpu); none
 * on the native backends, whose kernels already use every core (and a GPU is shared badly).
 */
export function scoreWorkerCount(setting: number | 'auto', backend: BackendName): number {
  if (setting !== 'auto') return setting;
  return backend === 'wasm' || backend === 'cpu' ? Math.min(4, os.availableParallelism()) : 0;
}

export function create(config: Config, overrides: AppOverrides = {}): QgateApp {
  const log = overrides.log ?? defaultLogger;
  const s = config.service;
  const registry = new Registry();
  let pool: ScorePool | undefined;
  const metrics = createMetrics(registry, {
    defaultMetrics: overrides.defaultMetrics ?? true,
    workerTensors: async () => (pool ? pool.tensors() : 0),
  });
  const generators = new GeneratorRegistry({
    dir: s.generatorsDir, pins: s.pins, defaultGenerator: s.defaultGenerator,
    watch: s.registryWatch, rescanMs: s.registryRescanMs, metrics, log,
    ...(overrides.loadGenerator ? { load: overrides.loadGenerator } : {}),
  });
  const service = new QgateService(s, generators, metrics);

  const httpApp = createHttpApp({ service, config: s, metrics, registry, log });
  const httpServer = http.createServer({ requestTimeout: s.httpRequestTimeoutMs, headersTimeout: Math.min(s.httpRequestTimeoutMs, 60_000) }, (req, res) => {
    // Overload is refused before Express sees the request (see refuseScoreEarly).
    if (!refuseScoreEarly(req, res, { service, config: s, metrics })) httpApp(req, res);
  });

  const grpcServer = new grpc.Server({
    'grpc.max_receive_message_length': s.maxUploadBytes + 4096,
    'grpc.max_send_message_length': s.grpcMaxSendBytes,
  });
  const { definition } = loadQgateProto();
  addToServer(grpcServer, definition, { service, metrics, log, retryAfterSeconds: s.retryAfterSeconds });
  const health = new HealthImplementation({ '': 'NOT_SERVING', [SERVICE_NAME]: 'NOT_SERVING' });
  health.addToServer(grpcServer);
  new ReflectionService(definition).addToServer(grpcServer);
  const setHealth = (status: 'SERVING' | 'NOT_SERVING') => {
    health.setStatus('', status);
    health.setStatus(SERVICE_NAME, status);
  };

  let ownedQuality: Quality | undefined;
  let stopping: Promise<boolean> | undefined;

  const load = async (): Promise<void> => {
    const backend = await initBackend(config.backend, log, { wasmThreads: wasmThreadsFor(config.wasmThreads, 'service') });
    let quality = overrides.quality;
    if (!quality) {
      quality = await loadQuality(config);
      ownedQuality = quality;
      // An injected Quality (tests) cannot be handed to worker threads: it is scored where it lives.
      const workers = scoreWorkerCount(s.scoreWorkers, backend.name);
      if (workers > 0) {
        pool = await ScorePool.start({ backend: backend.name, quality: config }, workers);
        log.info({ workers }, 'scoring on worker threads');
      }
    }
    metrics.modelInfo.set({ kind: 'extractor', name: quality.extractor.id, version: String(quality.extractor.manifest.createdAt ?? '') }, 1);
    metrics.modelInfo.set({ kind: 'reference', name: quality.reference.manifest.id, version: quality.reference.manifest.createdAt }, 1);
    service.attachQuality(quality, pool);
    await generators.start();
    if (service.state !== 'starting') {
      // Stopped while loading: stop() may have run before the pool existed, and its worker threads
      // would keep the process alive.
      await pool?.close();
      return;
    }
    service.state = 'serving';
    if (!generators.ready) log.warn({ dir: s.generatorsDir }, 'no generator loaded: /readyz answers 503 until one is published');
    setHealth('SERVING');
    log.info({ ready: service.ready }, 'models loaded');
  };

  const listen = async () => {
    const httpPort = await new Promise<number>((resolve, reject) => {
      httpServer.once('error', reject);
      httpServer.listen({ port: s.httpPort, host: s.host, backlog: s.httpBacklog }, () => {
        httpServer.off('error', reject);
        resolve((httpServer.address() as AddressInfo).port);
      });
    });
    const grpcPort = await new Promise<number>((resolve, reject) => {
      grpcServer.bindAsync(`${s.host}:${s.grpcPort}`, grpc.ServerCredentials.createInsecure(), (err, port) => (err ? reject(err) : resolve(port)));
    });
    // Every connection's flow-control window (see setConnectionWindow): without it calls under
    // overload wait in the client for HTTP/2's 64 KiB instead of reaching admission.
    if (setConnectionWindow(grpcServer, s.grpcConnectionWindowBytes) === 0) {
      log.warn('could not set the gRPC connection window (grpc-js internals changed?): HTTP/2 connections keep 64 KiB');
    }
    log.info({ httpPort, grpcPort }, `qgate listening: HTTP ${s.host}:${httpPort}, gRPC ${s.host}:${grpcPort}`);
    return { httpPort, grpcPort };
  };

  const withTimeout = <T>(p: Promise<T>, ms: number): Promise<T | 'timeout'> => {
    let timer: NodeJS.Timeout | undefined;
    return Promise.race([p, new Promise<'timeout'>((r) => { timer = setTimeout(() => r('timeout'), ms); })]).finally(() => clearTimeout(timer));
  };

  const stop = (): Promise<boolean> => {
    stopping ??= (async () => {
      let ok = true;
      const timeout = s.shutdownTimeoutMs;
      service.state = 'draining';
      setHealth('NOT_SERVING');
      log.info({ timeoutMs: timeout }, 'draining');
      const httpClosed = httpServer.listening
        ? new Promise<void>((resolve) => httpServer.close(() => resolve()))
        : Promise.resolve();
      // Keep-alive connections become idle as their last response ends; close them as they do.
      const idleSweep = setInterval(() => httpServer.closeIdleConnections(), 50);
      httpServer.closeIdleConnections();
      void httpClosed.then(() => clearInterval(idleSweep));
      const grpcClosed = new Promise<void>((resolve) => grpcServer.tryShutdown(() => resolve()));
      const drained = await withTimeout(Promise.all([httpClosed, grpcClosed, service.idle()]), timeout);
      if (drained === 'timeout') {
        ok = false;
        log.warn('shutdown timeout: closing remaining connections');
        httpServer.closeAllConnections();
        grpcServer.forceShutdown();
      }
      clearInterval(idleSweep);
      try {
        await generators.stop();
        await pool?.close();
        ownedQuality?.dispose();
      } catch (e) {
        ok = false;
        log.error({ err: e }, 'disposing models failed');
      }
      service.state = 'stopped';
      log.info({ ok }, 'stopped');
      return ok;
    })();
    return stopping;
  };

  return { config, service, metrics, registry, httpServer, httpApp, grpcServer, load, listen, stop };
}

/**
 * `npm start`: listen first (so /healthz answers and /readyz says 503 while models load), then
 * load, and stop on SIGTERM/SIGINT with exit code 0, or 1 when shutdown was not clean.
 */
export async function start(config: Config, overrides: AppOverrides = {}): Promise<QgateApp> {
  const log = overrides.log ?? defaultLogger;
  const app = create(config, overrides);
  const onSignal = (signal: NodeJS.Signals) => {
    log.info({ signal }, 'shutting down');
    void app.stop().then((ok) => {
      process.exitCode = ok ? 0 : 1;
      // Anything still holding the loop (a stuck client socket) must not keep the process alive.
      setTimeout(() => process.exit(), 1000).unref();
    });
  };
  process.once('SIGTERM', onSignal);
  process.once('SIGINT', onSignal);
  await app.listen();
  try {
    await app.load();
  } catch (e) {
    await app.stop();
    throw e;
  }
  return app;
}
