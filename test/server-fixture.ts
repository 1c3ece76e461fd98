/**
 * A real qgate app on port 0 for the server tests, built in-process: an untrained LeNet as the
 * extractor (a fixed random projection, enough to test the plumbing), a reference set of 100 MNIST
 * digits, and a tiny untrained generator published into a temporary registry folder.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import * as tf from '@tensorflow/tfjs';
import { pino } from 'pino';
import { initBackend } from '../src/backend/index.ts';
import { saveLayersModel } from '../src/backend/model-io.ts';
import { loadConfig } from '../src/config.ts';
import { encodePng } from '../src/data/images.ts';
import { loadMnist } from '../src/data/mnist.ts';
import type { QualityServiceClient } from '../src/generated/qgate/v1/QualityService.ts';
import { GENERATOR_FORMAT, type GeneratorManifest } from '../src/generator/manifest.ts';
import { buildLeNet, extractorFromModel, LENET_FEATURE_LAYER } from '../src/quality/extractor.ts';
import { createQuality, type Quality } from '../src/quality/index.ts';
import { buildReference, referenceFromBuilt, uniformNoiseImages } from '../src/quality/reference.ts';
import { create, type AppOverrides, type QgateApp } from '../src/server/app.ts';
import { loadQgateProto } from '../src/server/grpc.ts';
import { buildGenerator } from '../src/train/gan-bootstrap.ts';

await initBackend('wasm');

export const silentLog = pino({ level: 'silent' });

let shared: Quality | undefined;
/** One small Quality per test process; the app does not own it, so stop() leaves it alone. */
export function testQuality(): Quality {
  if (shared) return shared;
  const extractor = extractorFromModel(buildLeNet(7), {
    id: 'random-lenet', architecture: 'untrained lenet', featureLayer: LENET_FEATURE_LAYER,
    input: { height: 28, width: 28, channels: 1, range: [0, 1] },
  }, 'test');
  const digits = loadMnist('train', { limit: 100 });
  const built = buildReference(extractor, digits.images, [28, 28, 1], 100, { id: 'test-ref', k: 3, dataSpec: 'mnist:train', noiseImages: 20 });
  shared = createQuality(extractor, referenceFromBuilt(built), { alpha: 0.5, tau: 0.3, noiseEstimator: 'structure' });
  return shared;
}

/** Publishes a tiny untrained generator (latent 8) as `<registry>/<name>/<version>`. */
export async function publishGenerator(registryDir: string, name: string, version: string, seed = 1): Promise<void> {
  const model = buildGenerator(8, 16, seed);
  const manifest: GeneratorManifest = {
    format: GENERATOR_FORMAT, name, version,
    architecture: 'test MLP', latentSize: 8, imageShape: [28, 28, 1], outputRange: [-1, 1],
    createdAt: new Date().toISOString(), training: { script: 'test fixture (untrained)' },
  };
  await saveLayersModel(model, path.join(registryDir, name, version), { 'manifest.json': manifest });
  model.dispose();
}

export interface Running {
  app: QgateApp;
  base: string;
  grpcTarget: string;
  registryDir: string;
  client: QualityServiceClient;
  close(): Promise<void>;
}

/** Starts the app on port 0 with one generator `tiny/0001`; `env` overrides the test defaults. */
export async function startApp(env: Record<string, string> = {}, overrides: AppOverrides = {}): Promise<Running> {
  const modelsDir = await mkdtemp(path.join(os.tmpdir(), 'qgate-server-'));
  const registryDir = path.join(modelsDir, 'generators');
  await publishGenerator(registryDir, 'tiny', '0001');
  const config = loadConfig({
    QGATE_BACKEND: 'wasm',
    QGATE_MODELS_DIR: modelsDir,
    QGATE_HOST: '127.0.0.1',
    QGATE_HTTP_PORT: '0',
    QGATE_GRPC_PORT: '0',
    QGATE_REGISTRY_RESCAN_MS: '250',
    QGATE_MAX_UPLOAD_BYTES: String(256 * 1024),
    QGATE_GENERATE_MAX_N: '64',
    QGATE_GENERATE_MAX_ATTEMPTS_PER_IMAGE: '3',
    QGATE_BATCH_MAX_FILES: '8',
    QGATE_SHUTDOWN_TIMEOUT_MS: '5000',
    ...env,
  });
  const app = create(config, { quality: testQuality(), log: silentLog, ...overrides });
  const { httpPort, grpcPort } = await app.listen();
  await app.load();
  const grpcTarget = `127.0.0.1:${grpcPort}`;
  const { proto } = loadQgateProto();
  const client = new proto.qgate.v1.QualityService(grpcTarget, grpc.credentials.createInsecure(), {
    'grpc.max_receive_message_length': 64 * 1024 * 1024,
    'grpc.max_send_message_length': 64 * 1024 * 1024,
  });
  return {
    app, base: `http://127.0.0.1:${httpPort}`, grpcTarget, registryDir, client,
    close: async () => {
      client.close();
      await app.stop();
      await rm(modelsDir, { recursive: true, force: true });
    },
  };
}

/** A real MNIST test digit as a PNG. */
export async function digitPng(index = 0): Promise<Buffer> {
  const d = loadMnist('test', { offset: index, limit: 1 });
  return encodePng(d.images, 28, 28, 1);
}

/** Every pixel U[0,1]: the "pure noise" end of Q. */
export async function noisePng(seed = 5): Promise<Buffer> {
  return encodePng(uniformNoiseImages(1, [28, 28, 1], seed), 28, 28, 1);
}

/** A PNG whose header claims width × height but holds almost no data (a decompression bomb's header). */
export { pngClaiming as bombPngHeader } from './hostile/corpus.ts';

/** Polls until `check` returns true (or throws after `ms`). */
export async function eventually(check: () => Promise<boolean> | boolean, ms = 15_000, what = 'condition'): Promise<void> {
  const until = Date.now() + ms;
  while (Date.now() < until) {
    if (await check()) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`timed out waiting for ${what}`);
}

/** Reads one sample's value from Prometheus text, e.g. `qgate_model_reloads_total{result="failure"}`. */
export function metricValue(text: string, series: string): number | undefined {
  for (const line of text.split('\n')) {
    if (line.startsWith(series + ' ')) return Number(line.slice(series.length + 1));
  }
  return undefined;
}

export { tf };
