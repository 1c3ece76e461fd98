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
import * as tf from '@tensorflow/tfjs';
import { QgateError } from '../errors.ts';
import { logger, type Logger } from '../log.ts';
import { registerQgateWasmKernels } from './wasm-kernels.ts';

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
}

interface Candidate {
  name: BackendName;
  tfBackend: string;
  load(): Promise<void>;
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
    load: async () => {
      await import('@tensorflow/tfjs-backend-wasm');
      registerQgateWasmKernels();
    },
  },
  cpu: { name: 'cpu', tfBackend: 'cpu', load: async () => {} },
};

const AUTO_ORDER: BackendName[] = ['gpu', 'node', 'wasm', 'cpu'];

let active: BackendInfo | undefined;

function firstLine(e: unknown): string {
  return (e instanceof Error ? e.message : String(e)).split('\n')[0] ?? '';
}

async function tryCandidate(c: Candidate): Promise<void> {
  await c.load();
  if (!(await tf.setBackend(c.tfBackend))) throw new Error(`tf.setBackend('${c.tfBackend}') returned false`);
  await tf.ready();
}

/**
 * Selects and initialises the backend. With an explicit choice, failure is an error
 * (BACKEND_UNAVAILABLE); with `auto`, each failure is logged and the next one is tried.
 * Calling it again with the same choice returns the backend already set up.
 */
export async function initBackend(choice: BackendChoice = 'auto', log: Logger = logger): Promise<BackendInfo> {
  if (active && (choice === 'auto' || choice === active.name)) return active;
  if (choice !== 'auto') {
    const c = candidates[choice];
    try {
      await tryCandidate(c);
    } catch (e) {
      throw new QgateError('BACKEND_UNAVAILABLE', `backend '${choice}' (QGATE_BACKEND) cannot be used: ${firstLine(e)}`, { cause: e });
    }
    active = { name: c.name, tfBackend: c.tfBackend, reason: `asked for with QGATE_BACKEND=${choice}` };
  } else {
    const skipped: string[] = [];
    for (const name of AUTO_ORDER) {
      const c = candidates[name];
      try {
        await tryCandidate(c);
        active = {
          name, tfBackend: c.tfBackend,
          reason: skipped.length ? `auto: first that loaded; skipped ${skipped.join('; ')}` : 'auto: first choice loaded',
        };
        break;
      } catch (e) {
        skipped.push(`${name} (${firstLine(e)})`);
      }
    }
    if (!active) throw new QgateError('BACKEND_UNAVAILABLE', `no TF.js backend could be loaded: ${skipped.join('; ')}`);
  }
  log.info({ backend: active.name, tfBackend: active.tfBackend, reason: active.reason }, `TF.js backend: ${active.name}`);
  return active;
}

/** The backend chosen by initBackend, if any. */
export function activeBackend(): BackendInfo | undefined {
  return active;
}
