/**
 * The quality module: one object that the server scores with and the trainer regularizes with.
 * It owns an extractor and a reference set and applies the pure functions of score.ts and noise.ts.
 */
import * as tf from '@tensorflow/tfjs';
import type { Config } from '../config.ts';
import { QgateError } from '../errors.ts';
import { loadExtractor, type FeatureExtractor } from './extractor.ts';
import { getNoiseEstimator, type NoiseEstimatorName } from './noise.ts';
import { loadReference, type ReferenceSet } from './reference.ts';
import { combine, distanceAndRealism, kthNearestDistance, normalize, softNormalize, type NormBounds } from './score.ts';

export interface QualityOptions {
  /** Weight of the noise term; the distance term gets β = 1 − α. */
  alpha: number;
  /** The gate: an image passes when Q < τ. */
  tau: number;
  noiseEstimator: NoiseEstimatorName;
}

export interface ImageScore {
  q: number;
  pass: boolean;
  noise: number;
  noiseNorm: number;
  distance: number;
  distanceNorm: number;
  realism: number;
}

// A type alias, not an interface: tf.tidy needs the implicit index signature to return it.
export type QualityTensors = {
  q: tf.Tensor1D;
  noise: tf.Tensor1D;
  noiseNorm: tf.Tensor1D;
  distance: tf.Tensor1D;
  distanceNorm: tf.Tensor1D;
};

export interface Quality {
  readonly extractor: FeatureExtractor;
  readonly reference: ReferenceSet;
  readonly options: Readonly<QualityOptions>;
  readonly noiseBounds: NormBounds;
  readonly distanceBounds: NormBounds;
  /** Scores a batch [B,H,W,C] in [0,1]. `tau` overrides the configured gate for this call. */
  score(images: tf.Tensor4D, tau?: number): Promise<ImageScore[]>;
  /**
   * Q and its parts as tensors, differentiable in the images. `smooth` uses the soft Norm (for
   * gradients); otherwise Norm is clamped to [0,1] exactly as `score` reports it.
   */
  components(images: tf.Tensor4D, smooth?: boolean): QualityTensors;
  /** Mean smooth Q over the batch: the regularizer the trainer adds as λ·Q(G(z)). */
  loss(images: tf.Tensor4D): tf.Scalar;
  dispose(): void;
}

/** Checks that options are usable; trusted everywhere after this. */
export function validateOptions(o: QualityOptions): void {
  if (!(o.alpha >= 0 && o.alpha <= 1)) throw new QgateError('INVALID_ARGUMENT', `alpha must be in [0,1], got ${o.alpha}`);
  validateTau(o.tau);
  getNoiseEstimator(o.noiseEstimator);
}

export function validateTau(tau: number): void {
  if (!(Number.isFinite(tau) && tau > 0 && tau <= 1)) throw new QgateError('INVALID_ARGUMENT', `tau must satisfy 0 < τ ≤ 1, got ${tau}`);
}

/** Images scored per model call inside `score`. */
const SCORE_CHUNK = 256;

export function createQuality(extractor: FeatureExtractor, reference: ReferenceSet, options: QualityOptions): Quality {
  validateOptions(options);
  const m = reference.manifest;
  if (m.extractor.id !== extractor.id || m.featureSize !== extractor.featureSize) {
    throw new QgateError('MODEL_INVALID',
      `reference set '${m.id}' was built with extractor '${m.extractor.id}' (${m.featureSize} features), not '${extractor.id}' (${extractor.featureSize}); rebuild it with npm run reference`);
  }
  const estimate = getNoiseEstimator(options.noiseEstimator);
  const noiseBounds = m.calibration.noise[options.noiseEstimator];
  const distanceBounds = m.calibration.distance;
  const { alpha } = options;
  const beta = 1 - alpha;

  function checkImages(images: tf.Tensor): asserts images is tf.Tensor4D {
    if (images.rank !== 4 || images.shape[0] === 0) {
      throw new QgateError('INVALID_ARGUMENT', `images must be a non-empty [B,H,W,C] batch, got shape [${images.shape.join(', ')}]`);
    }
  }

  /** Assembles Q from its raw parts; `smooth` picks the soft Norm. */
  const assemble = (noise: tf.Tensor1D, distance: tf.Tensor1D, smooth: boolean): QualityTensors => {
    const norm = smooth ? softNormalize : normalize;
    const noiseNorm = norm(noise, noiseBounds);
    const distanceNorm = norm(distance, distanceBounds);
    return { q: combine(noiseNorm, distanceNorm, alpha, beta), noise, noiseNorm, distance, distanceNorm };
  };

  const components = (images: tf.Tensor4D, smooth = false): QualityTensors => tf.tidy(() => {
    checkImages(images);
    return assemble(estimate(images), kthNearestDistance(extractor.features(images), reference.tensors), smooth);
  });

  return {
    extractor,
    reference,
    options: Object.freeze({ ...options }),
    noiseBounds,
    distanceBounds,
    components,
    loss: (images) => tf.tidy(() => components(images, true).q.mean() as tf.Scalar),
    async score(images, tau = options.tau) {
      validateTau(tau);
      checkImages(images);
      const out: ImageScore[] = [];
      // Chunked so the [batch, references] distance matrix stays bounded (256 × 10,000 floats).
      for (let start = 0; start < images.shape[0]; start += SCORE_CHUNK) {
        const parts = tf.tidy(() => {
          const chunk = images.shape[0] <= SCORE_CHUNK ? images
            : images.slice([start, 0, 0, 0], [Math.min(SCORE_CHUNK, images.shape[0] - start), -1, -1, -1]);
          const { distance, realism } = distanceAndRealism(extractor.features(chunk), reference.tensors);
          const c = assemble(estimate(chunk), distance, false);
          return [c.q, c.noise, c.noiseNorm, c.distance, c.distanceNorm, realism];
        });
        const [q, noise, noiseNorm, distance, distanceNorm, realism] = await Promise.all(parts.map((t) => t.data()));
        tf.dispose(parts);
        for (let i = 0; i < q!.length; i++) {
          out.push({
            q: q![i]!,
            pass: q![i]! < tau,
            noise: noise![i]!,
            noiseNorm: noiseNorm![i]!,
            distance: distance![i]!,
            distanceNorm: distanceNorm![i]!,
            realism: realism![i]!,
          });
        }
      }
      return out;
    },
    dispose() {
      extractor.dispose();
      reference.dispose();
    },
  };
}

/** Loads the configured extractor and reference set: the composition used by the CLI and the service. */
export async function loadQuality(config: Pick<Config, 'extractorDir' | 'featureLayer' | 'referenceDir' | 'alpha' | 'tau' | 'noiseEstimator'>): Promise<Quality> {
  const extractor = await loadExtractor(config.extractorDir, config.featureLayer ? { featureLayer: config.featureLayer } : {});
  let reference: ReferenceSet | undefined;
  try {
    reference = await loadReference(config.referenceDir);
    return createQuality(extractor, reference, { alpha: config.alpha, tau: config.tau, noiseEstimator: config.noiseEstimator });
  } catch (e) {
    extractor.dispose();
    reference?.dispose();
    throw e;
  }
}
