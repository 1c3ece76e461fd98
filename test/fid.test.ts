import { test } from 'node:test';
import assert from 'node:assert/strict';
import { initBackend } from '../src/backend/index.ts';
import { fillGaussian, mulberry32 } from '../src/random.ts';
import { fid, frechetDistance, meanAndCovariance, sqrtPsd, symmetricEigen, type SymMatrix } from '../src/train/fid.ts';
import { precisionRecall } from '../src/train/evaluate.ts';

await initBackend('wasm');

function randomSpd(n: number, seed: number): SymMatrix {
  const a = fillGaussian(new Float32Array(n * n), mulberry32(seed));
  const data = new Float64Array(n * n);
  for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) {
    let s = 0;
    for (let k = 0; k < n; k++) s += a[i * n + k]! * a[j * n + k]!;
    data[i * n + j] = s / n + (i === j ? 0.1 : 0);
  }
  return { n, data };
}

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

test('Jacobi eigen-decomposition of a 40×40 symmetric matrix rebuilds it with orthonormal eigenvectors', () => {
  const s = randomSpd(40, 3);
  const n = s.n;
  const { values, vectors } = symmetricEigen(s);
  const rebuilt = new Float64Array(n * n);
  const vtv = new Float64Array(n * n);
  for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) {
    let r = 0;
    let o = 0;
    for (let k = 0; k < n; k++) {
      r += vectors[i * n + k]! * values[k]! * vectors[j * n + k]!;
      o += vectors[k * n + i]! * vectors[k * n + j]!;
    }
    rebuilt[i * n + j] = r;
    vtv[i * n + j] = o - (i === j ? 1 : 0);
  }
  assert.ok(maxAbsDiff(rebuilt, s.data) < 1e-10, `V·Λ·Vᵀ − S: ${maxAbsDiff(rebuilt, s.data)}`);
  assert.ok(maxAbsDiff(vtv, new Float64Array(n * n)) < 1e-10, 'VᵀV = I');
  // A known spectrum: diag(1, 2, 3) rotated stays {1, 2, 3}.
  const c = Math.cos(0.7);
  const sn = Math.sin(0.7);
  const rot = { n: 3, data: Float64Array.from([c * c * 1 + sn * sn * 2, c * sn * (2 - 1), 0, c * sn * (2 - 1), sn * sn * 1 + c * c * 2, 0, 0, 0, 3]) };
  assert.deepEqual([...symmetricEigen(rot).values].map((v) => Number(v.toFixed(12))).sort(), [1, 2, 3]);
});

test('The PSD square root of a 128×128 covariance squares back to it', () => {
  const s = randomSpd(128, 5);
  const r = sqrtPsd(s);
  const n = s.n;
  const sq = new Float64Array(n * n);
  for (let i = 0; i < n; i++) for (let k = 0; k < n; k++) for (let j = 0; j < n; j++) sq[i * n + j]! += r.data[i * n + k]! * r.data[k * n + j]!;
  assert.ok(maxAbsDiff(sq, s.data) < 1e-9, `‖√S·√S − S‖∞ = ${maxAbsDiff(sq, s.data)}`);
});

test('The Fréchet distance matches the closed forms: diagonal covariances and a non-commuting 2×2 pair', () => {
  const diag = (v: number[]): SymMatrix => {
    const n = v.length;
    const data = new Float64Array(n * n);
    v.forEach((x, i) => (data[i * n + i] = x));
    return { n, data };
  };
  // Commuting (diagonal): Σ (√a − √b)² per axis plus the mean term.
  const d1 = frechetDistance({ mean: Float64Array.from([0, 1, 2]), cov: diag([1, 4, 9]) }, { mean: Float64Array.from([1, 1, 0]), cov: diag([4, 1, 1]) });
  assert.ok(Math.abs(d1 - (1 + 0 + 4 + 1 + 1 + 4)) < 1e-10, `diagonal: ${d1}`);
  // Non-commuting 2×2: Tr √(Σ1Σ2) = √(tr(Σ1Σ2) + 2√(det Σ1 · det Σ2)).
  const s1 = { n: 2, data: Float64Array.from([2, 1, 1, 2]) };
  const s2 = { n: 2, data: Float64Array.from([3, 0, 0, 1]) };
  const trProduct = 2 * 3 + 1 * 0 + 1 * 0 + 2 * 1;
  const expected = 4 + 4 - 2 * Math.sqrt(trProduct + 2 * Math.sqrt(3 * 3)) + 0.25;
  const d2 = frechetDistance({ mean: Float64Array.from([0, 0]), cov: s1 }, { mean: Float64Array.from([0.5, 0]), cov: s2 });
  assert.ok(Math.abs(d2 - expected) < 1e-10, `2×2: ${d2} vs ${expected}`);
});

test('FID of a feature set with itself is 0, and of Gaussian samples approaches the closed form', () => {
  const rand = mulberry32(9);
  const n = 20000;
  const a = fillGaussian(new Float32Array(n * 4), rand);
  assert.ok(fid(a, n, a, n, 4) < 1e-9, 'identical sets');
  // b ~ N(μ = (1,0,0,0), diag(4,1,1,1)): FID(N(0,I), b) = 1 + (√4 − 1)² = 2.
  const b = fillGaussian(new Float32Array(n * 4), rand);
  for (let i = 0; i < n; i++) {
    b[i * 4] = b[i * 4]! * 2 + 1;
  }
  const value = fid(a, n, b, n, 4);
  assert.ok(Math.abs(value - 2) < 0.1, `sampled FID ${value}, closed form 2`);
  const { mean } = meanAndCovariance(b, n, 4);
  assert.ok(Math.abs(mean[0]! - 1) < 0.05);
});

test('Precision and recall are 1 for identical sets and 0 for far-apart ones', () => {
  const rand = mulberry32(2);
  const a = fillGaussian(new Float32Array(300 * 8), rand);
  assert.deepEqual(precisionRecall(a, a, 8), { precision: 1, recall: 1 });
  const far = a.map((v) => v + 100);
  assert.deepEqual(precisionRecall(a, far, 8), { precision: 0, recall: 0 });
});
