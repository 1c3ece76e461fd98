import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '../src/backend/index.ts';
import { loadConfig } from '../src/config.ts';

function installed(pkg: string): boolean {
  try {
    createRequire(import.meta.url).resolve(pkg);
    return true;
  } catch {
    return false;
  }
}

test('Asking for the wasm backend selects it and says why', async () => {
  const info = await initBackend('wasm');
  assert.equal(info.name, 'wasm');
  assert.equal(tf.getBackend(), 'wasm');
  assert.match(info.reason, /QGATE_BACKEND=wasm/);
});

test('Asking for the cpu backend selects it', async () => {
  const info = await initBackend('cpu');
  assert.equal(info.name, 'cpu');
  assert.equal(tf.getBackend(), 'cpu');
});

test('Asking for a native backend that is not installed fails with BACKEND_UNAVAILABLE', { skip: installed('@tensorflow/tfjs-node-gpu') && 'tfjs-node-gpu is installed here' }, async () => {
  await assert.rejects(initBackend('gpu'), { code: 'BACKEND_UNAVAILABLE', message: /backend 'gpu'/ });
});

test('QGATE_BACKEND is validated when the configuration is read', () => {
  assert.equal(loadConfig({ QGATE_BACKEND: 'wasm' }).backend, 'wasm');
  assert.equal(loadConfig({}).backend, 'auto');
  assert.throws(() => loadConfig({ QGATE_BACKEND: 'tpu' }), { code: 'INVALID_ARGUMENT', message: /QGATE_BACKEND/ });
});

test('Other settings are parsed and range-checked in the one configuration reader', () => {
  const c = loadConfig({ QGATE_TAU: '0.25', QGATE_ALPHA: '0.7', QGATE_NOISE_ESTIMATOR: 'immerkaer', QGATE_MODELS_DIR: '/srv/models' });
  assert.equal(c.tau, 0.25);
  assert.equal(c.alpha, 0.7);
  assert.equal(c.noiseEstimator, 'immerkaer');
  assert.equal(c.referenceDir, '/srv/models/reference/mnist');
  for (const [name, value] of [['QGATE_TAU', '0'], ['QGATE_TAU', '1.5'], ['QGATE_TAU', 'abc'], ['QGATE_ALPHA', '-0.1'], ['QGATE_NOISE_ESTIMATOR', 'wavelet']]) {
    assert.throws(() => loadConfig({ [name!]: value }), { code: 'INVALID_ARGUMENT', message: new RegExp(name!) });
  }
});
