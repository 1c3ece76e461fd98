/**
 * One scoring worker thread of the ScorePool: its own TF.js backend (a wasm instance runs on one
 * thread, so a second instance in a second thread is how scoring uses a second core) and its own
 * copy of the quality module. It answers one message per batch and never exits on a bad one.
 */
import { parentPort, workerData } from 'node:worker_threads';
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '../backend/index.ts';
import { QgateError } from '../errors.ts';
import { loadQuality } from '../quality/index.ts';
import type { PoolRequest, PoolResponse, WorkerInit } from './score-pool.ts';

const init = workerData as WorkerInit;
const port = parentPort!;

const backend = await initBackend(init.backend);
const quality = await loadQuality(init.quality);
const { height, width, channels } = quality.extractor.input;

function reply(message: PoolResponse): void {
  port.postMessage(message);
}

port.on('message', (req: PoolRequest) => {
  if (req.kind === 'tensors') {
    reply({ id: req.id, ok: true, tensors: tf.memory().numTensors });
    return;
  }
  void (async () => {
    try {
      const size = height * width * channels;
      const n = req.pixels.length / size;
      if (!(Number.isInteger(n) && n > 0)) {
        throw new QgateError('INVALID_ARGUMENT', `a batch must hold whole ${height}×${width}×${channels} images, got ${req.pixels.length} values`);
      }
      const batch = tf.tensor4d(req.pixels, [n, height, width, channels]);
      try {
        reply({ id: req.id, ok: true, scores: await quality.score(batch) });
      } finally {
        batch.dispose();
      }
    } catch (e) {
      const err = e instanceof QgateError ? e : new QgateError('INTERNAL', e instanceof Error ? e.message : String(e));
      reply({ id: req.id, ok: false, code: err.code, message: err.message });
    }
  })();
});

reply({ id: 0, ok: true, ready: { backend: backend.name, extractor: quality.extractor.id, reference: quality.reference.manifest.id } });
