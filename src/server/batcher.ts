/**
 * A dynamic batcher in the manner of Triton's: requests queue up and are run together, in one model
 * call, when `maxBatchSize` are waiting or the oldest has waited `maxQueueDelayMs`. One batch runs
 * at a time (TF.js runs on one thread anyway); the queue is bounded, and a request beyond the bound
 * is refused at once with OVERLOADED rather than left to time out.
 */
import { QgateError } from '../errors.ts';

export interface BatcherOptions<I, O> {
  maxBatchSize: number;
  maxQueueDelayMs: number;
  /** Most items waiting (not counting the batch running). */
  maxQueue: number;
  /** Runs one batch; must return one output per input, in order. */
  run(items: I[]): Promise<O[]>;
  onQueueDepth?(depth: number): void;
  onBatch?(size: number): void;
}

interface Pending<I, O> {
  item: I;
  resolve(o: O): void;
  reject(e: unknown): void;
  signal: AbortSignal | undefined;
  onAbort: (() => void) | undefined;
}

/** The error an aborted signal stands for: its reason when that is a QgateError, else CANCELLED. */
export function abortError(signal: AbortSignal): QgateError {
  const r: unknown = signal.reason;
  return r instanceof QgateError ? r : new QgateError('CANCELLED', 'the request was cancelled');
}

export class DynamicBatcher<I, O> {
  private readonly queue: Pending<I, O>[] = [];
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private readonly o: BatcherOptions<I, O>;

  constructor(options: BatcherOptions<I, O>) {
    this.o = options;
  }

  get depth(): number {
    return this.queue.length;
  }

  /** Queues one item; rejects with OVERLOADED when the queue is full, or when `signal` aborts first. */
  submit(item: I, signal?: AbortSignal): Promise<O> {
    if (signal?.aborted) return Promise.reject(abortError(signal));
    if (this.queue.length >= this.o.maxQueue) {
      return Promise.reject(new QgateError('OVERLOADED', `the scoring queue is full (${this.o.maxQueue} waiting); retry later`));
    }
    return new Promise<O>((resolve, reject) => {
      const p: Pending<I, O> = { item, resolve, reject, signal, onAbort: undefined };
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
    while (this.running || this.queue.length) {
      if (this.running) await this.running;
      else await new Promise((r) => setImmediate(r));
    }
  }

  private schedule(): void {
    if (this.running) return; // the running batch reschedules when it ends
    if (this.queue.length >= this.o.maxBatchSize || this.o.maxQueueDelayMs === 0) {
      this.flush();
    } else if (!this.timer && this.queue.length) {
      this.timer = setTimeout(() => this.flush(), this.o.maxQueueDelayMs);
    }
  }

  private flush(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    if (this.running || !this.queue.length) return;
    const batch = this.queue.splice(0, this.o.maxBatchSize);
    this.o.onQueueDepth?.(this.queue.length);
    this.o.onBatch?.(batch.length);
    for (const p of batch) if (p.signal && p.onAbort) p.signal.removeEventListener('abort', p.onAbort);
    this.running = this.runBatch(batch).finally(() => {
      this.running = undefined;
      this.schedule();
    });
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
