/**
 * A dynamic batcher in the manner of Triton's: requests queue up and are run together, in one model
 * call, when `maxBatchSize` are waiting or the oldest has waited `maxQueueDelayMs`. Up to
 * `concurrency` batches run at once (one per scoring worker; 1 when the model runs on the main
 * thread, which computes one batch at a time anyway); the queue is bounded, and a request beyond the bound
 * is refused at once with OVERLOADED rather than left to time out. Items carry the time after which
 * they are no longer worth running (their wait limit, their deadline): those still queued then are
 * dropped with OVERLOADED when the next batch is formed, so the client hears "retry later" before
 * it gives up.
 */
import { QgateError } from '../errors.ts';
import { queuedItemExpired, type ServiceTimeEstimator } from './admission.ts';

export interface BatcherOptions<I, O> {
  maxBatchSize: number;
  maxQueueDelayMs: number;
  /** Most items waiting (not counting the batch running). */
  maxQueue: number;
  /** Runs one batch; must return one output per input, in order. */
  run(items: I[]): Promise<O[]>;
  /** Batches run at once (default 1). */
  concurrency?: number;
  onQueueDepth?(depth: number): void;
  onBatch?(size: number): void;
  /** Called for each queued item dropped because its wait limit or deadline passed. */
  onExpired?(): void;
  /** Measures the per-item service time (admission reads it); none: not measured. */
  estimator?: ServiceTimeEstimator;
  /** The clock for wait limits and deadlines, ms; Date.now unless a test injects one. */
  now?(): number;
}

export interface SubmitOptions {
  /** Aborts the item while it is queued (the client went away, or its deadline timer fired). */
  signal?: AbortSignal | undefined;
  /** Still queued at this time: dropped with OVERLOADED (QGATE_MAX_QUEUE_WAIT_MS after admission). */
  expiresAt?: number | undefined;
  /** The call's deadline: dropped with OVERLOADED when one batch from now would end past it. */
  deadline?: number | undefined;
}

interface Pending<I, O> {
  item: I;
  resolve(o: O): void;
  reject(e: unknown): void;
  signal: AbortSignal | undefined;
  onAbort: (() => void) | undefined;
  expiresAt: number | undefined;
  deadline: number | undefined;
}

/** The error an aborted signal stands for: its reason when that is a QgateError, else CANCELLED. */
export function abortError(signal: AbortSignal): QgateError {
  const r: unknown = signal.reason;
  return r instanceof QgateError ? r : new QgateError('CANCELLED', 'the request was cancelled');
}

export class DynamicBatcher<I, O> {
  private readonly queue: Pending<I, O>[] = [];
  private timer: NodeJS.Timeout | undefined;
  /** The batches running now: at most `concurrency`. */
  private readonly running = new Set<Promise<void>>();
  private readonly concurrency: number;
  /** A flush is due on the next turn of the event loop (see flush). */
  private yielding = false;
  /** When the last batch ended, and whether items were waiting then (the next cycle starts there). */
  private lastEnd: number | undefined;
  private backlogAtEnd = false;
  private readonly o: BatcherOptions<I, O>;
  private readonly now: () => number;

  constructor(options: BatcherOptions<I, O>) {
    this.o = options;
    this.now = options.now ?? Date.now;
    this.concurrency = Math.max(1, options.concurrency ?? 1);
  }

  get depth(): number {
    return this.queue.length;
  }

  /**
   * Queues one item; rejects with OVERLOADED when the queue is full or the item expires while
   * queued, or with the signal's reason when `signal` aborts first.
   */
  submit(item: I, options: SubmitOptions = {}): Promise<O> {
    const { signal, expiresAt, deadline } = options;
    if (signal?.aborted) return Promise.reject(abortError(signal));
    if (this.queue.length >= this.o.maxQueue) {
      return Promise.reject(new QgateError('OVERLOADED', `the scoring queue is full (${this.o.maxQueue} waiting); retry later`));
    }
    return new Promise<O>((resolve, reject) => {
      const p: Pending<I, O> = { item, resolve, reject, signal, onAbort: undefined, expiresAt, deadline };
      if (signal) {
        // Dropped from the queue when the caller gives up; once in a running batch it finishes.
        p.onAbort = () => {
          const i = this.queue.indexOf(p);
          if (i >= 0) {
            this.queue.splice(i, 1);
            this.o.onQueueDepth?.(this.queue.length);
            reject(abortError(signal));
          }
        };
        signal.addEventListener('abort', p.onAbort, { once: true });
      }
      this.queue.push(p);
      this.o.onQueueDepth?.(this.queue.length);
      this.schedule();
    });
  }

  /** Resolves when the queue is empty and no batch runs. */
  async idle(): Promise<void> {
    while (this.running.size || this.queue.length) {
      if (this.running.size) await Promise.all(this.running);
      else await new Promise((r) => setImmediate(r));
    }
  }

  private schedule(): void {
    if (this.running.size >= this.concurrency || this.yielding) return; // a running batch, or the pending turn, reschedules
    if (this.queue.length >= this.o.maxBatchSize || this.o.maxQueueDelayMs === 0) {
      this.flush();
    } else if (!this.timer && this.queue.length) {
      this.timer = setTimeout(() => this.flush(), this.o.maxQueueDelayMs);
    }
  }

  /** Rejects, with OVERLOADED, queued items whose wait limit passed or whose deadline one batch would miss. */
  private dropExpired(now: number): void {
    const batchMs = this.o.estimator?.perBatchMs;
    let dropped = 0;
    for (let i = 0; i < this.queue.length;) {
      const p = this.queue[i]!;
      if (!queuedItemExpired(now, p.expiresAt, p.deadline, batchMs)) {
        i++;
        continue;
      }
      this.queue.splice(i, 1);
      if (p.signal && p.onAbort) p.signal.removeEventListener('abort', p.onAbort);
      dropped++;
      this.o.onExpired?.();
      p.reject(new QgateError('OVERLOADED', p.deadline !== undefined && now < (p.expiresAt ?? Infinity)
        ? 'the scoring queue is too long to answer before the call\'s deadline; retry later'
        : 'waited in the scoring queue past QGATE_MAX_QUEUE_WAIT_MS; retry later'));
    }
    if (dropped) this.o.onQueueDepth?.(this.queue.length);
  }

  private flush(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    if (this.running.size >= this.concurrency) return;
    const start = this.now();
    this.dropExpired(start);
    if (!this.queue.length) return;
    const batch = this.queue.splice(0, this.o.maxBatchSize);
    this.o.onQueueDepth?.(this.queue.length);
    this.o.onBatch?.(batch.length);
    for (const p of batch) if (p.signal && p.onAbort) p.signal.removeEventListener('abort', p.onAbort);
    // With one batch at a time, a batch that follows another at once starts its cycle where that one ended.
    const cycleStart = this.concurrency === 1 && this.backlogAtEnd && this.lastEnd !== undefined ? this.lastEnd : start;
    const running: Promise<void> = this.runBatch(batch).finally(() => {
      this.running.delete(running);
      this.lastEnd = this.now();
      this.backlogAtEnd = this.queue.length > 0;
      this.o.estimator?.observe(batch.length, this.lastEnd - cycleStart);
      // The next batch starts on the next turn of the event loop, not in this microtask chain. A
      // model call resolves without ever yielding to I/O (the wasm backend computes synchronously
      // and its data() settles as a microtask), so back-to-back batches chained here held the loop
      // for the whole backlog (1.2 s measured under overload): no request could be read, refused
      // or answered meanwhile, and refusals came seconds late. A turn of the loop (a poll phase)
      // between batches keeps admission, and everything else on the loop, responsive.
      this.yielding = true;
      setImmediate(() => {
        this.yielding = false;
        this.schedule();
      });
    });
    this.running.add(running);
    // A free slot (another worker) takes the next batch now rather than when this one ends.
    if (this.queue.length) this.schedule();
  }

  private async runBatch(batch: Pending<I, O>[]): Promise<void> {
    try {
      const out = await this.o.run(batch.map((p) => p.item));
      batch.forEach((p, i) => p.resolve(out[i]!));
    } catch (e) {
      for (const p of batch) p.reject(e);
    }
  }
}
