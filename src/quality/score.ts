/**
 * The pure tensor functions behind Q(I). No I/O, no state: the same inputs give the same Q in any
 * process, which is what makes a gate decision reproducible.
 *
 *   Q(I) = α·Norm_n(NoiseLevel(I)) + β·Norm_d(D_r(I)),   α + β = 1
 *
 * D_r is the distance from φ(I) to its k-th nearest reference feature; Norm_* are linear maps
 * whose bounds were calibrated when the reference set was built (see reference.ts).
 */
import * as tf from '@tensorflow/tfjs';
import { fusedNearestAndRealism } from '../backend/wasm-kernels.ts';
import { constantOf } from './constant.ts';

export interface NormBounds {
  /** Maps to 0. */
  lo: number;
  /** Maps to 1. */
  hi: number;
}

/** The reference features in the layout the distance computation wants. */
export interface ReferenceTensors {
  /** [R, D]: the reference features, one per row, so a neighbour is one contiguous row to gather. */
  features: tf.Tensor2D;
  /** [D, R]: the same transposed, so f·rᵀ is one untransposed matmul (the fast path on wasm). */
  featuresT: tf.Tensor2D;
  /** [R]: ‖r‖² for each reference feature. */
  normsSq: tf.Tensor1D;
  /** [R]: each reference feature's distance to its own k-th nearest neighbour (realism radii). */
  radii: tf.Tensor1D;
  /** [R]: 1 for the references used by the realism score (radius ≤ the median radius), else 0. */
  realismMask: tf.Tensor1D;
  k: number;
}

/** The epsilon under the realism score's square root. */
const REALISM_EPSILON = 1e-12;

/** ‖f‖² [B, 1] and the products f·rᵀ [B, R]: what every distance to the references is made of. */
function products(features: tf.Tensor2D, ref: ReferenceTensors): { fNormSq: tf.Tensor2D; cross: tf.Tensor2D } {
  return { fNormSq: features.square().sum(1, true) as tf.Tensor2D, cross: tf.matMul(features, ref.featuresT) };
}

/** relu(‖f‖² + ‖r‖² − 2f·r): ‖f‖² + ‖r‖² − 2f·r can round below zero for near-duplicates. */
function fromProducts(fNormSq: tf.Tensor2D, cross: tf.Tensor2D, ref: ReferenceTensors): tf.Tensor2D {
  return tf.relu(fNormSq.add(ref.normsSq).sub(cross.mul(2))) as tf.Tensor2D;
}

/** Squared Euclidean distances [B, R] from features [B, D] to every reference feature. */
export function squaredDistances(features: tf.Tensor2D, ref: ReferenceTensors): tf.Tensor2D {
  return tf.tidy(() => {
    const { fNormSq, cross } = products(features, ref);
    return fromProducts(fNormSq, cross, ref);
  });
}

/**
 * Each row's k-th nearest reference index [B] and realism score [B]. On wasm one compiled pass
 * after the matmul computes both (wasm-kernels.ts fusedNearestAndRealism); elsewhere, and for
 * inputs it declines, TF.js's ops compute the same values from the [B, R] distance matrix.
 */
function nearestAndRealism(features: tf.Tensor2D, ref: ReferenceTensors): { kth: tf.Tensor1D; realism: tf.Tensor1D } {
  return tf.tidy(() => {
    const { fNormSq, cross } = products(features, ref);
    const fused = fusedNearestAndRealism(cross, fNormSq, ref.normsSq, ref.radii, ref.realismMask, ref.k, REALISM_EPSILON);
    if (fused) return fused;
    const d2 = fromProducts(fNormSq, cross, ref);
    return { kth: kthIndex(d2, ref), realism: realismFromSquared(d2, ref) };
  });
}

/**
 * The distance from each feature row to its k-th nearest reference feature. Which reference is the
 * k-th nearest is a constant of the estimate (TopK has no gradient anyway); the distance is then
 * measured directly to that one reference. So the gradient, (f − r)/‖f − r‖, lives on [B, D] only:
 * it no longer flows back through the whole [B, R] distance matrix, which made the Q term most of
 * a generator step's cost (docs/BENCHMARKS.md).
 */
export function kthNearestDistance(features: tf.Tensor2D, ref: ReferenceTensors): tf.Tensor1D {
  return tf.tidy(() => {
    const neighbours = constantOf(features, (f) => tf.tidy(() => {
      const { kth, realism } = nearestAndRealism(f as tf.Tensor2D, ref);
      realism.dispose();
      return neighbourRows(kth, ref);
    }));
    return distanceTo(features, neighbours);
  });
}

/** The index of each row's k-th smallest squared distance in d2 [B, R] (ties to the lower index). */
function kthIndex(d2: tf.Tensor2D, ref: ReferenceTensors): tf.Tensor1D {
  return tf.tidy(() => {
    const { indices } = tf.topk(d2.neg(), ref.k, true);
    return indices.slice([0, ref.k - 1], [-1, 1]).reshape([-1]) as tf.Tensor1D;
  });
}

/** The reference features [B, D] at the given indices. */
function neighbourRows(kth: tf.Tensor1D, ref: ReferenceTensors): tf.Tensor2D {
  // Rows of [R, D]: gathering columns of [D, R] and transposing cost 1.2 ms per batch of 64.
  return tf.gather(ref.features, kth, 0) as tf.Tensor2D;
}

/** Row-wise Euclidean distance; the epsilon keeps sqrt's gradient finite for exact duplicates. */
function distanceTo(a: tf.Tensor2D, b: tf.Tensor2D): tf.Tensor1D {
  return tf.tidy(() => a.sub(b).square().sum(1).add(1e-12).sqrt() as tf.Tensor1D);
}

export function realismScore(features: tf.Tensor2D, ref: ReferenceTensors): tf.Tensor1D {
  return tf.tidy(() => realismFromSquared(squaredDistances(features, ref), ref));
}

function realismFromSquared(d2: tf.Tensor2D, ref: ReferenceTensors): tf.Tensor1D {
  return tf.tidy(() => ref.radii.div(d2.add(REALISM_EPSILON).sqrt()).mul(ref.realismMask).max(1) as tf.Tensor1D);
}

/** D_r and the realism score from one distance computation: what scoring needs, at the cost of one matmul. */
export function distanceAndRealism(features: tf.Tensor2D, ref: ReferenceTensors): { distance: tf.Tensor1D; realism: tf.Tensor1D } {
  return tf.tidy(() => {
    const { kth, realism } = nearestAndRealism(features, ref);
    return { distance: distanceTo(features, neighbourRows(kth, ref)), realism };
  });
}

/** The linear map of `x` to [0,1] given the calibrated bounds, clamped: what scoring uses. */
export function normalize(x: tf.Tensor1D, b: NormBounds): tf.Tensor1D {
  return tf.tidy(() => x.sub(b.lo).div(b.hi - b.lo).clipByValue(0, 1) as tf.Tensor1D);
}

/**
 * A smooth version of `normalize` for training: softplus(s·u)/s − softplus(s·(u−1))/s with
 * u = (x − lo)/(hi − lo). It equals the clamped map to within ln2/s at the edges and has a nonzero
 * slope everywhere, so a generator sitting past either bound still gets a gradient.
 */
export function softNormalize(x: tf.Tensor1D, b: NormBounds, sharpness = 10): tf.Tensor1D {
  return tf.tidy(() => {
    const u = x.sub(b.lo).div(b.hi - b.lo);
    return tf.softplus(u.mul(sharpness)).sub(tf.softplus(u.sub(1).mul(sharpness))).div(sharpness) as tf.Tensor1D;
  });
}

/** α·noiseNorm + β·distanceNorm. */
export function combine(noiseNorm: tf.Tensor1D, distanceNorm: tf.Tensor1D, alpha: number, beta: number): tf.Tensor1D {
  return tf.tidy(() => noiseNorm.mul(alpha).add(distanceNorm.mul(beta)) as tf.Tensor1D);
}
