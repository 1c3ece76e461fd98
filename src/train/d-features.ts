/**
 * `--q-features discriminator`: Q measured in the discriminator's own feature space, as the
 * original notebook did, instead of the fixed extractor's.
 *
 * φ_D(x) is D's penultimate layer (D_FEATURE_LAYER) on x mapped to [-1,1], L2-normalized per image
 * like qgate's φ (so distances compare patterns, not activation strength). Its reference set is
 * built with the same code and the same calibration as the shipped one (reference.ts:
 * buildReference): the features of `count` real training digits, k = 3, Norm_d bounds from the
 * median leave-one-out k-NN distance of the reals (lo) and the median k-NN distance of 1,000
 * seeded uniform-noise images (hi); the noise bounds are recomputed the same way and come out the
 * same, since they do not depend on φ.
 *
 * D changes while it trains, so its reference set goes stale: the trainer rebuilds it at the start
 * and after every epoch. Between rebuilds the penalty is measured against the features of the D
 * that was current at the last rebuild, and the reference features carry no gradient.
 */
import * as tf from '@tensorflow/tfjs';
import type { FeatureExtractor } from '../quality/extractor.ts';
import { createQuality, type Quality } from '../quality/index.ts';
import { buildReference, referenceFromBuilt } from '../quality/reference.ts';
import { D_FEATURE_LAYER, IMAGE_SHAPE } from './gan.ts';

export function discriminatorExtractor(d: tf.LayersModel): FeatureExtractor {
  const layer = d.getLayer(D_FEATURE_LAYER);
  const trunk = tf.model({ inputs: d.inputs, outputs: layer.output as tf.SymbolicTensor });
  const size = (trunk.outputs[0]!.shape.slice(1) as number[]).reduce((a, b) => a * b, 1);
  const input = { height: IMAGE_SHAPE[0], width: IMAGE_SHAPE[1], channels: 1 as const, range: [-1, 1] as [number, number] };
  return {
    id: 'gan-discriminator',
    manifest: { id: 'gan-discriminator', architecture: d.name, featureLayer: D_FEATURE_LAYER, input, postprocess: { l2Normalize: true } },
    input,
    featureSize: size,
    prepare: (images) => tf.tidy(() => images.mul(2).sub(1) as tf.Tensor4D),
    features: (images) => tf.tidy(() => {
      const f = (trunk.apply(images.mul(2).sub(1), { training: false }) as tf.Tensor).reshape([images.shape[0], size]) as tf.Tensor2D;
      return f.div(f.square().sum(1, true).add(1e-12).sqrt());
    }),
    // The trunk shares D's weights; disposing it would free D's variables.
    dispose: () => {},
  };
}

/**
 * A Quality whose φ is D's penultimate layer, with a reference set of `images` ([count,28,28,1]
 * in [0,1]) built and calibrated now. The caller disposes it (which leaves D alone).
 */
export function discriminatorQuality(d: tf.LayersModel, images: Float32Array, count: number, alpha: number, noiseEstimator: Quality['options']['noiseEstimator']): Quality {
  const extractor = discriminatorExtractor(d);
  const built = buildReference(extractor, images, IMAGE_SHAPE, count, { id: `gan-discriminator-${count}-k3`, k: 3, dataSpec: 'mnist:train' });
  return createQuality(extractor, referenceFromBuilt(built), { alpha, tau: 0.3, noiseEstimator });
}
