/**
 * Admission for the scoring queue, by expected wait rather than by count alone (as Triton's queue
 * policy, TorchServe and Envoy's adaptive concurrency do). A request that would wait longer than
 * QGATE_MAX_QUEUE_WAIT_MS, or past its own gRPC deadline, is refused at once with OVERLOADED (503 +
 * Retry-After / RESOURCE_EXHAUSTED): a fast "no" the client can act on, instead of a slow
 * timeout that costs it its whole deadline and costs the server the work it did before the client
 * gave up. The count bound (QGATE_MAX_QUEUE + QGATE_MAX_BATCH_SIZE) stays as the memory bound.
 *
 * The expected wait is the number of requests admitted ahead times the measured per-item service
 * time. Pure functions and a small estimator, so the tests can drive them without a clock.
 */
import { stacklessError, type QgateError } from '../errors.ts';

/**
 * Per-item service time of the batcher: an exponentially weighted mean of a batch's cycle time
 * divided by its size. The cycle of a batch that follows another at once starts when the previous
 * one ended, so it includes the event-loop turn between them (where requests are read and
 * answered): under overload that is what a queued item really waits per batch. Batches smaller
 * than `minBatch` are not counted: their fixed cost per call makes the per-item time look several
 * times worse than it is when the queue is long, which is the only time the estimate matters.
 */
export class ServiceTimeEstimator {
  private perItem: number | undefined;
  private perBatch: number | undefined;
  private readonly minBatch: number;
  private readonly weight: number;
  private readonly parallelism: number;

  /** `parallelism`: batches that run at once (one per scoring worker), so the queue drains that many times faster than one batch's time per item. */
  constructor(minBatch: number, weight = 0.2, parallelism = 1) {
    this.minBatch = Math.max(1, minBatch);
    this.weight = weight;
    this.parallelism = Math.max(1, parallelism);
  }

  /** Records one batch of `size` items whose cycle took `cycleMs`. */
  observe(size: number, cycleMs: number): void {
    if (size < this.minBatch || !(cycleMs >= 0)) return;
    const item = cycleMs / size;
    this.perItem = this.perItem === undefined ? item : this.perItem + this.weight * (item - this.perItem);
    this.perBatch = this.perBatch === undefined ? cycleMs : this.perBatch + this.weight * (cycleMs - this.perBatch);
  }

  /** ms per item of the whole queue (all parallel batches together), or undefined before the first batch of at least `minBatch` items. */
  get perItemMs(): number | undefined {
    return this.perItem === undefined ? undefined : this.perItem / this.parallelism;
  }

  /** ms per batch (of at least `minBatch` items), or undefined before the first. */
  get perBatchMs(): number | undefined {
    return this.perBatch;
  }
}

export type ShedReason = 'queue_full' | 'wait' | 'deadline';

export interface AdmissionInput {
  /** Requests admitted and not yet answered (decoding, queued, or in the running batch). */
  admitted: number;
  /** The count bound: QGATE_MAX_QUEUE + QGATE_MAX_BATCH_SIZE. */
  maxAdmitted: number;
  /** Measured ms per item; undefined (not measured yet) applies the count bound only. */
  perItemMs: number | undefined;
  /** QGATE_MAX_QUEUE_WAIT_MS. */
  maxWaitMs: number;
  /** Now and the call's deadline, on the same clock (ms); no deadline over REST. */
  now: number;
  deadline?: number | undefined;
}

export interface Refusal {
  reason: ShedReason;
  error: QgateError;
}

/** ms until a new request would be answered: the requests ahead of it and itself, at the measured rate. */
export function expectedWaitMs(admitted: number, perItemMs: number | undefined): number {
  return perItemMs === undefined ? 0 : (admitted + 1) * perItemMs;
}

/** Undefined to admit; otherwise why not, with the OVERLOADED error to answer with. */
export function admissionRefusal(a: AdmissionInput): Refusal | undefined {
  if (a.admitted >= a.maxAdmitted) {
    return { reason: 'queue_full', error: stacklessError('OVERLOADED', `the scoring queue is full (${a.admitted} requests admitted); retry later`) };
  }
  const wait = expectedWaitMs(a.admitted, a.perItemMs);
  if (wait > a.maxWaitMs) {
    return {
      reason: 'wait',
      error: stacklessError('OVERLOADED', `the expected wait (${Math.round(wait)} ms for ${a.admitted} requests ahead) is over QGATE_MAX_QUEUE_WAIT_MS (${a.maxWaitMs} ms); retry later`),
    };
  }
  if (a.deadline !== undefined && a.now + wait >= a.deadline) {
    return {
      reason: 'deadline',
      error: stacklessError('OVERLOADED', `the expected wait (${Math.round(wait)} ms) is over the ${Math.max(0, Math.round(a.deadline - a.now))} ms left to the call's deadline; retry later`),
    };
  }
  return undefined;
}

/**
 * Whether an item still queued should be dropped (OVERLOADED) instead of run: its wait has grown past
 * `expiresAt` (admission time + QGATE_MAX_QUEUE_WAIT_MS), or running it now (one batch, `batchMs`)
 * would end past its deadline, so the client would have given up before the answer.
 */
export function queuedItemExpired(now: number, expiresAt: number | undefined, deadline: number | undefined, batchMs: number | undefined): boolean {
  if (expiresAt !== undefined && now >= expiresAt) return true;
  return deadline !== undefined && now + (batchMs ?? 0) >= deadline;
}
