/**
 * All of qgate's configuration, read from the environment in one place. Nothing else reads
 * process.env (except the log level, which must work before this runs). A bad value fails at
 * start, naming the variable, rather than surfacing later as a wrong score.
 */
import path from 'node:path';
import { BACKEND_CHOICES, type BackendChoice } from './backend/index.ts';
import { MAX_WASM_THREADS } from './backend/wasm-threads.ts';
import { QgateError } from './errors.ts';
import { NOISE_ESTIMATOR_NAMES, DEFAULT_NOISE_ESTIMATOR, type NoiseEstimatorName } from './quality/noise.ts';

export interface Config {
  /** QGATE_BACKEND: auto | gpu | node | wasm | cpu. */
  backend: BackendChoice;
  /**
   * QGATE_WASM_THREADS: XNNPACK threads for the wasm backend, 1–8, or `auto` (default): one per core
   * for training and the other batch commands, 1 for the service (see wasmThreadsFor).
   */
  wasmThreads: number | 'auto';
  /** QGATE_MODELS_DIR: the folder with features/, reference/ and generators/. */
  modelsDir: string;
  /** QGATE_EXTRACTOR: the feature extractor's folder (default <models>/features/lenet-mnist). */
  extractorDir: string;
  /** QGATE_FEATURE_LAYER: overrides the extractor manifest's feature layer (needed for foreign models). */
  featureLayer: string | undefined;
  /** QGATE_REFERENCE: the reference set's folder (default <models>/reference/mnist). */
  referenceDir: string;
  /** QGATE_TAU: the gate threshold, 0 < τ ≤ 1. */
  tau: number;
  /** QGATE_ALPHA: weight of the noise term; β = 1 − α. */
  alpha: number;
  /** QGATE_NOISE_ESTIMATOR: which NoiseLevel estimator scores images. */
  noiseEstimator: NoiseEstimatorName;
  /** The service's settings (src/server). */
  service: ServiceConfig;
}

export interface ServiceConfig {
  /** QGATE_HOST: the address both servers bind. */
  host: string;
  /** QGATE_HTTP_PORT: REST, /metrics, health (0 picks a free port). */
  httpPort: number;
  /** QGATE_GRPC_PORT: gRPC (0 picks a free port). */
  grpcPort: number;
  /** <models>/generators: the registry folder; generators load from nowhere else. */
  generatorsDir: string;
  /** QGATE_MAX_BATCH_SIZE: most images the dynamic batcher puts into one model call. */
  maxBatchSize: number;
  /** QGATE_MAX_QUEUE_DELAY_MS: longest an image waits for others to fill its batch. */
  maxQueueDelayMs: number;
  /** QGATE_MAX_QUEUE: images waiting to be scored; admission refuses (OVERLOADED) beyond it plus QGATE_MAX_BATCH_SIZE admitted. */
  maxQueue: number;
  /**
   * QGATE_MAX_QUEUE_WAIT_MS: longest a score request may expect to wait (requests ahead × measured
   * time per item) to be admitted, and longest it stays queued; beyond it OVERLOADED. Not to be
   * confused with QGATE_MAX_QUEUE_DELAY_MS, the batcher's wait for a batch to fill.
   */
  maxQueueWaitMs: number;
  /** QGATE_RETRY_AFTER_SECONDS: the Retry-After sent with OVERLOADED and UNAVAILABLE. */
  retryAfterSeconds: number;
  /** QGATE_MAX_UPLOAD_BYTES: largest image (REST body or file, gRPC image field). */
  maxUploadBytes: number;
  /** QGATE_MAX_PIXELS: largest width × height an image header may declare. */
  maxPixels: number;
  /** QGATE_BATCH_MAX_FILES: most files in one POST /score/batch. */
  batchMaxFiles: number;
  /** QGATE_GENERATE_MAX_N: largest n for GET /generate and Generate. */
  generateMaxN: number;
  /** QGATE_GENERATE_STREAM_MAX_N: largest n for GenerateStream. */
  generateStreamMaxN: number;
  /** QGATE_GENERATE_MAX_ATTEMPTS_PER_IMAGE: with tau, at most n × this many samples are drawn. */
  generateMaxAttemptsPerImage: number;
  /** QGATE_GENERATE_MAX_CONCURRENT: generate calls running at once; beyond it OVERLOADED. */
  generateMaxConcurrent: number;
  /** QGATE_DEFAULT_GENERATOR: the generator used when a request names none ('' = first by name). */
  defaultGenerator: string;
  /** QGATE_PIN: `name=version,…`: versions served instead of the newest. */
  pins: Record<string, string>;
  /** QGATE_REGISTRY_WATCH: watch the registry folder for new versions (fs.watch). */
  registryWatch: boolean;
  /** QGATE_REGISTRY_RESCAN_MS: periodic rescan, the fallback where fs.watch misses events (0 = off). */
  registryRescanMs: number;
  /** QGATE_ADMIN_TOKEN: bearer token for state-changing endpoints; unset turns them off. */
  adminToken: string | undefined;
  /** QGATE_SHUTDOWN_TIMEOUT_MS: how long in-flight requests get to finish on SIGTERM. */
  shutdownTimeoutMs: number;
  /** QGATE_WEB_DIR: the built web page (`npm run build`), served at `/`. */
  webDir: string;
  /** QGATE_GRPC_MAX_SEND_BYTES: largest gRPC response message. */
  grpcMaxSendBytes: number;
  /**
   * QGATE_GRPC_CONNECTION_WINDOW_BYTES: the HTTP/2 connection-level flow-control window each gRPC
   * connection gets (HTTP/2's default is 64 KiB). A client may send this many bytes of request
   * bodies before the service has read them. With 64 KiB a client with thousands of calls open
   * could not deliver their bodies; they waited in the client, some until their deadline, instead
   * of reaching admission and being refused (see docs/RELIABILITY.md, Overload).
   */
  grpcConnectionWindowBytes: number;
  /** QGATE_HTTP_REQUEST_TIMEOUT_MS: Node's requestTimeout (whole request received within it). */
  httpRequestTimeoutMs: number;
  /**
   * QGATE_HTTP_BACKLOG: the REST listen socket's accept queue (capped by the kernel's somaxconn).
   * Node accepts one connection per turn of its event loop (libuv ≥ 1.45), and a turn under load
   * lasts a model call plus the requests read in it; 1,024 clients connecting at once then
   * overflowed Node's default of 511 (the kernel's ListenOverflows counter), and a dropped
   * handshake is retried after 1, 2, 4, 8 s… Queued connections still wait their turn.
   */
  httpBacklog: number;
  /**
   * QGATE_SCORE_WORKERS: worker threads that score images, each with its own model copy; 0 scores on
   * the main thread. `auto` (default): one per core (at most 4) on the wasm and cpu backends, which
   * run on the calling thread only; 0 on the native ones, which have their own thread pools.
   */
  scoreWorkers: number | 'auto';
}

type Env = Record<string, string | undefined>;

function number(env: Env, name: string, fallback: number, valid: (n: number) => boolean, range: string): number {
  const raw = env[name];
  if (raw === undefined || raw === '') return fallback;
  const n = Number(raw);
  if (!Number.isFinite(n) || !valid(n)) {
    throw new QgateError('INVALID_ARGUMENT', `${name} must be ${range}, got '${raw}'`);
  }
  return n;
}

function oneOf<T extends string>(env: Env, name: string, choices: readonly T[], fallback: T): T {
  const raw = env[name];
  if (raw === undefined || raw === '') return fallback;
  if (!(choices as readonly string[]).includes(raw)) {
    throw new QgateError('INVALID_ARGUMENT', `${name} must be one of ${choices.join('|')}, got '${raw}'`);
  }
  return raw as T;
}

function integer(env: Env, name: string, fallback: number, min: number, max: number): number {
  return number(env, name, fallback, (n) => Number.isSafeInteger(n) && n >= min && n <= max, `an integer in [${min}, ${max}]`);
}

function boolean(env: Env, name: string, fallback: boolean): boolean {
  const raw = env[name];
  if (raw === undefined || raw === '') return fallback;
  if (['1', 'true', 'yes', 'on'].includes(raw.toLowerCase())) return true;
  if (['0', 'false', 'no', 'off'].includes(raw.toLowerCase())) return false;
  throw new QgateError('INVALID_ARGUMENT', `${name} must be true or false, got '${raw}'`);
}

/** Same pattern as src/generator/manifest.ts NAME_PATTERN (not imported, to keep config free of model code). */
const NAME = /^[a-z0-9][a-z0-9._-]{0,63}$/;

function name(env: Env, key: string): string {
  const raw = env[key] ?? '';
  if (raw !== '' && (!NAME.test(raw) || raw.includes('..'))) {
    throw new QgateError('INVALID_ARGUMENT', `${key} must match ${NAME.source}, got '${raw}'`);
  }
  return raw;
}

function pins(env: Env): Record<string, string> {
  const raw = env.QGATE_PIN ?? '';
  const out: Record<string, string> = {};
  for (const item of raw.split(',').map((p) => p.trim()).filter(Boolean)) {
    const [generator = '', version = '', ...rest] = item.split('=');
    if (rest.length || !NAME.test(generator) || !NAME.test(version) || item.includes('..')) {
      throw new QgateError('INVALID_ARGUMENT', `QGATE_PIN must be name=version[,name=version…] with names matching ${NAME.source}, got '${raw}'`);
    }
    out[generator] = version;
  }
  return out;
}

const MiB = 1024 * 1024;

function loadServiceConfig(env: Env, modelsDir: string): ServiceConfig {
  const token = env.QGATE_ADMIN_TOKEN;
  if (token !== undefined && token !== '' && token.length < 16) {
    throw new QgateError('INVALID_ARGUMENT', 'QGATE_ADMIN_TOKEN must be at least 16 characters');
  }
  return {
    host: env.QGATE_HOST || '0.0.0.0',
    httpPort: integer(env, 'QGATE_HTTP_PORT', 8080, 0, 65535),
    grpcPort: integer(env, 'QGATE_GRPC_PORT', 50051, 0, 65535),
    generatorsDir: path.join(modelsDir, 'generators'),
    maxBatchSize: integer(env, 'QGATE_MAX_BATCH_SIZE', 32, 1, 1024),
    maxQueueDelayMs: integer(env, 'QGATE_MAX_QUEUE_DELAY_MS', 5, 0, 1000),
    maxQueue: integer(env, 'QGATE_MAX_QUEUE', 256, 1, 100_000),
    maxQueueWaitMs: integer(env, 'QGATE_MAX_QUEUE_WAIT_MS', 1000, 10, 600_000),
    retryAfterSeconds: integer(env, 'QGATE_RETRY_AFTER_SECONDS', 1, 1, 3600),
    maxUploadBytes: integer(env, 'QGATE_MAX_UPLOAD_BYTES', 10 * MiB, 1024, 256 * MiB),
    maxPixels: integer(env, 'QGATE_MAX_PIXELS', 4096 * 4096, 1, 16384 * 16384),
    batchMaxFiles: integer(env, 'QGATE_BATCH_MAX_FILES', 64, 1, 1024),
    generateMaxN: integer(env, 'QGATE_GENERATE_MAX_N', 256, 1, 4096),
    generateStreamMaxN: integer(env, 'QGATE_GENERATE_STREAM_MAX_N', 4096, 1, 1_000_000),
    generateMaxAttemptsPerImage: integer(env, 'QGATE_GENERATE_MAX_ATTEMPTS_PER_IMAGE', 20, 1, 10_000),
    generateMaxConcurrent: integer(env, 'QGATE_GENERATE_MAX_CONCURRENT', 4, 1, 1024),
    defaultGenerator: name(env, 'QGATE_DEFAULT_GENERATOR'),
    pins: pins(env),
    registryWatch: boolean(env, 'QGATE_REGISTRY_WATCH', true),
    registryRescanMs: integer(env, 'QGATE_REGISTRY_RESCAN_MS', 5000, 0, 3_600_000),
    adminToken: token || undefined,
    shutdownTimeoutMs: integer(env, 'QGATE_SHUTDOWN_TIMEOUT_MS', 10_000, 0, 600_000),
    webDir: path.resolve(env.QGATE_WEB_DIR || path.join('dist', 'web')),
    grpcMaxSendBytes: integer(env, 'QGATE_GRPC_MAX_SEND_BYTES', 16 * MiB, 64 * 1024, 1024 * MiB),
    grpcConnectionWindowBytes: integer(env, 'QGATE_GRPC_CONNECTION_WINDOW_BYTES', 8 * MiB, 65_535, 2 ** 31 - 1),
    httpRequestTimeoutMs: integer(env, 'QGATE_HTTP_REQUEST_TIMEOUT_MS', 30_000, 1000, 3_600_000),
    httpBacklog: integer(env, 'QGATE_HTTP_BACKLOG', 4096, 1, 65_535),
    scoreWorkers: env.QGATE_SCORE_WORKERS === undefined || env.QGATE_SCORE_WORKERS === '' || env.QGATE_SCORE_WORKERS === 'auto'
      ? 'auto' : integer(env, 'QGATE_SCORE_WORKERS', 0, 0, 16),
  };
}

export function loadConfig(env: Env = process.env): Config {
  const modelsDir = path.resolve(env.QGATE_MODELS_DIR || 'models');
  const alpha = number(env, 'QGATE_ALPHA', 0.5, (n) => n >= 0 && n <= 1, 'a number in [0,1]');
  return {
    backend: oneOf(env, 'QGATE_BACKEND', BACKEND_CHOICES, 'auto'),
    wasmThreads: env.QGATE_WASM_THREADS === undefined || env.QGATE_WASM_THREADS === '' || env.QGATE_WASM_THREADS === 'auto'
      ? 'auto' : integer(env, 'QGATE_WASM_THREADS', 1, 1, MAX_WASM_THREADS),
    modelsDir,
    extractorDir: path.resolve(env.QGATE_EXTRACTOR || path.join(modelsDir, 'features', 'lenet-mnist')),
    featureLayer: env.QGATE_FEATURE_LAYER || undefined,
    referenceDir: path.resolve(env.QGATE_REFERENCE || path.join(modelsDir, 'reference', 'mnist')),
    tau: number(env, 'QGATE_TAU', 0.3, (n) => n > 0 && n <= 1, 'a number with 0 < τ ≤ 1'),
    alpha,
    noiseEstimator: oneOf(env, 'QGATE_NOISE_ESTIMATOR', NOISE_ESTIMATOR_NAMES, DEFAULT_NOISE_ESTIMATOR),
    service: loadServiceConfig(env, modelsDir),
  };
}
