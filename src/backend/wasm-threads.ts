/**
 * The wasm backend's own thread pool, under Node.
 *
 * TF.js ships a threaded-SIMD build of its wasm backend whose XNNPACK kernels (matmul, convolution,
 * element-wise ops) split their work over an Emscripten pthread pool. It never runs under Node as
 * shipped, for three reasons this module works around:
 *
 * - TF.js's `WASM_HAS_MULTITHREAD_SUPPORT` flag is false under Node (tfjs#3830), so the threaded
 *   build is never picked.
 * - Its loader hands Emscripten Blob URLs for the pthread worker and the main script, which Node's
 *   `worker_threads` cannot load. Here they are files: the worker's source (shipped inside the
 *   package as a string) is written to a private temporary directory, and the main script is the
 *   package's own file.
 * - The backend caps its pool at `emscripten_num_logical_cores() / 2`, assuming two hyper-threads
 *   per core, and under Node that function returns `os.cpus().length`: on a 2-core machine the cap
 *   is 1 thread, whatever was asked for. This is why an earlier attempt saw 8 workers start and
 *   `get_threads_count()` stay at 1. The module's import of that function is replaced, for this
 *   module instance only, by one that reports twice the threads wanted.
 *
 * Results do not change with the thread count: XNNPACK splits a kernel's output into tiles and each
 * tile is computed the same way whichever thread takes it (test/wasm-threads.test.ts trains the same
 * steps on 1 and 2 threads and compares the weights bit for bit).
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import type * as tf from '@tensorflow/tfjs';
import { wasmApi } from './native-kernels.ts';

const require = createRequire(import.meta.url);

/** Emscripten's module object, as far as this module uses it. */
interface EmscriptenModule {
  cwrap(name: string, returnType: string | null, argTypes: string[]): (...args: number[]) => number;
  PThread: { runningWorkers: Array<{ unref(): void }>; unusedWorkers: Array<{ unref(): void }> };
  tfjs?: unknown;
}
type Factory = (config: Record<string, unknown>) => Promise<EmscriptenModule>;
type Imports = Record<string, Record<string, unknown>>;

/** The pool Emscripten starts with (PTHREAD_POOL_SIZE in TF.js's build), and so the most threads without new workers. */
export const MAX_WASM_THREADS = 8;

/**
 * Replaces the import behind `emscripten_num_logical_cores` (minified, so found by what it does:
 * it is the one import that reads `cpus().length`) with one that returns `cores`.
 */
function reportCores(imports: Imports, cores: number): void {
  const env = imports.env ?? {};
  const found = Object.keys(env).filter((k) => typeof env[k] === 'function' && /\.cpus\(\)\.length/.test(String(env[k])));
  if (found.length !== 1) {
    throw new Error(`the threaded wasm module's core-count import was not found (${found.length} candidates); this TF.js version is not one qgate knows`);
  }
  env[found[0]!] = () => cores;
}

/**
 * Loads TF.js's threaded-SIMD wasm module with a pool of `threads` XNNPACK threads and returns a
 * wasm backend over it, for `tf.registerBackend`. Kernels registered for 'wasm' (TF.js's and
 * qgate's) run on it unchanged.
 */
export async function createThreadedWasmBackend(threads: number): Promise<tf.KernelBackend> {
  if (!Number.isInteger(threads) || threads < 2 || threads > MAX_WASM_THREADS) {
    throw new RangeError(`wasm threads must be an integer in [2, ${MAX_WASM_THREADS}], got ${threads}`);
  }
  const script = require.resolve('@tensorflow/tfjs-backend-wasm/wasm-out/tfjs-backend-wasm-threaded-simd.js');
  const dir = path.dirname(script);
  const { wasmWorkerContents } = require(path.join(dir, 'tfjs-backend-wasm-threaded-simd.worker.js')) as { wasmWorkerContents: string };
  const factory = require(script) as Factory;
  // Imported here, not at the top: importing the package registers the wasm backend.
  const { BackendWasm, getThreadsCount, setThreadsCount } = await import('@tensorflow/tfjs-backend-wasm');
  const binary = readFileSync(path.join(dir, 'tfjs-backend-wasm-threaded-simd.wasm'));

  const tmp = mkdtempSync(path.join(os.tmpdir(), 'qgate-wasm-'));
  // Emscripten makes this object its Module, so its pool (PThread) can be reached here even when loading fails.
  const config: Record<string, unknown> = {};
  try {
    const workerFile = path.join(tmp, 'pthread-worker.js');
    // TF.js escapes the newlines of the worker's string literals the same way before making its Blob.
    writeFileSync(workerFile, wasmWorkerContents.replace(/\n/g, '\\n'), { mode: 0o600 });
    Object.assign(config, {
      locateFile: (file: string) => (file.endsWith('.worker.js') ? workerFile : path.join(dir, file)),
      mainScriptUrlOrBlob: script,
      // Synchronous, so that a failure here rejects the factory's promise instead of going unhandled.
      instantiateWasm: (imports: Imports, receive: (instance: object, module: object) => void) => {
        reportCores(imports, 2 * threads);
        const module = new wasmApi.Module(binary);
        const instance = new wasmApi.Instance(module, imports);
        receive(instance, module);
        return instance.exports;
      },
    });
    // Resolves once the module has run and all of Emscripten's pool workers have loaded it.
    const wasm = await factory(config);
    // The same bridge TF.js's own loader builds (backend_wasm.ts), which BackendWasm expects.
    wasm.tfjs = {
      init: wasm.cwrap('init', null, []),
      initWithThreadsCount: wasm.cwrap('init_with_threads_count', null, ['number']),
      getThreadsCount: wasm.cwrap('get_threads_count', 'number', []),
      registerTensor: wasm.cwrap('register_tensor', null, ['number', 'number', 'number']),
      disposeData: wasm.cwrap('dispose_data', null, ['number']),
      dispose: wasm.cwrap('dispose', null, []),
    };
    setThreadsCount(threads);
    const backend = new BackendWasm(wasm as unknown as ConstructorParameters<typeof BackendWasm>[0]);
    if (getThreadsCount() !== threads) throw new Error(`asked XNNPACK for ${threads} threads, it started ${getThreadsCount()}`);
    // The pool's threads wait for work for the life of the process; they must not keep it alive.
    for (const w of [...wasm.PThread.runningWorkers, ...wasm.PThread.unusedWorkers]) w.unref();
    return backend;
  } catch (e) {
    // Workers left running would keep the process alive.
    (config.PThread as { terminateAllThreads?: () => void } | undefined)?.terminateAllThreads?.();
    throw e;
  } finally {
    // Every worker has read the file by now (the factory waits for them), and no more are started.
    rmSync(tmp, { recursive: true, force: true });
  }
}
