/**
 * The GAN losses' sigmoid cross-entropy as one node on the gradient tape, with TF.js's exact bits.
 *
 * `tf.losses.sigmoidCrossEntropy(labels, logits)` is max(x, 0) − x·z + log1p(exp(−|x|)), summed and
 * divided by the count: ten kernels forward and about twenty more for the gradient, each on a
 * [64, 1] tensor, so each costs the engine's per-kernel work (tape, scopes, allocation) and almost
 * no arithmetic. Three losses a step made them about a tenth of an MLP GAN step.
 *
 * Here the forward runs TF.js's own Exp and Log1p kernels (so their results are the stock ones) and
 * does the rest in float32 arithmetic in JavaScript (`Math.fround` after every operation gives the
 * float32 result of each: double precision is wide enough that rounding twice changes nothing),
 * and the gradient is the arithmetic of TF.js's gradient chain, operation for operation, in the
 * order its tape adds the three paths into x. test/fused-gradients.test.ts compares values and gradients
 * bit for bit with TF.js's, special values included.
 *
 * The gradient's bits are TF.js's when the logits feed nothing else that is differentiated, as in
 * the GAN losses. If they did, TF.js would add the other consumers' gradients into the three paths
 * one at a time, and this adds them to the three paths' sum: the same terms, grouped differently.
 *
 * Only on the wasm backend, where a sum is float32 additions in order: elsewhere (the cpu backend
 * sums in double precision, tfjs-node in its own order) this is TF.js's loss itself.
 */
import * as tf from '@tensorflow/tfjs';

const f = Math.fround;
let fused = true;

/** Runs `fn` with TF.js's own loss in place of the fused one: for tests and benchmarks. */
export function withStockLoss<T>(fn: () => T): T {
  const before = fused;
  fused = false;
  try {
    return fn();
  } finally {
    fused = before;
  }
}

/** float32 step(x, α): 1 above 0, α at or below, NaN for NaN. */
const step = (x: number, alpha: number) => (x > 0 ? 1 : Number.isNaN(x) ? NaN : alpha);

/**
 * `tf.losses.sigmoidCrossEntropy(tf.fill(logits.shape, label), logits)` with the default weights,
 * label smoothing and reduction (the sum divided by the number of elements), the same value and
 * gradient bit for bit.
 */
export function sigmoidCrossEntropy(logits: tf.Tensor, label: number): tf.Scalar {
  if (!fused || tf.getBackend() !== 'wasm' || logits.dtype !== 'float32' || logits.size === 0) {
    return tf.tidy(() => tf.losses.sigmoidCrossEntropy(tf.fill(logits.shape, label), logits) as tf.Scalar);
  }
  const z = f(label);
  const loss = tf.customGrad((...args) => {
    const x = args[0] as tf.Tensor;
    const xs = x.dataSync() as Float32Array;
    const n = xs.length;
    // e = exp(−|x|) and l = log1p(e) from the backend's own kernels.
    const negAbs = xs.map((v) => -Math.abs(v));
    const [e, l] = tf.tidy(() => {
      const eT = tf.exp(tf.tensor(negAbs, x.shape));
      return [eT.dataSync() as Float32Array, tf.log1p(eT).dataSync() as Float32Array];
    });
    // add(sub(relu(x), x·z), l), then sum (float32 additions in index order) and divide by n.
    let sum = 0;
    for (let i = 0; i < n; i++) {
      const v = xs[i]!;
      const relu = v > 0 || Number.isNaN(v) ? v : 0;
      sum = f(sum + f(f(relu - f(v * z)) + l[i]!));
    }
    const value = tf.scalar(f(sum / n));
    const gradFunc = (dy: tf.Tensor) => {
      // div's gradient dy/n reaches every element through sum's; add passes it to both terms, sub
      // to relu and (negated) to x·z. The tape adds x's three gradients as (abs + mul) + relu.
      const dL = f((dy.dataSync() as Float32Array)[0]! / n);
      const dx = new Float32Array(n);
      for (let i = 0; i < n; i++) {
        const v = xs[i]!;
        const de = f(dL / f(e[i]! + 1)); // log1p: dy / (x + 1)
        const dNegAbs = f(de * e[i]!); // exp: dy · y
        const dAbs = f(-dNegAbs * step(v, -1)); // neg, then abs: dy · step(x, −1)
        const dMul = f(-dL * z); // sub's negation, then mul: dy · z
        const dRelu = f(dL * step(v, 0)); // relu: dy · step(x)
        dx[i] = f(f(dAbs + dMul) + dRelu);
      }
      return tf.tensor(dx, x.shape);
    };
    return { value, gradFunc };
  });
  return loss(logits) as tf.Scalar;
}
