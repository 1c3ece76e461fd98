/**
 * Gradients for TF.js's fused ops (`tf.fused.conv2d`, `tf.fused.matMul`: every conv2d and dense
 * layer with a bias) that compute only the derivatives backprop asks for.
 *
 * TF.js builds those ops with `customGrad`, whose gradient function returns the derivative of every
 * input at once. So a layer's weight gradient is computed even where only its input's is wanted
 * (every layer of D in the G step), and its input's even where only the weights' are (D's first
 * layer in the D step): in a DCGAN step that is two of D's filter gradients and two input
 * gradients computed and thrown away. The tape skips unwanted derivatives only for kernels with a
 * registered gradient, which hands back one closure per input.
 *
 * So under a tape, and with the linear activation (the only one TF.js fuses there), qgate runs the
 * same fused kernel on the same inputs directly and registers that gradient for it, built from the
 * same derivative ops as TF.js's. Forward values and every derivative computed are therefore the
 * same bits as before (test/fused-gradients.test.ts holds them to it); only the unused ones are not
 * computed. Everything else (no tape, other activations, other layouts) goes to TF.js's op.
 * This is backend-independent and installed for every backend.
 */
import * as tf from '@tensorflow/tfjs';

type FusedConv2DArgs = Parameters<typeof tf.fused.conv2d>[0];
type FusedMatMulArgs = Parameters<typeof tf.fused.matMul>[0];
interface FusedOps {
  conv2d: typeof tf.fused.conv2d;
  matMul: typeof tf.fused.matMul;
}

/** `tf.fused` is a plain object in TF.js's bundle, and tfjs-layers calls through it. */
const fusedOps = tf.fused as FusedOps;
const stockOps: FusedOps = { conv2d: tf.fused.conv2d, matMul: tf.fused.matMul };
let installed = false;

function underTape(): boolean {
  return tf.engine().state.gradientDepth > 0;
}

const absent = (v: unknown): v is undefined | null => v === undefined || v === null;

const isFloatTensor = (t: unknown, rank?: number): t is tf.Tensor =>
  t instanceof tf.Tensor && t.dtype === 'float32' && (rank === undefined || t.rank === rank);

/** TF.js's getFusedBiasGradient: dy summed over the axes the bias was broadcast along. */
function biasGradient(biasShape: number[], dy: tf.Tensor): tf.Tensor {
  const axes = tf.backend_util.getReductionAxes(biasShape, dy.shape);
  return tf.reshape(axes.length > 0 ? tf.sum(dy, axes) : dy, biasShape);
}

function linearOnly(kernelName: string, activation: unknown): void {
  if (activation !== 'linear') {
    throw new Error(`gradient of ${kernelName} with activation '${String(activation)}' is not supported (TF.js fuses only 'linear' under a gradient)`);
  }
}

/** The derivatives of fusedConv2d_'s customGrad (tfjs-core 4.22), one closure per input. */
const fusedConv2DGradient: tf.GradConfig = {
  kernelName: 'FusedConv2D',
  inputsToSave: ['x', 'filter'],
  gradFunc: (dy, saved, attrs) => {
    const [x, filter] = saved as [tf.Tensor4D, tf.Tensor4D];
    const { strides, pad, activation, biasShape } = attrs as unknown as {
      strides: [number, number] | number; pad: 'valid' | 'same' | number; activation: string; biasShape: number[] | null;
    };
    linearOnly('FusedConv2D', activation);
    const d = dy as tf.Tensor4D;
    const grads: Record<string, () => tf.Tensor> = {
      // conv2dTranspose runs the Conv2DBackpropInput kernel with exactly the attributes TF.js's gradient gives it.
      x: () => tf.conv2dTranspose(d, filter, x.shape, strides, pad),
      // conv2DBackpropFilter is not exported as an op; this is its kernel call.
      filter: () => tf.engine().runKernel('Conv2DBackpropFilter', { x, dy: d }, {
        strides, pad, dataFormat: 'NHWC', dimRoundingMode: undefined, filterShape: filter.shape,
      } as unknown as tf.NamedAttrMap) as tf.Tensor,
    };
    if (biasShape) grads.bias = () => biasGradient(biasShape, d);
    return grads;
  },
};

/** The derivatives of fusedMatMul_'s customGrad (tfjs-core 4.22) for its 3-D operands. */
const fusedMatMulGradient: tf.GradConfig = {
  kernelName: '_FusedMatMul',
  inputsToSave: ['a', 'b'],
  gradFunc: (dy, saved, attrs) => {
    const [a, b] = saved as [tf.Tensor3D, tf.Tensor3D];
    const { transposeA, transposeB, activation, biasShape } = attrs as unknown as {
      transposeA: boolean; transposeB: boolean; activation: string; biasShape: number[] | null;
    };
    linearOnly('_FusedMatMul', activation);
    const d = dy as tf.Tensor3D;
    const [aDer, bDer]: Array<() => tf.Tensor> = !transposeA && !transposeB
      ? [() => tf.matMul(d, b, false, true), () => tf.matMul(a, d, true, false)]
      : !transposeA && transposeB
        ? [() => tf.matMul(d, b, false, false), () => tf.matMul(d, a, true, false)]
        : transposeA && !transposeB
          ? [() => tf.matMul(b, d, false, true), () => tf.matMul(a, d, false, false)]
          : [() => tf.matMul(b, d, true, true), () => tf.matMul(d, a, true, true)];
    const grads: Record<string, () => tf.Tensor> = { a: aDer!, b: bDer! };
    if (biasShape) grads.bias = () => biasGradient(biasShape, d);
    return grads;
  },
};

/**
 * fused.conv2d for the case layers produce under a tape: NHWC rank-4 float input and filter,
 * stride-only (no dilation), linear activation, a per-channel or scalar bias or none.
 */
const conv2d = ((args: FusedConv2DArgs) => {
  const { x, filter, strides, pad, bias, preluActivationWeights } = args;
  const activation = args.activation ?? 'linear';
  const dilations = args.dilations ?? [1, 1];
  const direct = underTape() && activation === 'linear' && absent(preluActivationWeights)
    && (args.dataFormat ?? 'NHWC') === 'NHWC' && args.dimRoundingMode === undefined
    && (dilations === 1 || (Array.isArray(dilations) && dilations.every((v) => v === 1)))
    && isFloatTensor(x, 4) && isFloatTensor(filter, 4) && filter.shape[2] === x.shape[3]
    && (absent(bias) || (isFloatTensor(bias) && bias.rank <= 1 && (bias.size === 1 || bias.size === filter.shape[3])));
  if (!direct) return stockOps.conv2d(args);
  const inputs: tf.NamedTensorMap = absent(bias) ? { x, filter } : { x, filter, bias: bias as tf.Tensor };
  // The kernel ignores biasShape; the gradient needs it and sees only attributes and saved tensors.
  const attrs = {
    strides, pad, dataFormat: 'NHWC', dilations, dimRoundingMode: undefined, activation, leakyreluAlpha: args.leakyreluAlpha,
    biasShape: absent(bias) ? null : (bias as tf.Tensor).shape,
  };
  return tf.engine().runKernel('FusedConv2D', inputs, attrs as unknown as tf.NamedAttrMap) as tf.Tensor4D;
}) as typeof tf.fused.conv2d;

/**
 * fused.matMul for the case dense layers produce under a tape: rank-2 float operands, linear
 * activation, a bias that broadcasts over the rows or none. Reshaped to 3-D as TF.js's op does.
 */
const matMul = ((args: FusedMatMulArgs) => {
  const { a, b, bias, preluActivationWeights } = args;
  const transposeA = args.transposeA ?? false;
  const transposeB = args.transposeB ?? false;
  const activation = args.activation ?? 'linear';
  if (!(underTape() && activation === 'linear' && absent(preluActivationWeights) && isFloatTensor(a, 2) && isFloatTensor(b, 2))) {
    return stockOps.matMul(args);
  }
  const [m, k] = transposeA ? [a.shape[1]!, a.shape[0]!] : [a.shape[0]!, a.shape[1]!];
  const [k2, n] = transposeB ? [b.shape[1]!, b.shape[0]!] : [b.shape[0]!, b.shape[1]!];
  const biasFits = absent(bias) || (isFloatTensor(bias) && bias.rank <= 2 && (bias.size === 1 || bias.shape[bias.rank - 1] === n)
    && (bias.rank < 2 || bias.shape[0] === 1));
  if (k !== k2 || !biasFits) return stockOps.matMul(args);
  const a3 = tf.reshape(a, [1, ...a.shape]);
  const b3 = tf.reshape(b, [1, ...b.shape]);
  const inputs: tf.NamedTensorMap = absent(bias) ? { a: a3, b: b3 } : { a: a3, b: b3, bias: bias as tf.Tensor };
  const attrs = { transposeA, transposeB, activation, leakyreluAlpha: args.leakyreluAlpha ?? 0.2, biasShape: absent(bias) ? null : (bias as tf.Tensor).shape };
  return tf.reshape(tf.engine().runKernel('_FusedMatMul', inputs, attrs as unknown as tf.NamedAttrMap) as tf.Tensor, [m, n]);
}) as typeof tf.fused.matMul;

/** Registers the gradients and routes tf.fused's ops through them under a tape. Idempotent. */
export function installFusedOpGradients(): void {
  if (installed) return;
  tf.registerGradient(fusedConv2DGradient);
  tf.registerGradient(fusedMatMulGradient);
  fusedOps.conv2d = conv2d;
  fusedOps.matMul = matMul;
  installed = true;
}

/** Runs `fn` with TF.js's own fused ops (customGrad, every derivative computed). For tests and benchmarks. */
export function withStockFusedOps<T>(fn: () => T): T {
  const ours: FusedOps = { conv2d: fusedOps.conv2d, matMul: fusedOps.matMul };
  Object.assign(fusedOps, stockOps);
  try {
    return fn();
  } finally {
    Object.assign(fusedOps, ours);
  }
}
