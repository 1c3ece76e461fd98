/**
 * Seeded randomness for everything qgate must be able to repeat (shuffles, benchmarks, noise).
 * Math.random cannot be seeded, and TF.js's seeded ops do not cover shuffles.
 */

/** mulberry32: a small, fast 32-bit PRNG with good statistical quality for this use. */
export function mulberry32(seed: number): () => number {
  return seededRng(seed);
}

/** mulberry32 whose whole state (one uint32) can be read and restored, for checkpoints. */
export interface SeededRng {
  (): number;
  /** The current state; `seededRng(rng.state())` continues the same stream. */
  state(): number;
}

export function seededRng(state: number): SeededRng {
  let a = state >>> 0;
  const next = (() => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }) as SeededRng;
  next.state = () => a;
  return next;
}

/** A uniformly random permutation of 0..n-1 (Fisher–Yates). */
export function shuffledIndices(n: number, rng: () => number): Int32Array {
  const out = new Int32Array(n);
  for (let i = 0; i < n; i++) out[i] = i;
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor(rng() * (i + 1));
    const t = out[i]!;
    out[i] = out[j]!;
    out[j] = t;
  }
  return out;
}

/** Fills `out` with standard normal samples (Box–Muller, both outputs used). */
export function fillGaussian(out: Float32Array, rand: () => number): Float32Array {
  for (let i = 0; i < out.length; i += 2) {
    const u = 1 - rand(); // (0, 1]: log is finite
    const v = rand();
    const r = Math.sqrt(-2 * Math.log(u));
    out[i] = r * Math.cos(2 * Math.PI * v);
    if (i + 1 < out.length) out[i + 1] = r * Math.sin(2 * Math.PI * v);
  }
  return out;
}
