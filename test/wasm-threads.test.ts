import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { test } from 'node:test';
import { promisify } from 'node:util';
import { loadConfig } from '../src/config.ts';
import { wasmThreadsFor } from '../src/backend/index.ts';

const run = promisify(execFile);

/** Runs test/fixtures/train-steps.ts in its own process: the backend is chosen once per process. */
async function trainSteps(threads: number): Promise<{ threads: number; native: boolean; hash: string }> {
  // The timeout also catches a process kept alive by the thread pool's workers.
  const { stdout } = await run(process.execPath, ['--import', 'tsx', 'test/fixtures/train-steps.ts'], {
    env: { ...process.env, QGATE_WASM_THREADS: String(threads) },
    timeout: 120_000,
  });
  return JSON.parse(stdout.trim().split('\n').at(-1)!) as { threads: number; native: boolean; hash: string };
}

test('the wasm thread pool starts under Node, and training on it gives the same weights bit for bit', async () => {
  const [one, two] = await Promise.all([trainSteps(1), trainSteps(2)]);
  assert.equal(one.threads, 1);
  assert.equal(two.threads, 2, 'XNNPACK started 2 threads');
  assert.ok(one.native && two.native, 'the compiled conv kernels loaded on both heaps (plain and shared memory)');
  assert.equal(two.hash, one.hash, 'DCGAN weights and losses after 3 steps at λ = 0 and λ = 0.1');
});

test('QGATE_WASM_THREADS: auto, or 1–8; auto means every core for batch jobs and 1 for the service', () => {
  assert.equal(loadConfig({}).wasmThreads, 'auto');
  assert.equal(loadConfig({ QGATE_WASM_THREADS: '3' }).wasmThreads, 3);
  for (const bad of ['0', '9', '1.5', 'many']) {
    assert.throws(() => loadConfig({ QGATE_WASM_THREADS: bad }), { code: 'INVALID_ARGUMENT', message: /QGATE_WASM_THREADS/ });
  }
  assert.equal(wasmThreadsFor('auto', 'service'), 1);
  assert.ok(wasmThreadsFor('auto', 'batch') >= 1 && wasmThreadsFor('auto', 'batch') <= 8);
  assert.equal(wasmThreadsFor(3, 'service'), 3);
});
