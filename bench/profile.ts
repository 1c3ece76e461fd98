/**
 * A `tf.profile` as a table: time per kernel, and how much of it is matmul and convolution
 * arithmetic (XNNPACK on wasm) rather than everything around it. Used by `npm run bench:gan-step
 * -- --profile` and `npm run bench -- --only q --profile`.
 */
import type * as tf from '@tensorflow/tfjs';

type ProfileInfo = Awaited<ReturnType<typeof tf.profile>>;

/**
 * Kernels that are the arithmetic itself. qgate's conv-gradient kernels call BatchMatMul inside,
 * which the profile records separately, so they are left out here to count nothing twice.
 */
const ARITHMETIC = new Set(['BatchMatMul', '_FusedMatMul', 'FusedConv2D', 'Conv2D']);

/**
 * Summarize at once: tf.profile hands back the engine's one profile object, which the next profile
 * overwrites.
 */
export function summarizeProfile(label: string, p: ProfileInfo, top = 12): string {
  const byKernel = new Map<string, { calls: number; ms: number }>();
  for (const k of p.kernels) {
    const e = byKernel.get(k.name) ?? { calls: 0, ms: 0 };
    e.calls++;
    e.ms += typeof k.kernelTimeMs === 'number' ? k.kernelTimeMs : 0;
    byKernel.set(k.name, e);
  }
  const arithmetic = [...byKernel].filter(([n]) => ARITHMETIC.has(n)).reduce((s, [, e]) => s + e.ms, 0);
  return [
    `\n${label}: ${p.kernels.length} kernel calls; matmul and convolution arithmetic ${arithmetic.toFixed(1)} ms`,
    '| kernel | calls | ms (includes kernels it calls) |\n|---|---|---|',
    ...[...byKernel].sort((a, b) => b[1].ms - a[1].ms).slice(0, top).map(([n, e]) => `| ${n} | ${e.calls} | ${e.ms.toFixed(2)} |`),
  ].join('\n');
}
