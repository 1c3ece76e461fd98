/**
 * Scoring on worker threads. TF.js on wasm runs every kernel on the thread that called it, and its
 * own thread pool does not start under Node (WASM_HAS_MULTITHREAD_SUPPORT is false there), so a
 * service that scores on its main thread uses one core and stalls its event loop for every batch.
 * The pool runs one quality module per worker thread, each with its own wasm instance: batches run
 * side by side on separate cores and the main thread stays free for HTTP, gRPC and decoding.
 *
 * A batch goes to the worker with the fewest batches in flight. A worker that dies fails only the
 * batches it held (INTERNAL) and is replaced; the pool never takes the process down with it.
 */
import { Worker } from 'node:worker_threads';
import type { BackendName } from '../backend/index.ts';
import type { Config } from '../config.ts';
import { QgateError, type ErrorCode } from '../errors.ts';
import type { ImageScore } from '../quality/index.ts';
import { logger } from '../log.ts';

export interface WorkerInit {
  backend: BackendName;
  quality: Pick<Config, 'extractorDir' | 'featureLayer' | 'referenceDir' | 'alpha' | 'tau' | 'noiseEstimator'>;
}

export type PoolRequest =
  | { id: number; kind: 'score'; pixels: Float32Array }
  | { id: number; kind: 'tensors' };

export type PoolResponse =
  | { id: number; ok: true; scores?: ImageScore[]; tensors?: number; ready?: { backend: string; extractor: string; reference: string } }
  | { id: number; ok: false; code: ErrorCode; message: string };

interface Slot {
  worker: Worker;
  /** Set when the worker exits; a replacement takes its place. */
  dead: boolean;
  inFlight: Map<number, { resolve(r: PoolResponse & { ok: true }): void; reject(e: unknown): void }>;
}

const WORKER_URL = new URL('./score-worker-entry.mjs', import.meta.url);

export class ScorePool {
  private readonly slots: Slot[] = [];
  private nextId = 1;
  private closed = false;
  /** Workers that died and were replaced, for the metrics. */
  restarts = 0;

  private constructor(private readonly init: WorkerInit) {}

  /** Starts `size` workers and resolves once every one has loaded its models. */
  static async start(init: WorkerInit, size: number): Promise<ScorePool> {
    if (!(Number.isInteger(size) && size >= 1)) throw new QgateError('INVALID_ARGUMENT', `a score pool needs at least one worker, got ${size}`);
    const pool = new ScorePool(init);
    try {
      for (let i = 0; i < size; i++) pool.slots.push(await pool.spawn());
    } catch (e) {
      await pool.close();
      throw e;
    }
    return pool;
  }

  get size(): number {
    return this.slots.length;
  }

  /** Scores a batch of images already at the extractor's input size ([n·H·W·C] in [0,1]). The pixels are transferred, not copied. */
  async score(pixels: Float32Array): Promise<ImageScore[]> {
    const live = this.slots.filter((s) => !s.dead);
    if (!live.length) throw new QgateError('UNAVAILABLE', 'no scoring worker is running; retry later');
    const slot = live.reduce((a, b) => (b.inFlight.size < a.inFlight.size ? b : a));
    const r = await this.call(slot, { id: this.nextId++, kind: 'score', pixels }, [pixels.buffer as ArrayBuffer]);
    return r.scores!;
  }

  /** Live tensors summed over the workers: the pool's part of qgate_tf_tensors. */
  async tensors(): Promise<number> {
    const counts = await Promise.all(this.slots.filter((s) => !s.dead).map((s) => this.call(s, { id: this.nextId++, kind: 'tensors' }, [])));
    return counts.reduce((sum, r) => sum + (r.tensors ?? 0), 0);
  }

  async close(): Promise<void> {
    this.closed = true;
    await Promise.all(this.slots.splice(0).map((s) => s.worker.terminate()));
  }

  private call(slot: Slot, req: PoolRequest, transfer: ArrayBuffer[]): Promise<PoolResponse & { ok: true }> {
    if (this.closed) return Promise.reject(new QgateError('UNAVAILABLE', 'the scoring pool is shut down'));
    return new Promise((resolve, reject) => {
      slot.inFlight.set(req.id, { resolve, reject });
      slot.worker.postMessage(req, transfer);
    });
  }

  private spawn(): Promise<Slot> {
    return new Promise((resolve, reject) => {
      const worker = new Worker(WORKER_URL, { workerData: this.init });
      const slot: Slot = { worker, dead: false, inFlight: new Map() };
      let ready = false;
      worker.on('message', (m: PoolResponse) => {
        if (!ready) {
          ready = true;
          resolve(slot);
          return;
        }
        const p = slot.inFlight.get(m.id);
        if (!p) return;
        slot.inFlight.delete(m.id);
        if (m.ok) p.resolve(m);
        else p.reject(new QgateError(m.code, m.message));
      });
      worker.on('error', (e) => {
        if (!ready) reject(e instanceof QgateError ? e : new QgateError('MODEL_INVALID', `a scoring worker failed to start: ${e.message}`, { cause: e }));
        else logger.error({ err: e }, 'scoring worker failed');
      });
      worker.on('exit', (code) => {
        slot.dead = true;
        for (const p of slot.inFlight.values()) p.reject(new QgateError('INTERNAL', `a scoring worker exited (code ${code}) while scoring`));
        slot.inFlight.clear();
        const i = this.slots.indexOf(slot);
        if (!ready || this.closed || i < 0) return;
        this.restarts++;
        logger.warn({ code }, 'scoring worker exited; starting a replacement');
        this.spawn().then((fresh) => {
          if (this.closed) void fresh.worker.terminate();
          else this.slots[this.slots.indexOf(slot)] = fresh;
        }, (e: unknown) => logger.error({ err: e }, 'could not replace a scoring worker'));
      });
    });
  }
}
