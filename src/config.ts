/**
 * All of qgate's configuration, read from the environment in one place. Nothing else reads
 * process.env (except the log level, which must work before this runs). A bad value fails at
 * start, naming the variable, rather than surfacing later as a wrong score.
 */
import path from 'node:path';
import { BACKEND_CHOICES, type BackendChoice } from './backend/index.ts';
import { QgateError } from './errors.ts';
import { NOISE_ESTIMATOR_NAMES, DEFAULT_NOISE_ESTIMATOR, type NoiseEstimatorName } from './quality/noise.ts';

export interface Config {
  /** QGATE_BACKEND: auto | gpu | node | wasm | cpu. */
  backend: BackendChoice;
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

export function loadConfig(env: Env = process.env): Config {
  const modelsDir = path.resolve(env.QGATE_MODELS_DIR || 'models');
  const alpha = number(env, 'QGATE_ALPHA', 0.5, (n) => n >= 0 && n <= 1, 'a number in [0,1]');
  return {
    backend: oneOf(env, 'QGATE_BACKEND', BACKEND_CHOICES, 'auto'),
    modelsDir,
    extractorDir: path.resolve(env.QGATE_EXTRACTOR || path.join(modelsDir, 'features', 'lenet-mnist')),
    featureLayer: env.QGATE_FEATURE_LAYER || undefined,
    referenceDir: path.resolve(env.QGATE_REFERENCE || path.join(modelsDir, 'reference', 'mnist')),
    tau: number(env, 'QGATE_TAU', 0.3, (n) => n > 0 && n <= 1, 'a number with 0 < τ ≤ 1'),
    alpha,
    noiseEstimator: oneOf(env, 'QGATE_NOISE_ESTIMATOR', NOISE_ESTIMATOR_NAMES, DEFAULT_NOISE_ESTIMATOR),
  };
}
