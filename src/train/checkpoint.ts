/**
 * Checkpoints that describe themselves (nanoGPT style): `<run>/checkpoint/` holds G and D as TF.js
 * models, both Adam optimizers' state (moments, iteration count and the exact β-power accumulators),
 * and state.json with the step, the latent RNG state and the whole training configuration, so a
 * resumed run continues exactly where the killed one stopped.
 *
 * The folder is replaced atomically: a kill during a save leaves the previous checkpoint intact.
 */
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { writeDirAtomically } from '../atomic-dir.ts';
import { loadLayersModel, saveLayersModel } from '../backend/model-io.ts';
import { QgateError } from '../errors.ts';

export const CHECKPOINT_DIR = 'checkpoint';
export const CHECKPOINT_FORMAT = 'qgate-gan-checkpoint/1';

export interface CheckpointState<C> {
  format: typeof CHECKPOINT_FORMAT;
  /** Training steps completed (one D update and one G update each). */
  step: number;
  /** State of the RNG that draws the training latents (src/random.ts seededRng). */
  rngState: number;
  /** Wall seconds spent by this run so far, over all its resumed segments. */
  trainSeconds?: number;
  config: C;
  savedAt: string;
}

/** Adam's private β-power accumulators: setWeights recomputes them with pow(), which differs from the running product in the last bit. */
type AdamInternals = { accBeta1: tf.Variable; accBeta2: tf.Variable };

interface OptimizerFile {
  names: string[];
  specs: tf.io.WeightsManifestEntry[];
  accBeta1: number;
  accBeta2: number;
}

async function saveOptimizer(opt: tf.AdamOptimizer, dir: string, name: string): Promise<void> {
  const weights = await opt.getWeights();
  const { data, specs } = await tf.io.encodeWeights(weights);
  const internals = opt as unknown as AdamInternals;
  const file: OptimizerFile = {
    names: weights.map((w) => w.name),
    specs,
    accBeta1: internals.accBeta1.dataSync()[0]!,
    accBeta2: internals.accBeta2.dataSync()[0]!,
  };
  const bytes = Array.isArray(data) ? tf.io.concatenateArrayBuffers(data) : data;
  await writeFile(path.join(dir, `${name}.bin`), new Uint8Array(bytes));
  await writeFile(path.join(dir, `${name}.json`), JSON.stringify(file));
  // getWeights() returns a new scalar for the iteration count; the moments are the optimizer's own.
  weights[0]?.tensor.dispose();
}

async function loadOptimizer(opt: tf.AdamOptimizer, dir: string, name: string): Promise<void> {
  const file = JSON.parse(await readFile(path.join(dir, `${name}.json`), 'utf8')) as OptimizerFile;
  const bytes = await readFile(path.join(dir, `${name}.bin`));
  const map = tf.io.decodeWeights(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength), file.specs);
  const weights = file.names.map((n) => ({ name: n, tensor: map[n]! }));
  await opt.setWeights(weights);
  // setWeights copies each tensor into a variable; the decoded tensors are ours to free.
  tf.dispose(Object.values(map));
  const internals = opt as unknown as AdamInternals;
  internals.accBeta1.assign(tf.scalar(file.accBeta1));
  internals.accBeta2.assign(tf.scalar(file.accBeta2));
}

export interface TrainingModels {
  g: tf.LayersModel;
  d: tf.LayersModel;
  optG: tf.AdamOptimizer;
  optD: tf.AdamOptimizer;
}

export async function saveCheckpoint<C>(runDir: string, models: TrainingModels, state: Omit<CheckpointState<C>, 'format' | 'savedAt'>): Promise<void> {
  await writeDirAtomically(path.join(runDir, CHECKPOINT_DIR), async (tmp) => {
    await saveLayersModel(models.g, path.join(tmp, 'generator'));
    await saveLayersModel(models.d, path.join(tmp, 'discriminator'));
    await saveOptimizer(models.optG, tmp, 'optimizer-g');
    await saveOptimizer(models.optD, tmp, 'optimizer-d');
    const full: CheckpointState<C> = { format: CHECKPOINT_FORMAT, ...state, savedAt: new Date().toISOString() };
    await writeFile(path.join(tmp, 'state.json'), JSON.stringify(full, null, 2) + '\n');
  }, { replace: true });
}

export async function readCheckpointState<C>(runDir: string): Promise<CheckpointState<C>> {
  const p = path.join(runDir, CHECKPOINT_DIR, 'state.json');
  let state: CheckpointState<C>;
  try {
    state = JSON.parse(await readFile(p, 'utf8')) as CheckpointState<C>;
  } catch (e) {
    throw new QgateError('NOT_FOUND', `${p}: no checkpoint to resume from (${(e as Error).message})`, { cause: e });
  }
  if (state.format !== CHECKPOINT_FORMAT) throw new QgateError('MODEL_INVALID', `${p}: format '${String(state.format)}' is not ${CHECKPOINT_FORMAT}`);
  return state;
}

/** Loads G's and D's weights and both optimizers' state into freshly built models and optimizers. */
export async function restoreCheckpoint(runDir: string, models: TrainingModels): Promise<void> {
  const dir = path.join(runDir, CHECKPOINT_DIR);
  for (const [name, target] of [['generator', models.g], ['discriminator', models.d]] as const) {
    const saved = await loadLayersModel(path.join(dir, name));
    target.setWeights(saved.getWeights());
    saved.dispose();
  }
  await loadOptimizer(models.optG, dir, 'optimizer-g');
  await loadOptimizer(models.optD, dir, 'optimizer-d');
}
