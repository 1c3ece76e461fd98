/**
 * The quality-regularized GAN: model builders, losses and one-step training functions. Nothing here
 * loops or touches files, so tests import a step without starting a run (tfjs-examples mnist-acgan).
 *
 *   L_D = BCE(D(x), 1) + BCE(D(G(z)), 0)
 *   L_G = BCE(D(G(z)), 1) + λ·Q(G(z))        (non-saturating GAN loss plus the quality penalty)
 *   Q   = α·Norm_n(noise) + β·Norm_d(distance), mean over the batch, smooth Norm (src/quality)
 *
 * G outputs tanh values in [-1,1]; Q and the extractor take images in [0,1], so Q sees (x+1)/2.
 */
import * as tf from '@tensorflow/tfjs';
import { QgateAdamOptimizer } from '../backend/adam.ts';
import { sigmoidCrossEntropy } from '../backend/fused-loss.ts';
import { QgateError } from '../errors.ts';
import type { Quality } from '../quality/index.ts';

export const ARCHITECTURES = ['mlp', 'dcgan'] as const;
export type Architecture = (typeof ARCHITECTURES)[number];
export const IMAGE_SHAPE: [number, number, number] = [28, 28, 1];
/** The discriminator layer whose output is φ for `--q-features discriminator`. */
export const D_FEATURE_LAYER = 'd_features';

export const ARCHITECTURE_TEXT: Record<Architecture, { generator: string; discriminator: string }> = {
  mlp: {
    generator: 'MLP GAN generator: z > dense(128, relu) > dense(784, tanh) > reshape [28,28,1]',
    discriminator: 'flatten > dense(128) > LeakyReLU(0.2) [d_features] > dense(1) logit',
  },
  dcgan: {
    generator: 'DCGAN generator: z > dense(7·7·64) > batchNorm > relu > reshape [7,7,64] > conv2dTranspose(32, 4×4, stride 2) > batchNorm > relu > conv2dTranspose(1, 4×4, stride 2, tanh) [28,28,1]',
    discriminator: 'conv2d(32, 4×4, stride 2) > LeakyReLU(0.2) > conv2d(64, 4×4, stride 2) > LeakyReLU(0.2) > flatten [d_features, 3136] > dense(1) logit',
  },
};

function checkArgs(arch: string, latentSize: number, seed: number): asserts arch is Architecture {
  tf.util.assert((ARCHITECTURES as readonly string[]).includes(arch), () => `arch must be one of ${ARCHITECTURES.join('|')}, got '${arch}'`);
  tf.util.assert(latentSize > 0 && Number.isInteger(latentSize), () => `latentSize must be a positive integer, got ${latentSize}`);
  tf.util.assert(Number.isInteger(seed), () => `seed must be an integer, got ${seed}`);
}

/** Seeded initializers: every layer gets its own seed derived from the run's, so the same seed gives the same weights. */
function initializers(seed: number) {
  let n = 0;
  return () => tf.initializers.glorotUniform({ seed: seed * 1000 + ++n });
}

/** G: z [B, latentSize] → images [B, 28, 28, 1] in [-1, 1] (tanh). */
export function buildGenerator(arch: Architecture, latentSize: number, seed: number): tf.Sequential {
  checkArgs(arch, latentSize, seed);
  const init = initializers(seed);
  if (arch === 'mlp') {
    return tf.sequential({
      name: 'generator',
      layers: [
        tf.layers.dense({ inputShape: [latentSize], units: 128, activation: 'relu', kernelInitializer: init(), name: 'g_dense1' }),
        tf.layers.dense({ units: 784, activation: 'tanh', kernelInitializer: init(), name: 'g_dense2' }),
        tf.layers.reshape({ targetShape: IMAGE_SHAPE, name: 'g_image' }),
      ],
    });
  }
  return tf.sequential({
    name: 'generator',
    layers: [
      // Batch norm after each hidden layer of G, as in DCGAN (Radford et al. 2015): without it G
      // learned strokes but not digits in 2,800 steps (dcgan-q/0002, precision 0.07). D has none, so
      // a G step leaves every D weight, moving statistics included, exactly as it was.
      tf.layers.dense({ inputShape: [latentSize], units: 7 * 7 * 64, useBias: false, kernelInitializer: init(), name: 'g_dense' }),
      tf.layers.batchNormalization({ momentum: 0.9, name: 'g_bn1' }),
      tf.layers.reLU({ name: 'g_relu1' }),
      tf.layers.reshape({ targetShape: [7, 7, 64], name: 'g_reshape' }),
      tf.layers.conv2dTranspose({ filters: 32, kernelSize: 4, strides: 2, padding: 'same', useBias: false, kernelInitializer: init(), name: 'g_deconv1' }),
      tf.layers.batchNormalization({ momentum: 0.9, name: 'g_bn2' }),
      tf.layers.reLU({ name: 'g_relu2' }),
      tf.layers.conv2dTranspose({ filters: 1, kernelSize: 4, strides: 2, padding: 'same', activation: 'tanh', kernelInitializer: init(), name: 'g_image' }),
    ],
  });
}

/** D: images [B, 28, 28, 1] in [-1, 1] → logits [B, 1]. Its penultimate layer is named D_FEATURE_LAYER. */
export function buildDiscriminator(arch: Architecture, seed: number): tf.Sequential {
  checkArgs(arch, 1, seed);
  const init = initializers(seed + 7919);
  if (arch === 'mlp') {
    return tf.sequential({
      name: 'discriminator',
      layers: [
        tf.layers.flatten({ inputShape: IMAGE_SHAPE, name: 'd_flatten' }),
        tf.layers.dense({ units: 128, kernelInitializer: init(), name: 'd_dense1' }),
        tf.layers.leakyReLU({ alpha: 0.2, name: D_FEATURE_LAYER }),
        tf.layers.dense({ units: 1, kernelInitializer: init(), name: 'd_logit' }),
      ],
    });
  }
  return tf.sequential({
    name: 'discriminator',
    layers: [
      tf.layers.conv2d({ inputShape: IMAGE_SHAPE, filters: 32, kernelSize: 4, strides: 2, padding: 'same', kernelInitializer: init(), name: 'd_conv1' }),
      tf.layers.leakyReLU({ alpha: 0.2, name: 'd_act1' }),
      tf.layers.conv2d({ filters: 64, kernelSize: 4, strides: 2, padding: 'same', kernelInitializer: init(), name: 'd_conv2' }),
      tf.layers.leakyReLU({ alpha: 0.2, name: 'd_act2' }),
      tf.layers.flatten({ name: D_FEATURE_LAYER }),
      tf.layers.dense({ units: 1, kernelInitializer: init(), name: 'd_logit' }),
    ],
  });
}

/** G's output [-1,1] as the [0,1] images Q and the extractor take. */
export function toUnit(x: tf.Tensor): tf.Tensor4D {
  return tf.tidy(() => x.add(1).div(2) as tf.Tensor4D);
}

/**
 * The standard GAN discriminator loss: sigmoid cross-entropy against 1 for real and 0 for fake.
 * Both losses are TF.js's tf.losses.sigmoidCrossEntropy, fused into one tape node each on wasm
 * (src/backend/fused-loss.ts, the same bits).
 */
export function discriminatorLoss(realLogits: tf.Tensor, fakeLogits: tf.Tensor): tf.Scalar {
  return tf.tidy(() => sigmoidCrossEntropy(realLogits, 1).add(sigmoidCrossEntropy(fakeLogits, 0)) as tf.Scalar);
}

/** The non-saturating generator loss: −log D(G(z)). */
export function generatorGanLoss(fakeLogits: tf.Tensor): tf.Scalar {
  return sigmoidCrossEntropy(fakeLogits, 1);
}

/** How Q enters the generator loss. */
export interface QualityPenalty {
  quality: Quality;
  /** λ: the weight of Q in L_G (0 = plain GAN; Q is still measured for the log). */
  lambda: number;
  /** α, β: the weights of Norm(noise) and Norm(distance) in Q. */
  alpha: number;
  beta: number;
}

/** Mean Q (smooth Norm, differentiable) and the mean raw noise and distance of a [0,1] batch. */
export function qualityTerms(penalty: QualityPenalty, images: tf.Tensor4D): { q: tf.Scalar; noise: tf.Scalar; distance: tf.Scalar } {
  return tf.tidy(() => {
    const c = penalty.quality.components(images, true);
    const q = c.noiseNorm.mul(penalty.alpha).add(c.distanceNorm.mul(penalty.beta)).mean() as tf.Scalar;
    return { q, noise: c.noise.mean() as tf.Scalar, distance: c.distance.mean() as tf.Scalar };
  });
}

export interface DStepResult {
  lossD: number;
}

/** Q of one generated batch: the mean of Q and of its raw noise and distance terms. */
export interface QualityReading {
  q: number;
  noise: number;
  distance: number;
}

export interface GStepResult {
  /** L_G = lossGan + λ·q. */
  lossG: number;
  lossGan: number;
  /** Q of this step's G(z): always with λ > 0 (it is in the loss), with λ = 0 only when asked for. */
  quality?: QualityReading;
}

function trainableVariables(model: tf.LayersModel): tf.Variable[] {
  return model.trainableWeights.map((w) => w.read() as tf.Variable);
}

/** One D update on a real batch ([-1,1]) and G(z); G's weights are not touched. */
export function trainDiscriminatorOneStep(g: tf.LayersModel, d: tf.LayersModel, optimizer: tf.Optimizer, real: tf.Tensor4D, z: tf.Tensor2D): DStepResult {
  const lossD = tf.tidy(() => {
    const fake = g.apply(z, { training: true }) as tf.Tensor;
    const { value, grads } = tf.variableGrads(() => discriminatorLoss(
      d.apply(real, { training: true }) as tf.Tensor,
      d.apply(fake, { training: true }) as tf.Tensor,
    ), trainableVariables(d));
    optimizer.applyGradients(grads);
    return value;
  });
  const out = { lossD: lossD.dataSync()[0]! };
  lossD.dispose();
  return out;
}

/**
 * One G update: L_G = L_GAN + λ·Q(G(z)). The gradient is taken with respect to G's variables only,
 * so D's weights stay exactly as they were. With λ = 0, Q is not part of the step: it is measured
 * outside the gradient, and only when `measureQuality` asks (the trainer asks on the steps that end
 * a log interval), because one forward pass of Q costs more than the whole MLP GAN step.
 */
export function trainGeneratorOneStep(
  g: tf.LayersModel, d: tf.LayersModel, optimizer: tf.Optimizer, z: tf.Tensor2D, penalty: QualityPenalty,
  { measureQuality = true }: { measureQuality?: boolean } = {},
): GStepResult {
  const parts = tf.tidy(() => {
    let lossGan: tf.Scalar | undefined;
    let images: tf.Tensor4D | undefined;
    let terms: ReturnType<typeof qualityTerms> | undefined;
    const { value, grads } = tf.variableGrads(() => {
      const fake = g.apply(z, { training: true }) as tf.Tensor;
      lossGan = tf.keep(generatorGanLoss(d.apply(fake, { training: true }) as tf.Tensor));
      if (penalty.lambda === 0) {
        if (measureQuality) images = tf.keep(toUnit(fake));
        return lossGan;
      }
      const t = qualityTerms(penalty, toUnit(fake));
      terms = { q: tf.keep(t.q), noise: tf.keep(t.noise), distance: tf.keep(t.distance) };
      return lossGan.add(t.q.mul(penalty.lambda)) as tf.Scalar;
    }, trainableVariables(g));
    optimizer.applyGradients(grads);
    // λ = 0: measured after the update's gradient was taken, outside any tape.
    const t = terms ?? (images ? qualityTerms(penalty, images) : undefined);
    // Kept tensors escape every tidy, not just the gradient's: what is not returned is freed here.
    images?.dispose();
    return t ? [value, lossGan!, t.q, t.noise, t.distance] : [value, lossGan!];
  });
  const [lossG, lossGan, q, noise, distance] = parts.map((t) => t.dataSync()[0]!);
  tf.dispose(parts);
  return { lossG: lossG!, lossGan: lossGan!, ...(q !== undefined ? { quality: { q, noise: noise!, distance: distance! } } : {}) };
}

export function makeOptimizer(learningRate: number): tf.AdamOptimizer {
  if (!(learningRate > 0)) throw new QgateError('INVALID_ARGUMENT', `learning rate must be > 0, got ${learningRate}`);
  // β1 = 0.5 as in DCGAN (Radford et al. 2015): the default 0.9 makes GAN training oscillate.
  // TF.js's Adam, with each variable's update fused into one kernel on wasm (same bits).
  return new QgateAdamOptimizer(learningRate, 0.5, 0.999);
}
