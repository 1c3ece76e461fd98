/**
 * Fréchet distance between two Gaussians fitted to feature sets (FID, Heusel et al. 2017):
 *
 *   d² = ‖μ1 − μ2‖² + Tr(Σ1 + Σ2 − 2(Σ1Σ2)^{1/2})
 *
 * Tr((Σ1Σ2)^{1/2}) is computed without a non-symmetric square root: with A = Σ1^{1/2} (symmetric
 * PSD, from an eigen-decomposition), Σ1Σ2 = A·(AΣ2A)·A⁻¹ is similar to the symmetric PSD matrix
 * AΣ2A, so both have the same eigenvalues λ_i ≥ 0 and Tr((Σ1Σ2)^{1/2}) = Σ √λ_i. All in float64.
 */

/** A symmetric n×n matrix, row-major float64. */
export interface SymMatrix {
  n: number;
  data: Float64Array;
}

/** Mean [D] and covariance [D×D] (unbiased, n − 1) of `count` rows of `size` features. */
export function meanAndCovariance(rows: ArrayLike<number>, count: number, size: number): { mean: Float64Array; cov: SymMatrix } {
  if (count < 2) throw new RangeError(`need at least 2 rows for a covariance, got ${count}`);
  const mean = new Float64Array(size);
  for (let i = 0; i < count; i++) for (let j = 0; j < size; j++) mean[j]! += rows[i * size + j]!;
  for (let j = 0; j < size; j++) mean[j]! /= count;
  const cov = new Float64Array(size * size);
  const centered = new Float64Array(size);
  for (let i = 0; i < count; i++) {
    for (let j = 0; j < size; j++) centered[j] = rows[i * size + j]! - mean[j]!;
    for (let a = 0; a < size; a++) {
      const ca = centered[a]!;
      if (ca === 0) continue;
      const row = a * size;
      for (let b = a; b < size; b++) cov[row + b]! += ca * centered[b]!;
    }
  }
  for (let a = 0; a < size; a++) {
    for (let b = a; b < size; b++) {
      const v = cov[a * size + b]! / (count - 1);
      cov[a * size + b] = v;
      cov[b * size + a] = v;
    }
  }
  return { mean, cov: { n: size, data: cov } };
}

/**
 * Eigen-decomposition of a symmetric matrix by the cyclic Jacobi method: S = V·diag(values)·Vᵀ,
 * the columns of V (row-major n×n) being the eigenvectors. Converges quadratically; stops when the
 * off-diagonal mass is below 1e-22 of the total (or after 100 sweeps).
 */
export function symmetricEigen(m: SymMatrix): { values: Float64Array; vectors: Float64Array } {
  const n = m.n;
  const a = Float64Array.from(m.data);
  const v = new Float64Array(n * n);
  for (let i = 0; i < n; i++) v[i * n + i] = 1;
  let total = 0;
  for (let i = 0; i < n * n; i++) total += a[i]! * a[i]!;
  for (let sweep = 0; sweep < 100; sweep++) {
    let off = 0;
    for (let p = 0; p < n; p++) for (let q = p + 1; q < n; q++) off += 2 * a[p * n + q]! * a[p * n + q]!;
    if (off <= 1e-22 * total || off === 0) break;
    for (let p = 0; p < n - 1; p++) {
      for (let q = p + 1; q < n; q++) {
        const apq = a[p * n + q]!;
        if (apq === 0) continue;
        const app = a[p * n + p]!;
        const aqq = a[q * n + q]!;
        // The rotation angle that zeroes a[p][q] (Golub & Van Loan, Algorithm 8.4.1), smaller root for stability.
        const theta = (aqq - app) / (2 * apq);
        const t = Math.sign(theta || 1) / (Math.abs(theta) + Math.sqrt(theta * theta + 1));
        const c = 1 / Math.sqrt(t * t + 1);
        const s = t * c;
        for (let k = 0; k < n; k++) {
          const akp = a[k * n + p]!;
          const akq = a[k * n + q]!;
          a[k * n + p] = c * akp - s * akq;
          a[k * n + q] = s * akp + c * akq;
        }
        for (let k = 0; k < n; k++) {
          const apk = a[p * n + k]!;
          const aqk = a[q * n + k]!;
          a[p * n + k] = c * apk - s * aqk;
          a[q * n + k] = s * apk + c * aqk;
        }
        for (let k = 0; k < n; k++) {
          const vkp = v[k * n + p]!;
          const vkq = v[k * n + q]!;
          v[k * n + p] = c * vkp - s * vkq;
          v[k * n + q] = s * vkp + c * vkq;
        }
      }
    }
  }
  const values = new Float64Array(n);
  for (let i = 0; i < n; i++) values[i] = a[i * n + i]!;
  return { values, vectors: v };
}

/** The symmetric PSD square root V·diag(√max(λ,0))·Vᵀ (negative eigenvalues are rounding, clamped to 0). */
export function sqrtPsd(m: SymMatrix): SymMatrix {
  const n = m.n;
  const { values, vectors } = symmetricEigen(m);
  const out = new Float64Array(n * n);
  for (let k = 0; k < n; k++) {
    const s = Math.sqrt(Math.max(values[k]!, 0));
    if (s === 0) continue;
    for (let i = 0; i < n; i++) {
      const vik = vectors[i * n + k]! * s;
      if (vik === 0) continue;
      for (let j = 0; j < n; j++) out[i * n + j]! += vik * vectors[j * n + k]!;
    }
  }
  return { n, data: out };
}

function multiply(a: SymMatrix, b: SymMatrix): Float64Array {
  const n = a.n;
  const out = new Float64Array(n * n);
  for (let i = 0; i < n; i++) {
    for (let k = 0; k < n; k++) {
      const aik = a.data[i * n + k]!;
      if (aik === 0) continue;
      for (let j = 0; j < n; j++) out[i * n + j]! += aik * b.data[k * n + j]!;
    }
  }
  return out;
}

/** Tr((Σ1Σ2)^{1/2}) via the eigenvalues of the symmetric A·Σ2·A, A = Σ1^{1/2}. */
export function traceSqrtProduct(s1: SymMatrix, s2: SymMatrix): number {
  const a = sqrtPsd(s1);
  const m = multiply({ n: a.n, data: multiply(a, s2) }, a);
  // Symmetrize away the rounding of the two products.
  const n = a.n;
  for (let i = 0; i < n; i++) {
    for (let j = i + 1; j < n; j++) {
      const avg = (m[i * n + j]! + m[j * n + i]!) / 2;
      m[i * n + j] = avg;
      m[j * n + i] = avg;
    }
  }
  const { values } = symmetricEigen({ n, data: m });
  let tr = 0;
  for (const l of values) tr += Math.sqrt(Math.max(l, 0));
  return tr;
}

export interface Gaussian {
  mean: Float64Array;
  cov: SymMatrix;
}

export function frechetDistance(g1: Gaussian, g2: Gaussian): number {
  const n = g1.cov.n;
  if (g2.cov.n !== n || g1.mean.length !== n || g2.mean.length !== n) throw new RangeError('Gaussians of different dimensions');
  let d = 0;
  for (let i = 0; i < n; i++) d += (g1.mean[i]! - g2.mean[i]!) ** 2;
  for (let i = 0; i < n; i++) d += g1.cov.data[i * n + i]! + g2.cov.data[i * n + i]!;
  d -= 2 * traceSqrtProduct(g1.cov, g2.cov);
  // Rounding can leave −1e-12 for identical sets; a distance is never negative.
  return Math.max(d, 0);
}

/** FID between two feature sets ([count, size] row-major each). */
export function fid(a: ArrayLike<number>, countA: number, b: ArrayLike<number>, countB: number, size: number): number {
  return frechetDistance(meanAndCovariance(a, countA, size), meanAndCovariance(b, countB, size));
}
