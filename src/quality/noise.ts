import * as tf from '@tensorflow/tfjs';

import { fusedKthSmallest } from '../backend/wasm-kernels.ts';
import { ErrorCodes, QgateError } from '../errors.ts';
import { constantOf } from './constant.ts';

/**
 * NoiseLevel: estimates of the standard deviation σ of additive noise, one value per image.
 *
 * Every estimator here is a pure function `(images: [B,H,W,C] in [0,1]) => [B]` that
 *  - is calibrated so that i.i.d. Gaussian noise of std σ (on a flat image) reads ≈ σ: all estimators
 *    are σ estimates in intensity units and can be compared with each other;
 *  - is differentiable w.r.t. the images (usable inside tf.grad, e.g. in a GAN loss): whatever is
 *    selected by a threshold or a rank (masks) is computed inside `constantOf`, which has a zero
 *    gradient, and then enters the estimate as a constant weight;
 *  - runs inside tf.tidy, so it leaks nothing but its result.
 *
 * Colour: every channel is estimated as a separate grey image and the per-channel σ are averaged.
 * (Converting to luminance first would change the scale: luminance noise of RGB noise σ has std
 * 0.66·σ, and it would hide chroma noise.)
 *
 * All estimators look at 3x3 (or 2x1) neighbourhoods with "valid" padding, so images must be at
 * least 3x3.
 */

export const NOISE_ESTIMATOR_NAMES = ['gradient', 'laplacian', 'immerkaer', 'structure'] as const;
export type NoiseEstimatorName = (typeof NOISE_ESTIMATOR_NAMES)[number];
export type NoiseEstimator = (images: tf.Tensor4D) => tf.Tensor1D;

const SQRT_PI = Math.sqrt(Math.PI);
const SQRT_HALF_PI = Math.sqrt(Math.PI / 2);

// ---------------------------------------------------------------------------------------------
// helpers

function assertImages(images: tf.Tensor): asserts images is tf.Tensor4D {
  if (images.rank !== 4) {
    throw new QgateError(
      ErrorCodes.INVALID_ARGUMENT,
      `noise estimators take a [B,H,W,C] tensor, got rank ${images.rank}`,
    );
  }
  const [, h, w, c] = images.shape as [number, number, number, number];
  if (h < 3 || w < 3 || c < 1) {
    throw new QgateError(
      ErrorCodes.INVALID_ARGUMENT,
      `noise estimators need images of at least 3x3 with a channel, got ${h}x${w}x${c}`,
    );
  }
}

/**
 * Runs a single-channel estimator on every channel and averages the per-channel σ. The channels
 * are moved into the batch: [B,H,W,C] -> [B*C,H,W,1] -> [B*C] -> [B,C] -> mean -> [B].
 */
function perChannel(images: tf.Tensor4D, grey: (x: tf.Tensor4D) => tf.Tensor1D): tf.Tensor1D {
  const [b, h, w, c] = images.shape;
  if (c === 1) return grey(images);
  const stacked = tf.reshape(tf.transpose(images, [0, 3, 1, 2]), [b * c, h, w, 1]) as tf.Tensor4D;
  return tf.mean(tf.reshape(grey(stacked), [b, c]), 1) as tf.Tensor1D;
}

/** Wraps an estimator: validates the input, splits channels, and tidies. */
function estimator(grey: (x: tf.Tensor4D) => tf.Tensor1D): NoiseEstimator {
  return (images: tf.Tensor4D): tf.Tensor1D => {
    assertImages(images);
    return tf.tidy(() => perChannel(tf.cast(images, 'float32') as tf.Tensor4D, grey));
  };
}

/** A [3,3,1,K] conv kernel from K 3x3 filters given as rows (y) of columns (x). */
function kernel(filters: readonly (readonly (readonly number[])[])[]): tf.Tensor4D {
  const data: number[] = [];
  for (let y = 0; y < 3; y++) {
    for (let x = 0; x < 3; x++) {
      for (const f of filters) data.push(f[y]?.[x] ?? 0);
    }
  }
  return tf.tensor4d(data, [3, 3, 1, filters.length]);
}

/** The outer product a(y)·b(x) of two 1-D 3-tap filters, scaled to unit L2 norm. */
function separable(a: readonly number[], b: readonly number[]): number[][] {
  const norm = Math.hypot(...a) * Math.hypot(...b);
  return a.map((ay) => b.map((bx) => (ay * bx) / norm));
}


/**
 * sqrt whose gradient is finite at 0 (the plain op gives ∞·0 = NaN for a constant image):
 * d/dx sqrt(x) is taken as 1/(2·sqrt(max(x, 1e-12))).
 */
const safeSqrt = tf.customGrad((x: tf.Tensor | tf.GradSaveFunc, save: tf.Tensor | tf.GradSaveFunc) => {
  const input = x as tf.Tensor;
  const value = tf.sqrt(input);
  (save as tf.GradSaveFunc)([input]);
  return {
    value,
    gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) =>
      tf.div(dy, tf.mul(2, tf.sqrt(tf.maximum(saved[0] as tf.Tensor, 1e-12)))),
  };
});

/** Mean over all axes but the batch axis: [B,...] -> [B]. */
function meanPerImage(x: tf.Tensor): tf.Tensor1D {
  return tf.mean(tf.reshape(x, [x.shape[0] as number, -1]), 1) as tf.Tensor1D;
}

// ---------------------------------------------------------------------------------------------
// 3x3 filters

/** 1-D 3-tap bases: smoothing s, first difference o (odd), second difference d (even). */
const S = [1, 1, 1] as const;
const O = [-1, 0, 1] as const;
const D = [1, -2, 1] as const;

/** Laplacian L; ‖L‖² = 20, so for i.i.d. noise E[(I∗L)²] = 20σ². */
const LAPLACIAN = [
  [0, 1, 0],
  [1, -4, 1],
  [0, 1, 0],
];

/**
 * Immerkær's mask N = d⊗d = [[1,-2,1],[-2,4,-2],[1,-2,1]]; ‖N‖² = 36, so for i.i.d. Gaussian noise
 * I∗N ~ 𝒩(0, 36σ²) and E|I∗N| = 6σ·√(2/π), i.e. σ = √(π/2)/6 · E|I∗N|.
 */
const IMMERKAER = [
  [1, -2, 1],
  [-2, 4, -2],
  [1, -2, 1],
];

/**
 * The other seven of the nine separable products of {s, o, d}, each scaled to unit norm: the
 * structure (derivative) detectors of the `structure` estimator. The nine products form an
 * orthogonal basis of 3x3 patches, so on i.i.d. Gaussian noise the nine responses at one pixel are
 * independent 𝒩(0, σ²) variables. s⊗s (the local mean) is left out: brightness is not structure.
 */
const STRUCTURE_FILTERS = [
  separable(S, O), // ∂/∂x (Prewitt)
  separable(O, S), // ∂/∂y
  separable(S, D), // ∂²/∂x²
  separable(D, S), // ∂²/∂y²
  separable(O, O), // ∂²/∂x∂y
  separable(D, O), // ∂³/∂x∂y²
  separable(O, D), // ∂³/∂x²∂y
];

function conv(x: tf.Tensor4D, filters: readonly (readonly (readonly number[])[])[]): tf.Tensor4D {
  return tf.conv2d(x, kernel(filters), 1, 'valid');
}

// ---------------------------------------------------------------------------------------------
// estimators

/**
 * Mean absolute horizontal plus vertical neighbour difference. For i.i.d. 𝒩(0,σ²) pixels
 * x_i − x_j ~ 𝒩(0, 2σ²), so E|x_i − x_j| = 2σ/√π per direction and the sum is 4σ/√π:
 * σ = (√π/4)·(mean|Δx| + mean|Δy|).
 */
function gradientGrey(x: tf.Tensor4D): tf.Tensor1D {
  // Neighbour differences as "valid" convolutions with [-1, 1] (much faster to differentiate than
  // slices on the cpu backend).
  const dx = tf.conv2d(x, tf.tensor4d([-1, 1], [1, 2, 1, 1]), 1, 'valid');
  const dy = tf.conv2d(x, tf.tensor4d([-1, 1], [2, 1, 1, 1]), 1, 'valid');
  const sum = tf.add(meanPerImage(tf.abs(dx)), meanPerImage(tf.abs(dy)));
  return tf.mul(sum, SQRT_PI / 4) as tf.Tensor1D;
}

/** Laplacian energy: σ = sqrt(mean((I∗L)²)/20), ‖L‖² = 20. */
function laplacianGrey(x: tf.Tensor4D): tf.Tensor1D {
  const energy = meanPerImage(tf.square(conv(x, [LAPLACIAN])));
  return safeSqrt(tf.div(energy, 20)) as tf.Tensor1D;
}

/** Immerkær (1996): σ = √(π/2) · 1/(6(W−2)(H−2)) · Σ|I∗N| over the valid region. */
function immerkaerGrey(x: tf.Tensor4D): tf.Tensor1D {
  return tf.mul(meanPerImage(tf.abs(conv(x, [IMMERKAER]))), SQRT_HALF_PI / 6) as tf.Tensor1D;
}

/**
 * Stage 1 of `structure` keeps the pixels whose structure energy is at most the per-image
 * FLAT_FRACTION quantile (the flattest quarter). It only sets the scale for stage 2.
 */
export const STRUCTURE_FLAT_FRACTION = 0.25;

/**
 * Stage 2 keeps the pixels whose structure energy E = Σ₇ r_k² is plausible for pure noise of the
 * stage-1 σ: E ≤ q·σ₀² with q the 0.99 quantile of χ² with 7 degrees of freedom (on pure noise
 * E/σ² ~ χ²₇, so 99% of a pure-noise image is kept).
 */
export const STRUCTURE_CHI2_7_Q99 = 18.475;

/** How many times stage 2 is repeated, each time with the σ of the previous pass. */
export const STRUCTURE_ITERATIONS = 2;

/**
 * 1 where x ≤ threshold (broadcast), else 0, as float32. Written as 1 − step(x − threshold) because
 * a broadcasting LessEqual is an order of magnitude slower than Sub + Step on the wasm backend
 * (and tiling the threshold to full size is slower still).
 */
function atMost(x: tf.Tensor, threshold: tf.Tensor): tf.Tensor {
  return tf.sub(1, tf.step(tf.sub(x, threshold), 0));
}

/**
 * The k-th smallest value of each row of x [B, n], as [B, 1]: the last of the top k of −x, sorted
 * (on wasm one compiled selection per row gives the same value, wasm-kernels.ts
 * fusedKthSmallest). Sorted matters: with sorted = false TF.js's wasm TopK returns the k values in
 * no particular order, and the last of them was not the k-th in 11 rows of 64 (676 values,
 * k = 169), which made `structure`'s stage-1 threshold lower than its flattest quarter for those
 * images.
 */
export function kthSmallest(x: tf.Tensor2D, k: number): tf.Tensor2D {
  return tf.tidy(() => {
    const fused = fusedKthSmallest(x, k);
    if (fused) return fused;
    const { values } = tf.topk(tf.neg(x), k, true);
    return tf.neg(tf.slice(values, [0, k - 1], [-1, 1]));
  });
}

/**
 * The masks of `structure` (see `structureGrey`), computed from a frozen copy of the images.
 * Returns a [B, H−2, W−2, 1] float 0/1 mask.
 */
function structureMask(x: tf.Tensor4D): tf.Tensor4D {
  const [b] = x.shape;
  const energy = tf.sum(tf.square(conv(x, STRUCTURE_FILTERS)), 3, true); // [B,h,w,1]
  const absN = tf.abs(conv(x, [IMMERKAER])); // 6·|r_N|
  const flatEnergy = tf.reshape(energy, [b, -1]);
  const pixels = flatEnergy.shape[1] as number;
  const k = Math.max(1, Math.ceil(STRUCTURE_FLAT_FRACTION * pixels));
  const quantile = kthSmallest(flatEnergy as tf.Tensor2D, k).reshape([b, 1, 1, 1]);
  let mask = atMost(energy, quantile);
  for (let i = 0; i < STRUCTURE_ITERATIONS; i++) {
    const count = tf.maximum(tf.sum(mask, [1, 2, 3], true), 1);
    const sigma = tf.mul(tf.div(tf.sum(tf.mul(absN, mask), [1, 2, 3], true), count), SQRT_HALF_PI / 6);
    mask = atMost(energy, tf.mul(tf.square(sigma), STRUCTURE_CHI2_7_Q99));
  }
  return mask as tf.Tensor4D;
}

/**
 * Structure-aware Immerkær: Immerkær's estimate averaged only over pixels where no image structure
 * is visible, in the spirit of Tai & Yang (2008), who exclude Sobel edge pixels.
 *
 * Why it is unbiased on noise: the nine separable 3x3 filters {s,o,d}⊗{s,o,d} are mutually
 * orthogonal, and N = d⊗d is one of them. On i.i.d. Gaussian noise the response r_N = (I∗N)/6 at a
 * pixel is therefore independent of the seven structure responses (gradient, Hessian and
 * third-order terms, see STRUCTURE_FILTERS) at the same pixel, so selecting pixels by any function
 * of those seven responses leaves the distribution of r_N untouched and Immerkær's constant √(π/2)/6
 * stays exact: there is no trimming correction to fit. (Sobel = (4/3)·s⊗o − (1/3)·d⊗o lies in that
 * span, which is why Tai & Yang's Sobel mask works; the Hessian terms add what Sobel misses: the
 * centre line of a thin stroke, where the gradient vanishes but N responds strongly. On the MNIST
 * benchmark a gradient-only mask leaves a bias of +2% at σ=0.05 and σ=0.1, the full mask +0.3%.)
 *
 * Why it removes structure: edges, ridges and corners have large first/second derivatives, so their
 * structure energy E is far above what noise of the current σ can produce (E/σ² ~ χ²₇).
 *  - stage 1: the flattest STRUCTURE_FLAT_FRACTION of the pixels by E gives σ₀ (a rank selection,
 *    so it needs no scale);
 *  - stage 2 (STRUCTURE_ITERATIONS times): keep pixels with E ≤ χ²₇(0.99)·σ², re-estimate σ.
 * A flat image with noise keeps ~99% of its pixels (about Immerkær's variance); a clean image
 * keeps only its exactly flat pixels and reads 0.
 *
 * The masks are computed from a frozen copy and enter as constants: the estimate is
 * √(π/2)/6 · Σ m·|I∗N| / Σ m, differentiable in the images.
 *
 * The three constants are not tuned: the only scale constant is Immerkær's √(π/2)/6, and on
 * bench/noise.ts (seed 7, a seed the defaults were not chosen on) every combination of flat
 * fraction 0.1/0.25/0.5, χ²₇ quantile 0.90/0.95/0.99/0.999 and 1–3 iterations gives MAE
 * 0.0053–0.0058 and the same Spearman. What remains of the error is the per-image sampling spread
 * of Immerkær's statistic (≈5.5% of σ on a 28x28 image), not bias.
 */
function structureGrey(x: tf.Tensor4D): tf.Tensor1D {
  const mask = constantOf(x, (frozen) => structureMask(frozen as tf.Tensor4D));
  const absN = tf.abs(conv(x, [IMMERKAER]));
  const count = tf.maximum(tf.sum(mask, [1, 2, 3]), 1);
  const sum = tf.sum(tf.mul(absN, mask), [1, 2, 3]);
  return tf.mul(tf.div(sum, count), SQRT_HALF_PI / 6) as tf.Tensor1D;
}

export const gradientNoise: NoiseEstimator = estimator(gradientGrey);
export const laplacianNoise: NoiseEstimator = estimator(laplacianGrey);
export const immerkaerNoise: NoiseEstimator = estimator(immerkaerGrey);
export const structureNoise: NoiseEstimator = estimator(structureGrey);

export const noiseEstimators: Record<NoiseEstimatorName, NoiseEstimator> = {
  gradient: gradientNoise,
  laplacian: laplacianNoise,
  immerkaer: immerkaerNoise,
  structure: structureNoise,
};

export const DEFAULT_NOISE_ESTIMATOR: NoiseEstimatorName = 'structure';

/** The estimator called `name`; throws NOT_FOUND for an unknown name. */
export function getNoiseEstimator(name: string): NoiseEstimator {
  if (!(NOISE_ESTIMATOR_NAMES as readonly string[]).includes(name)) {
    throw new QgateError(
      ErrorCodes.NOT_FOUND,
      `unknown noise estimator "${name}"; known: ${NOISE_ESTIMATOR_NAMES.join(', ')}`,
    );
  }
  return noiseEstimators[name as NoiseEstimatorName];
}

/** σ of the noise in each image with the default estimator. */
export function estimateNoise(images: tf.Tensor4D): tf.Tensor1D {
  return noiseEstimators[DEFAULT_NOISE_ESTIMATOR](images);
}
