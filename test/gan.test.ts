import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readdir, readFile, rm, mkdir } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '../src/backend/index.ts';
import { loadLayersModel } from '../src/backend/model-io.ts';
import { loadConfig } from '../src/config.ts';
import { loadQuality } from '../src/quality/index.ts';
import {
  ARCHITECTURES, buildDiscriminator, buildGenerator, generatorGanLoss, makeOptimizer, qualityTerms, toUnit,
  trainDiscriminatorOneStep, trainGeneratorOneStep, type QualityPenalty,
} from '../src/train/gan.ts';
import { nextVersion, publishGenerator } from '../src/train/publish.ts';
import { DEFAULT_CONFIG, trainGan, type TrainConfig } from '../src/train/run.ts';

await initBackend('wasm');
const quality = await loadQuality(loadConfig({}));

const LATENT = 5;
const BATCH = 2;

function latents(seed: number): tf.Tensor2D {
  return tf.randomNormal([BATCH, LATENT], 0, 1, 'float32', seed) as tf.Tensor2D;
}

function realBatch(seed: number): tf.Tensor4D {
  return tf.randomUniform([BATCH, 28, 28, 1], -1, 1, 'float32', seed) as tf.Tensor4D;
}

function weightsOf(model: tf.LayersModel): Float32Array[] {
  return model.getWeights().map((w) => w.dataSync() as Float32Array);
}

/** The weights an optimizer trains: G's batch-norm moving statistics are left out, since every forward pass in training mode updates them. */
function trainedWeightsOf(model: tf.LayersModel): Float32Array[] {
  return model.getWeights(true).map((w) => w.dataSync() as Float32Array);
}

test('G maps [B, latent] to [B, 28, 28, 1] in [-1, 1] and D maps images to [B, 1] logits, for both architectures', () => {
  for (const arch of ARCHITECTURES) {
    const g = buildGenerator(arch, LATENT, 1);
    const d = buildDiscriminator(arch, 1);
    tf.tidy(() => {
      const x = g.predict(latents(1)) as tf.Tensor;
      assert.deepEqual(x.shape, [BATCH, 28, 28, 1], arch);
      assert.ok(x.abs().max().dataSync()[0]! <= 1, 'tanh output');
      assert.deepEqual((d.predict(x) as tf.Tensor).shape, [BATCH, 1], arch);
    });
    g.dispose();
    d.dispose();
  }
});

test('The same seed builds the same weights', () => {
  const a = buildGenerator('dcgan', LATENT, 7);
  const b = buildGenerator('dcgan', LATENT, 7);
  assert.deepEqual(weightsOf(a), weightsOf(b));
  a.dispose();
  b.dispose();
});

test('The generator loss equals L_GAN + λ·Q, each part measured before the step', () => {
  const g = buildGenerator('mlp', LATENT, 2);
  const d = buildDiscriminator('mlp', 2);
  const penalty: QualityPenalty = { quality, lambda: 0.5, alpha: 0.3, beta: 0.7 };
  const z = latents(3);
  const [ganBefore, qBefore] = tf.tidy(() => {
    const fake = g.predict(z) as tf.Tensor;
    return [generatorGanLoss(d.predict(fake) as tf.Tensor).dataSync()[0]!, qualityTerms(penalty, toUnit(fake)).q.dataSync()[0]!];
  });
  const r = trainGeneratorOneStep(g, d, makeOptimizer(1e-3), z, penalty);
  assert.ok(Math.abs(r.lossGan - ganBefore!) < 1e-6, `L_GAN ${r.lossGan} vs ${ganBefore}`);
  const q = r.quality!.q;
  assert.ok(Math.abs(q - qBefore!) < 1e-6, `Q ${q} vs ${qBefore}`);
  assert.ok(Math.abs(r.lossG - (r.lossGan + 0.5 * q)) < 1e-6, `L_G ${r.lossG} vs ${r.lossGan} + 0.5·${q}`);
  tf.dispose([z]);
  g.dispose();
  d.dispose();
});

test('With λ = 0, Q is measured on G(z) only when asked, and the update is the same either way', () => {
  const penalty: QualityPenalty = { quality, lambda: 0, alpha: 0.5, beta: 0.5 };
  const z = latents(8);
  const [g1, g2] = [buildGenerator('mlp', LATENT, 9), buildGenerator('mlp', LATENT, 9)];
  const d = buildDiscriminator('mlp', 9);
  const qBefore = tf.tidy(() => qualityTerms(penalty, toUnit(g1.predict(z) as tf.Tensor)).q.dataSync()[0]!);
  const before = tf.memory().numTensors;
  const [opt1, opt2] = [makeOptimizer(1e-3), makeOptimizer(1e-3)];
  const measured = trainGeneratorOneStep(g1, d, opt1, z, penalty, { measureQuality: true });
  const skipped = trainGeneratorOneStep(g2, d, opt2, z, penalty, { measureQuality: false });
  assert.ok(Math.abs(measured.quality!.q - qBefore) < 1e-6, `Q ${measured.quality!.q} vs ${qBefore}`);
  assert.equal(skipped.quality, undefined);
  assert.equal(measured.lossG, measured.lossGan, 'λ = 0: L_G is L_GAN');
  assert.equal(skipped.lossGan, measured.lossGan);
  assert.deepEqual(weightsOf(g2), weightsOf(g1), 'measuring Q does not touch the update');
  for (const o of [opt1, opt2]) o.dispose();
  assert.equal(tf.memory().numTensors, before, 'only the generators\' own tensors remain');
  tf.dispose(z);
  for (const m of [g1, g2, d]) m.dispose();
});

test("In the generator step Q's gradient reaches every generator weight, and D's weights stay exactly unchanged", () => {
  for (const arch of ARCHITECTURES) {
    const g = buildGenerator(arch, LATENT, 4);
    const d = buildDiscriminator(arch, 4);
    const z = latents(5);
    const penalty: QualityPenalty = { quality, lambda: 0.1, alpha: 0.5, beta: 0.5 };
    // Q alone, differentiated with respect to G's variables: every one gets a non-zero gradient.
    const norms = tf.tidy(() => {
      const vars = g.trainableWeights.map((w) => w.read() as tf.Variable);
      const { grads } = tf.variableGrads(() => qualityTerms(penalty, toUnit(g.apply(z) as tf.Tensor)).q, vars);
      return vars.map((v) => grads[v.name]!.abs().sum().dataSync()[0]!);
    });
    assert.ok(norms.every((n) => n > 0 && Number.isFinite(n)), `${arch}: |∂Q/∂w| per weight ${norms.join(', ')}`);

    // The same start stepped with λ = 0 and λ > 0 ends in different G weights: Q moves G.
    const g2 = buildGenerator(arch, LATENT, 4);
    const dBefore = weightsOf(d);
    trainGeneratorOneStep(g, d, makeOptimizer(1e-3), z, penalty);
    trainGeneratorOneStep(g2, d, makeOptimizer(1e-3), z, { ...penalty, lambda: 0 });
    assert.deepEqual(weightsOf(d), dBefore, `${arch}: D unchanged by the G steps`);
    assert.notDeepEqual(weightsOf(g), weightsOf(g2), `${arch}: λ changes the G update`);
    tf.dispose(z);
    for (const m of [g, g2, d]) m.dispose();
  }
});

test('A D step leaves every trained weight of G unchanged, and training steps leak no tensors', () => {
  for (const arch of ARCHITECTURES) {
    const g = buildGenerator(arch, LATENT, 6);
    const d = buildDiscriminator(arch, 6);
    const optG = makeOptimizer(1e-3);
    const optD = makeOptimizer(1e-3);
    const penalty: QualityPenalty = { quality, lambda: 0.1, alpha: 0.5, beta: 0.5 };
    const counts: number[] = [];
    for (let i = 0; i < 4; i++) {
      const real = realBatch(i);
      const zD = latents(10 + i);
      const zG = latents(20 + i);
      const gBefore = i === 0 ? trainedWeightsOf(g) : undefined;
      trainDiscriminatorOneStep(g, d, optD, real, zD);
      if (gBefore) assert.deepEqual(trainedWeightsOf(g), gBefore, `${arch}: G unchanged by the D step`);
      trainGeneratorOneStep(g, d, optG, zG, penalty);
      tf.dispose([real, zD, zG]);
      counts.push(tf.memory().numTensors);
    }
    // The first step creates the optimizers' slots; after that the count is flat.
    assert.equal(counts[3], counts[1], `${arch}: tensors per step ${counts.join(', ')}`);
    for (const x of [g, d, optG, optD]) x.dispose();
  }
});

function tinyConfig(over: Partial<TrainConfig> = {}): TrainConfig {
  return {
    ...DEFAULT_CONFIG, arch: 'mlp', latentSize: LATENT, batchSize: BATCH, trainCount: 8, steps: 6,
    lrG: 1e-3, lrD: 5e-4, seed: 3, name: 'tiny', evalSamples: 0, logEvery: 2, checkpointEvery: 100, dReferenceCount: 20, ...over,
  };
}

test('Resuming a killed run from its checkpoint gives exactly the weights of an uninterrupted run', async () => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'qgate-gan-'));
  try {
    for (const arch of ARCHITECTURES) {
      const whole = await trainGan(tinyConfig({ arch }), { runDir: path.join(dir, `${arch}-whole`), quality });
      // Killed after 3 steps (mid-epoch: 4 steps per epoch), then resumed in a fresh set of models.
      const killed = await trainGan(tinyConfig({ arch, checkpointEvery: 3 }), { runDir: path.join(dir, `${arch}-split`), quality, hooks: { stopAfter: 3 } });
      assert.equal(killed.step, 3);
      killed.models.g.dispose();
      killed.models.d.dispose();
      // Published under another name than the run's: where it goes does not change how it trains.
      const resumed = await trainGan(tinyConfig({ arch, seed: 999 }), { runDir: path.join(dir, `${arch}-split`), resume: true, quality, name: `${arch}-renamed`, modelsDir: path.join(dir, 'models') });
      assert.equal(resumed.step, 6);
      assert.equal(resumed.published?.dir, path.join(dir, 'models', 'generators', `${arch}-renamed`, '0001'));
      assert.deepEqual(weightsOf(resumed.models.g), weightsOf(whole.models.g), `${arch}: G`);
      assert.deepEqual(weightsOf(resumed.models.d), weightsOf(whole.models.d), `${arch}: D`);
      const metrics = (await readFile(path.join(dir, `${arch}-split`, 'metrics.jsonl'), 'utf8')).trim().split('\n').map((l) => JSON.parse(l) as { step: number; stepMs: number });
      assert.deepEqual(metrics.map((m) => m.step), [2, 3, 4, 6], 'one line per interval, none repeated');
      const files = await readdir(path.join(dir, `${arch}-split`));
      for (const f of ['samples.gif', 'curves.png', 'summary.json', 'checkpoint', 'config.json']) assert.ok(files.includes(f), `${f} in ${files.join(', ')}`);
      assert.ok(files.some((f) => /^epoch_001_Q\d\.\d\d\.png$/.test(f)), 'an epoch grid named with its mean Q');
      for (const r of [whole, resumed]) {
        r.models.g.dispose();
        r.models.d.dispose();
      }
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('A run with Q in the discriminator feature space trains, evaluates and publishes a version that loads and generates', async () => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'qgate-gan-'));
  try {
    const models = path.join(dir, 'models');
    const r = await trainGan(tinyConfig({ qFeatures: 'discriminator', steps: 4, evalSamples: 40, epochFidSamples: 0 }), { runDir: path.join(dir, 'run'), quality, modelsDir: models });
    assert.equal(r.published?.version, '0001');
    assert.ok(r.eval && Number.isFinite(r.eval.fid) && r.eval.fid >= 0 && r.eval.precision >= 0 && r.eval.recall <= 1);
    const versionDir = path.join(models, 'generators', 'tiny', '0001');
    const manifest = JSON.parse(await readFile(path.join(versionDir, 'manifest.json'), 'utf8')) as Record<string, unknown>;
    assert.equal(manifest.format, 'qgate-generator/1');
    assert.equal(manifest.version, '0001');
    assert.equal(manifest.latentSize, LATENT);
    assert.deepEqual(manifest.imageShape, [28, 28, 1]);
    assert.deepEqual(manifest.outputRange, [-1, 1]);
    assert.equal((manifest.training as { config: TrainConfig }).config.qFeatures, 'discriminator');
    assert.equal((manifest.metrics as { samples: number }).samples, 40);
    const g = await loadLayersModel(versionDir);
    tf.tidy(() => {
      const out = g.predict(tf.zeros([3, LATENT])) as tf.Tensor;
      assert.deepEqual(out.shape, [3, 28, 28, 1]);
      assert.deepEqual(out.dataSync(), (r.models.g.predict(tf.zeros([3, LATENT])) as tf.Tensor).dataSync(), 'the published weights are the trained ones');
    });
    g.dispose();
    // The next publish of the same name is the next version.
    assert.equal((await publishGenerator(r.models.g, path.join(models, 'generators'), { name: 'tiny', architecture: 'x', latentSize: LATENT, imageShape: [28, 28, 1], outputRange: [-1, 1], training: {}, code: 'test' })).manifest.version, '0002');
    r.models.g.dispose();
    r.models.d.dispose();
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('An interrupted publish leaves no visible version', async () => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'qgate-publish-'));
  const g = buildGenerator('mlp', LATENT, 1);
  try {
    const generators = path.join(dir, 'generators');
    // Fails after the model files are written (a BigInt cannot be serialized into the manifest).
    await assert.rejects(publishGenerator(g, generators, { name: 'half', architecture: 'x', latentSize: LATENT, imageShape: [28, 28, 1], outputRange: [-1, 1], training: { bad: 1n }, code: 'test' }));
    assert.deepEqual(await readdir(path.join(generators, 'half')), [], 'neither a version nor a temporary folder');
    // A publisher killed outright leaves its hidden temporary folder: not a version, and not counted.
    await mkdir(path.join(generators, 'half', '.0001.tmp-123-456'));
    assert.equal(await nextVersion(generators, 'half'), '0001');
    assert.ok(!/^[a-z0-9]/.test('.0001.tmp-123-456'), "the registry's name pattern skips it");
  } finally {
    g.dispose();
    await rm(dir, { recursive: true, force: true });
  }
});
