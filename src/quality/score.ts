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
import { constantOf } from './constant.ts';

export interface NormBounds {
  /** Maps to 0. */
  lo: number;
  /** Maps to 1. */
  hi: number;
}

/** The reference features in the layout the distance computation wants. */
export interface ReferenceTensors {
  /** [D, R]: stored transposed so f·rᵀ is one untransposed matmul (the fast path on wasm). */
  featuresT: tf.Tensor2D;
  /** [R]: ‖r‖² for each reference feature. */
  normsSq: tf.Tensor1D;
  /** [R]: each reference feature's distance to its own k-th nearest neighbour (realism radii). */
  radii: tf.Tensor1D;
  /** [R]: 1 for the references used by the realism score (radius ≤ the median radius), else 0. */
  realismMask: tf.Tensor1D;
  k: number;
}

/** Squared Euclidean distances [B, R] from features [B, D] to every reference feature. */
export function squaredDistances(features: tf.Tensor2D, ref: ReferenceTensors): tf.Tensor2D {
  return tf.tidy(() => {
    const fNormSq = features.square().sum(1, true);
    const cross = tf.matMul(features, ref.featuresT);
    // ‖f‖² + ‖r‖² − 2f·r can round below zero for near-duplicates; distances are never negative.
    return tf.relu(fNormSq.add(ref.normsSq).sub(cross.mul(2))) as tf.Tensor2D;
  });
}

/**
 * D_r: the distance to the k-th nearest reference feature, per image [B]. The neighbour is chosen
 * by rank (no gradient), then its distance is read through a one-hot mask, so the result is
 * differentiable in the features.
 */
export function kthNearestDistance(features: tf.Tensor2D, ref: ReferenceTensors): tf.Tensor1D {
  return tf.tidy(() => kthFromSquared(squaredDistances(features, ref), ref.k));
}

function kthFromSquared(d2: tf.Tensor2D, k: number): tf.Tensor1D {
  return tf.tidy(() => {
    // TopK has no gradient in TF.js; the choice is a constant of the distance anyway.
    const pick = constantOf(d2, (frozen) => {
      const { indices } = tf.topk(frozen.neg(), k, true);
      return tf.oneHot(indices.slice([0, k - 1], [-1, 1]).reshape([-1]) as tf.Tensor1D, frozen.shape[1]!).toFloat();
    });
    // sqrt has an infinite slope at 0; the epsilon keeps gradients finite for exact duplicates.
    return d2.mul(pick).sum(1).add(1e-12).sqrt() as tf.Tensor1D;
  });
}

/**
 * The realism score of Kynkäänniemi et al. (2019), per image [B]:
 *   max over reference features r of  ‖r − NN_k(r)‖ / ‖φ(I) − r‖.
 * Above 1 means φ(I) lies inside at least one reference k-NN ball. As the paper recommends, only
 * the half of the references with the smallest radii take part, so that a few outliers with huge
 * balls do not call everything realistic.
 */
export function realismScore(features: tf.Tensor2D, ref: ReferenceTensors): tf.Tensor1D {
  return tf.tidy(() => realismFromSquared(squaredDistances(features, ref), ref));
}

function realismFromSquared(d2: tf.Tensor2D, ref: ReferenceTensors): tf.Tensor1D {
  return tf.tidy(() => ref.radii.div(d2.add(1e-12).sqrt()).mul(ref.realismMask).max(1) as tf.Tensor1D);
}

/** D_r and the realism score from one distance matrix: what scoring needs, at the cost of one matmul. */
export function distanceAndRealism(features: tf.Tensor2D, ref: ReferenceTensors): { distance: tf.Tensor1D; realism: tf.Tensor1D } {
  return tf.tidy(() => {
    const d2 = squaredDistances(features, ref);
    return { distance: kthFromSquared(d2, ref.k), realism: realismFromSquared(d2, ref) };
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
