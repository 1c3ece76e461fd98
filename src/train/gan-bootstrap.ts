/**
 * The bootstrap generator: the original small MLP GAN (Goodfellow et al. 2014, as in most
 * tutorials), trained briefly on MNIST so the service has a real generator to serve until the GAN
 * trainer lands. Builders and the one-step functions are exported; the command line is in
 * src/cli/generator-bootstrap.ts.
 */
import * as tf from '@tensorflow/tfjs';
import { QgateError } from '../errors.ts';
import { loadMnist } from '../data/mnist.ts';
import { GENERATOR_FORMAT, type GeneratorManifest } from '../generator/manifest.ts';
import { fillGaussian, mulberry32, shuffledIndices } from '../random.ts';

export interface BootstrapOptions {
  /** Length of z. */
  latentSize: number;
  /** Units of the one hidden layer of G and of D. */
  hidden: number;
  /** Images per step, for D and for G. */
  batchSize: number;
  /** Training steps (one D update and one G update each). */
  steps: number;
  /** Adam learning rate of G. */
  lrG: number;
  /** Adam learning rate of D (lower, so D does not overpower the small G early on). */
  lrD: number;
  /** Seeds the initialisers, the shuffles and the latent samples. */
  seed: number;
  /** Train on the first `limit` digits only (tests). */
  limit?: number;
  onProgress?: (step: number, lossD: number, lossG: number) => void;
}

export const BOOTSTRAP_DEFAULTS: BootstrapOptions = {
  latentSize: 100,
  hidden: 128,
  batchSize: 64,
  steps: 15000,
  lrG: 1e-3,
  lrD: 5e-4,
  seed: 1,
};

/** G: z → dense(hidden, relu) → dense(784, tanh) → [28,28,1] in [-1,1]. */
export function buildGenerator(latentSize: number, hidden: number, seed: number): tf.Sequential {
  tf.util.assert(Number.isSafeInteger(latentSize) && latentSize > 0, () => `latentSize must be a positive integer, got ${latentSize}`);
  return tf.sequential({
    name: 'mlp_generator',
    layers: [
      tf.layers.dense({ inputShape: [latentSize], units: hidden, activation: 'relu', kernelInitializer: tf.initializers.heNormal({ seed }), name: 'g_hidden' }),
      tf.layers.dense({ units: 784, activation: 'tanh', kernelInitializer: tf.initializers.glorotUniform({ seed: seed + 1 }), name: 'g_out' }),
      tf.layers.reshape({ targetShape: [28, 28, 1], name: 'g_image' }),
    ],
  });
}

/** D: [28,28,1] → dense(hidden, LeakyReLU 0.2) → dense(1) logit. */
export function buildDiscriminator(hidden: number, seed: number): tf.Sequential {
  return tf.sequential({
    name: 'mlp_discriminator',
    layers: [
      tf.layers.flatten({ inputShape: [28, 28, 1], name: 'd_flat' }),
      tf.layers.dense({ units: hidden, kernelInitializer: tf.initializers.heNormal({ seed: seed + 2 }), name: 'd_hidden' }),
      tf.layers.leakyReLU({ alpha: 0.2, name: 'd_leaky' }),
      tf.layers.dense({ units: 1, kernelInitializer: tf.initializers.glorotUniform({ seed: seed + 3 }), name: 'd_logit' }),
    ],
  });
}

const bce = (logits: tf.Tensor, label: number): tf.Scalar =>
  tf.losses.sigmoidCrossEntropy(tf.fill(logits.shape, label), logits) as tf.Scalar;

/** One D update on real (in [-1,1]) and G(z) images; returns D's loss. */
export function trainDiscriminatorOneStep(g: tf.LayersModel, d: tf.LayersModel, opt: tf.Optimizer, real: tf.Tensor4D, z: tf.Tensor2D): number {
  const vars = d.trainableWeights.map((w) => w.read() as tf.Variable);
  const loss = opt.minimize(() => {
    const fake = g.apply(z, { training: true }) as tf.Tensor;
    return bce(d.apply(real, { training: true }) as tf.Tensor, 1).add(bce(d.apply(fake, { training: true }) as tf.Tensor, 0)) as tf.Scalar;
  }, true, vars);
  const value = loss!.dataSync()[0]!;
  loss!.dispose();
  return value;
}

/** One G update (non-saturating loss); D's weights are left unchanged. */
export function trainGeneratorOneStep(g: tf.LayersModel, d: tf.LayersModel, opt: tf.Optimizer, z: tf.Tensor2D): number {
  const vars = g.trainableWeights.map((w) => w.read() as tf.Variable);
  const loss = opt.minimize(() => bce(d.apply(g.apply(z, { training: true }) as tf.Tensor, { training: true }) as tf.Tensor, 1), true, vars);
  const value = loss!.dataSync()[0]!;
  loss!.dispose();
  return value;
}

export interface BootstrapResult {
  generator: tf.Sequential;
  lossD: number;
  lossG: number;
  seconds: number;
  trainCount: number;
}

export async function trainBootstrapGan(o: BootstrapOptions): Promise<BootstrapResult> {
  if (!(Number.isSafeInteger(o.steps) && o.steps > 0)) throw new QgateError('INVALID_ARGUMENT', `steps must be a positive integer, got ${o.steps}`);
  const started = performance.now();
  const data = loadMnist('train', o.limit === undefined ? {} : { limit: o.limit });
  // MNIST in [0,1] → [-1,1], the range of G's tanh.
  const all = tf.tidy(() => tf.tensor4d(data.images, [data.count, 28, 28, 1]).mul(2).sub(1) as tf.Tensor4D);
  const g = buildGenerator(o.latentSize, o.hidden, o.seed);
  const d = buildDiscriminator(o.hidden, o.seed);
  const optG = tf.train.adam(o.lrG, 0.5);
  const optD = tf.train.adam(o.lrD, 0.5);
  const rng = mulberry32(o.seed);
  const zBuf = new Float32Array(o.batchSize * o.latentSize);
  let order = shuffledIndices(data.count, rng);
  let cursor = 0;
  let lossD = NaN;
  let lossG = NaN;
  try {
    for (let step = 0; step < o.steps; step++) {
      if (cursor + o.batchSize > data.count) {
        order = shuffledIndices(data.count, rng);
        cursor = 0;
      }
      const idx = tf.tensor1d(order.subarray(cursor, cursor + o.batchSize), 'int32');
      cursor += o.batchSize;
      const real = tf.gather(all, idx) as tf.Tensor4D;
      const z1 = tf.tensor2d(fillGaussian(zBuf, rng), [o.batchSize, o.latentSize]);
      lossD = trainDiscriminatorOneStep(g, d, optD, real, z1);
      const z2 = tf.tensor2d(fillGaussian(zBuf, rng), [o.batchSize, o.latentSize]);
      lossG = trainGeneratorOneStep(g, d, optG, z2);
      tf.dispose([idx, real, z1, z2]);
      o.onProgress?.(step, lossD, lossG);
      if (step % 100 === 0) await new Promise((r) => setImmediate(r));
    }
  } finally {
    all.dispose();
    d.dispose();
    optG.dispose();
    optD.dispose();
  }
  return { generator: g, lossD, lossG, seconds: (performance.now() - started) / 1000, trainCount: data.count };
}

export function bootstrapManifest(name: string, version: string, o: BootstrapOptions, r: BootstrapResult, extra: Record<string, unknown> = {}): GeneratorManifest {
  return {
    format: GENERATOR_FORMAT,
    name,
    version,
    architecture: `MLP GAN generator: z(${o.latentSize}) > dense(${o.hidden}, relu) > dense(784, tanh) > reshape [28,28,1]`,
    latentSize: o.latentSize,
    imageShape: [28, 28, 1],
    outputRange: [-1, 1],
    createdAt: new Date().toISOString(),
    training: {
      script: 'npm run generator:bootstrap',
      data: `mnist:train (${r.trainCount} digits, scaled to [-1,1])`,
      discriminator: `flatten > dense(${o.hidden}) > LeakyReLU(0.2) > dense(1) logit`,
      loss: 'binary cross-entropy on logits, non-saturating G loss',
      optimizer: `adam(beta1=0.5): G lr ${o.lrG}, D lr ${o.lrD}`,
      batchSize: o.batchSize,
      steps: o.steps,
      seed: o.seed,
      finalLossD: r.lossD,
      finalLossG: r.lossG,
      seconds: Math.round(r.seconds),
    },
    ...extra,
  };
}
