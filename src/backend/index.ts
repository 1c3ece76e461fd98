/**
 * The one place that chooses the TF.js backend. Everything else imports `@tensorflow/tfjs` and runs
 * on whatever this module set up.
 *
 * Order for `auto`: the native CUDA binding (`@tensorflow/tfjs-node-gpu`), the native CPU binding
 * (`@tensorflow/tfjs-node`), the portable wasm backend, then the pure-JS cpu backend. The native
 * packages are optional dependencies: their install downloads libtensorflow, which fails on offline
 * machines and npm then leaves them out, so here they are tried and skipped when they do not load.
 * wasm is therefore the embedded default; qgate registers its own wasm kernels so it can train.
 */
import os from 'node:os';
import * as tf from '@tensorflow/tfjs';
import { QgateError } from '../errors.ts';
import { logger, type Logger } from '../log.ts';
import { installFusedOpGradients } from './fused-gradients.ts';
import { registerQgateWasmKernels } from './wasm-kernels.ts';
import { createThreadedWasmBackend, MAX_WASM_THREADS } from './wasm-threads.ts';

export const BACKEND_CHOICES = ['auto', 'gpu', 'node', 'wasm', 'cpu'] as const;
export type BackendChoice = (typeof BACKEND_CHOICES)[number];
export type BackendName = Exclude<BackendChoice, 'auto'>;

export interface BackendInfo {
  /** qgate's name for it. */
  name: BackendName;
  /** The TF.js backend name (`tensorflow` for both native bindings). */
  tfBackend: string;
  /** Why this one: the choice made, and why each one before it was passed over. */
  reason: string;
  /** The wasm backend's XNNPACK threads (1 on every other backend). */
  threads: number;
}

export interface BackendOptions {
  /**
   * XNNPACK threads for the wasm backend (see wasm-threads.ts). 1 (the default) loads TF.js's
   * single-threaded module as TF.js itself does; more loads its threaded module. If that fails,
   * the single-threaded module is used and a warning is logged.
   */
  wasmThreads?: number;
}

interface Candidate {
  name: BackendName;
  tfBackend: string;
  load(options: Required<BackendOptions>, log: Logger): Promise<void>;
}

/** A specifier held in a variable, so TypeScript does not demand types for packages that may be absent. */
async function importOptional(specifier: string): Promise<void> {
  await import(specifier);
}

const candidates: Record<BackendName, Candidate> = {
  gpu: { name: 'gpu', tfBackend: 'tensorflow', load: () => importOptional('@tensorflow/tfjs-node-gpu') },
  node: { name: 'node', tfBackend: 'tensorflow', load: () => importOptional('@tensorflow/tfjs-node') },
  wasm: {
    name: 'wasm',
    tfBackend: 'wasm',
    load: async ({ wasmThreads }, log) => {
      await import('@tensorflow/tfjs-backend-wasm');
      registerQgateWasmKernels();
      if (wasmThreads > 1) useThreadedWasm(wasmThreads, log);
    },
  },
  cpu: { name: 'cpu', tfBackend: 'cpu', load: async () => {} },
};

const AUTO_ORDER: BackendName[] = ['gpu', 'node', 'wasm', 'cpu'];

/**
 * The wasm thread count for QGATE_WASM_THREADS's setting. `auto`: one thread per core (at most 8)
 * for batch jobs (training, reference sets, the CLI); 1 for the service, whose score workers each
 * take a core already, and where a pool on the main thread would have its threads spin-waiting
 * between kernels (XNNPACK's pool spins before it sleeps; measured: 200 small matmuls with 2 ms of
 * JavaScript between them cost 1.3 s of CPU on 2 threads against 0.76 s on one, in 0.75 s of wall time).
 */
export function wasmThreadsFor(setting: number | 'auto', job: 'batch' | 'service'): number {
  if (setting !== 'auto') return setting;
  return job === 'service' ? 1 : Math.min(os.availableParallelism(), MAX_WASM_THREADS);
}

let active: BackendInfo | undefined;
let wasmThreadsStarted = 1;

/**
 * Puts a factory for the threaded module in place of TF.js's for the name 'wasm' (kernels are
 * registered by backend name, so they follow). TF.js's own factory stays the fallback.
 */
function useThreadedWasm(threads: number, log: Logger): void {
  const stockFactory = tf.findBackendFactory('wasm');
  if (!stockFactory) throw new Error('the wasm backend is not registered');
  tf.removeBackend('wasm');
  tf.registerBackend('wasm', async () => {
    try {
      const backend = await createThreadedWasmBackend(threads);
      wasmThreadsStarted = threads;
      return backend;
    } catch (e) {
      log.warn({ err: e, threads }, `wasm thread pool could not start (${firstLine(e)}); running on one thread`);
      wasmThreadsStarted = 1;
      return stockFactory();
    }
  }, 2);
}

function threadsOf(name: BackendName): number {
  return name === 'wasm' ? wasmThreadsStarted : 1;
}

function firstLine(e: unknown): string {
  return (e instanceof Error ? e.message : String(e)).split('\n')[0] ?? '';
}

async function tryCandidate(c: Candidate, options: Required<BackendOptions>, log: Logger): Promise<void> {
  await c.load(options, log);
  if (!(await tf.setBackend(c.tfBackend))) throw new Error(`tf.setBackend('${c.tfBackend}') returned false`);
  await tf.ready();
}

/**
 * Selects and initialises the backend. With an explicit choice, failure is an error
 * (BACKEND_UNAVAILABLE); with `auto`, each failure is logged and the next one is tried.
 * Calling it again with the same choice returns the backend already set up.
 */
export async function initBackend(choice: BackendChoice = 'auto', log: Logger = logger, options: BackendOptions = {}): Promise<BackendInfo> {
  if (active && (choice === 'auto' || choice === active.name)) return active;
  installFusedOpGradients();
  const opts: Required<BackendOptions> = { wasmThreads: options.wasmThreads ?? 1 };
  if (choice !== 'auto') {
    const c = candidates[choice];
    try {
      await tryCandidate(c, opts, log);
    } catch (e) {
      throw new QgateError('BACKEND_UNAVAILABLE', `backend '${choice}' (QGATE_BACKEND) cannot be used: ${firstLine(e)}`, { cause: e });
    }
    active = { name: c.name, tfBackend: c.tfBackend, reason: `asked for with QGATE_BACKEND=${choice}`, threads: threadsOf(c.name) };
  } else {
    const skipped: string[] = [];
    for (const name of AUTO_ORDER) {
      const c = candidates[name];
      try {
        await tryCandidate(c, opts, log);
        active = {
          name, tfBackend: c.tfBackend, threads: threadsOf(name),
          reason: skipped.length ? `auto: first that loaded; skipped ${skipped.join('; ')}` : 'auto: first choice loaded',
        };
        break;
      } catch (e) {
        skipped.push(`${name} (${firstLine(e)})`);
      }
    }
    if (!active) throw new QgateError('BACKEND_UNAVAILABLE', `no TF.js backend could be loaded: ${skipped.join('; ')}`);
  }
  log.info({ backend: active.name, tfBackend: active.tfBackend, threads: active.threads, reason: active.reason },
    `TF.js backend: ${active.name}${active.threads > 1 ? ` on ${active.threads} threads` : ''}`);
  return active;
}

/** The backend chosen by initBackend, if any. */
export function activeBackend(): BackendInfo | undefined {
  return active;
}
