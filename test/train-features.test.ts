import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { writeDirAtomically } from '../src/atomic-dir.ts';
import { initBackend } from '../src/backend/index.ts';
import { saveLayersModel } from '../src/backend/model-io.ts';
import { loadExtractor } from '../src/quality/extractor.ts';
import { featureFiles, trainFeatureExtractor } from '../src/train/features.ts';

await initBackend('wasm');

test('Training φ on wasm learns digits, and the saved extractor loads from its manifest alone', async () => {
  const opts = { epochs: 1, batchSize: 64, learningRate: 2e-3, learningRateDecay: 0.7, validation: 200, seed: 3, limit: 1200 };
  const before = tf.memory().numTensors;
  const result = await trainFeatureExtractor(opts);
  // 1,000 digits for one epoch: far from 99%, far above the 10% of guessing.
  assert.ok(result.testAccuracy > 0.5, `test accuracy ${result.testAccuracy}`);
  assert.equal(result.trainCount, 1000);
  const dir = await mkdtemp(path.join(os.tmpdir(), 'qgate-phi-'));
  try {
    await saveLayersModel(result.model, path.join(dir, 'phi'), featureFiles(result, opts, {}));
    result.model.dispose();
    assert.equal(tf.memory().numTensors, before, 'training leaves no tensors behind once the model is disposed');
    const extractor = await loadExtractor(path.join(dir, 'phi'));
    assert.equal(extractor.id, 'lenet-mnist');
    assert.equal(extractor.featureSize, 128);
    assert.equal(extractor.manifest.testAccuracy, result.testAccuracy);
    extractor.dispose();
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('A folder written atomically is either complete or absent', async () => {
  const parent = await mkdtemp(path.join(os.tmpdir(), 'qgate-atomic-'));
  try {
    const target = path.join(parent, 'out');
    await assert.rejects(writeDirAtomically(target, async () => {
      throw new Error('killed half way');
    }), /killed half way/);
    assert.deepEqual(await readdir(parent), [], 'no partial folder and no temporary left behind');
    const fill = (content: string) => async (tmp: string) => writeFile(path.join(tmp, 'file'), content);
    await writeDirAtomically(target, fill('first'));
    await assert.rejects(writeDirAtomically(target, fill('second')), (e: NodeJS.ErrnoException) => ['ENOTEMPTY', 'EEXIST'].includes(e.code ?? ''));
    assert.equal(await readFile(path.join(target, 'file'), 'utf8'), 'first', 'without replace an existing folder is kept');
    await writeDirAtomically(target, fill('third'), { replace: true });
    assert.equal(await readFile(path.join(target, 'file'), 'utf8'), 'third');
    assert.deepEqual(await readdir(parent), ['out']);
  } finally {
    await rm(parent, { recursive: true, force: true });
  }
});
