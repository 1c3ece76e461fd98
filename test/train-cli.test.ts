import { test } from 'node:test';
import assert from 'node:assert/strict';
import { configFromFlags, type TrainFlags } from '../src/cli/train.ts';
import { validateConfig } from '../src/train/run.ts';

const flags = (over: Partial<TrainFlags> = {}): TrainFlags => ({
  arch: 'dcgan', batchSize: 64, lambda: 0.1, alpha: 0.5, beta: 0.5, seed: 1, publish: true, evalSamples: 10000,
  qFeatures: 'reference', trainCount: 60000, logEvery: 50, checkpointEvery: 500, ...over,
});

test('No flags mean DCGAN, λ = 0.1, α = β = 0.5, 5 epochs of batch 64, published as dcgan-q', () => {
  const c = configFromFlags(flags());
  assert.equal(c.arch, 'dcgan');
  assert.deepEqual([c.lambda, c.alpha, c.beta, c.batchSize, c.steps, c.name], [0.1, 0.5, 0.5, 64, 5 * 937, 'dcgan-q']);
  assert.deepEqual([c.lrG, c.lrD], [2e-4, 2e-4]);
});

test('--arch mlp takes the original learning rates; --epochs counts whole passes; --steps wins over --epochs', () => {
  const mlp = configFromFlags(flags({ arch: 'mlp', epochs: 2 }));
  assert.deepEqual([mlp.lrG, mlp.lrD, mlp.steps, mlp.name], [1e-3, 5e-4, 2 * 937, 'mlp-q']);
  assert.equal(configFromFlags(flags({ epochs: 2, steps: 10, batchSize: 32 })).steps, 10);
  assert.equal(configFromFlags(flags({ lrG: 0.01 })).lrG, 0.01);
});

test('Bad values are refused with a message naming them', () => {
  assert.throws(() => validateConfig(configFromFlags(flags({ lambda: -1 }))), /--lambda must be ≥ 0, got -1/);
  assert.throws(() => validateConfig(configFromFlags(flags({ alpha: 0, beta: 0 }))), /--alpha and --beta/);
  assert.throws(() => validateConfig(configFromFlags(flags({ name: '../evil' }))), /generator must match/);
  assert.throws(() => validateConfig(configFromFlags(flags({ batchSize: 0 }))), /--batch-size must be an integer ≥ 1/);
});
