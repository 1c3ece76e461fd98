/**
 * qgate's own kernels for the TF.js wasm backend, which is what runs where the native TensorFlow
 * binary cannot be installed. TF.js 4.22's wasm backend cannot train as shipped:
 *
 * - It has no `Conv2DBackpropFilter`, so the gradient of any conv layer throws.
 * - Its `BatchMatMul` with `transposeA`/`transposeB` leaves XNNPACK's fast path for a naive loop
 *   (measured here: 13 ms against 0.9 ms for 64×784·784×128), and every dense layer's gradient
 *   uses exactly those transposed forms.
 * - Its `Conv2DBackpropInput` (the input gradient of conv2d, and the forward pass of
 *   conv2dTranspose) is a direct loop, 9× slower than the forward conv of the same size.
 *
 * qgate's kernels are an im2col / col2im pass over the wasm heap plus one untransposed XNNPACK
 * matmul each. The passes run compiled to wasm (native-kernels.ts, kernels/conv.c), with the
 * JavaScript functions below as their reference and fallback. The results equal the cpu
 * backend's to float32 rounding; the tests in test/wasm-kernels.test.ts hold them to that.
 */
import * as tf from '@tensorflow/tfjs';
import type { KernelConfig, KernelFunc, NamedAttrMap, TensorInfo } from '@tensorflow/tfjs';
import { convGeometry, nativeKernels } from './native-kernels.ts';

/** The parts of the wasm backend's class these kernels use (it is not exported with types). */
type WasmBackend = tf.KernelBackend & {
  incRef(dataId: tf.DataId): void;
  makeOutput(shape: number[], dtype: tf.DataType): TensorInfo;
  typedArrayFromHeap(info: TensorInfo): tf.TypedArray;
};

/** Wraps a kernel input as a Tensor owned by the caller's tidy, without stealing the input's reference. */
function borrow(info: TensorInfo, backend: WasmBackend): tf.Tensor {
  backend.incRef(info.dataId);
  return tf.engine().makeTensorFromTensorInfo(info, backend);
}

/**
 * Runs `compute` over tensors and returns its result as a TensorInfo the engine can adopt.
 * The extra reference keeps the data alive after the tidy and the local tensor are gone.
 */
function composeKernel(backend: WasmBackend, compute: () => tf.Tensor): TensorInfo {
  const result = tf.tidy(compute);
  backend.incRef(result.dataId);
  const info: TensorInfo = { dataId: result.dataId, shape: result.shape, dtype: result.dtype };
  result.dispose();
  return info;
}

/** The geometry of a 2-D convolution, as TF.js computes it for every backend. */
type ConvInfo = tf.backend_util.Conv2DInfo;

/**
 * im2col for NHWC, written transposed: column (b,oh,ow) of the [KH·KW·Ci, N] matrix `out` holds the
 * input values under the filter at that output position, zero where the window hangs over the
 * padding. Writing it transposed lets the filter gradient be one untransposed matmul with dy.
 */
export function im2colTransposed(x: Float32Array, info: ConvInfo, out: Float32Array): void {
  const { batchSize: B, inHeight: H, inWidth: W, inChannels: C, outHeight: Ho, outWidth: Wo } = info;
  const { filterHeight: KH, filterWidth: KW, strideHeight: sh, strideWidth: sw } = info;
  const { top, left } = info.padInfo;
  const N = B * Ho * Wo;
  let n = 0;
  for (let b = 0; b < B; b++) {
    for (let oh = 0; oh < Ho; oh++) {
      for (let ow = 0; ow < Wo; ow++, n++) {
        let k = 0;
        for (let kh = 0; kh < KH; kh++) {
          const ih = oh * sh + kh - top;
          for (let kw = 0; kw < KW; kw++) {
            const iw = ow * sw + kw - left;
            if (ih < 0 || ih >= H || iw < 0 || iw >= W) {
              for (let c = 0; c < C; c++, k++) out[k * N + n] = 0;
            } else {
              const src = ((b * H + ih) * W + iw) * C;
              for (let c = 0; c < C; c++, k++) out[k * N + n] = x[src + c]!;
            }
          }
        }
      }
    }
  }
}

/** col2im for NHWC, the adjoint of im2col: scatter-adds each row's window back into `out`. */
export function col2im(cols: Float32Array, info: ConvInfo, out: Float32Array): void {
  const { batchSize: B, inHeight: H, inWidth: W, inChannels: C, outHeight: Ho, outWidth: Wo } = info;
  const { filterHeight: KH, filterWidth: KW, strideHeight: sh, strideWidth: sw } = info;
  const { top, left } = info.padInfo;
  out.fill(0);
  let o = 0;
  for (let b = 0; b < B; b++) {
    for (let oh = 0; oh < Ho; oh++) {
      for (let ow = 0; ow < Wo; ow++) {
        for (let kh = 0; kh < KH; kh++) {
          const ih = oh * sh + kh - top;
          for (let kw = 0; kw < KW; kw++) {
            const iw = ow * sw + kw - left;
            if (ih >= 0 && ih < H && iw >= 0 && iw < W) {
              const dst = ((b * H + ih) * W + iw) * C;
              for (let c = 0; c < C; c++) out[dst + c]! += cols[o + c]!;
            }
            o += C;
          }
        }
      }
    }
  }
}

interface ConvAttrs {
  strides: [number, number] | number;
  pad: 'valid' | 'same' | number | tf.backend_util.ExplicitPadding;
  dataFormat: 'NHWC' | 'NCHW';
  dimRoundingMode?: 'floor' | 'round' | 'ceil';
}

function convInfo(attrs: ConvAttrs, xShape: number[], filterShape: number[], kernel: string): ConvInfo {
  if (attrs.dataFormat === 'NCHW') throw new Error(`qgate wasm ${kernel} supports NHWC (channelsLast) only`);
  return tf.backend_util.computeConv2DInfo(
    xShape as [number, number, number, number], filterShape as [number, number, number, number],
    attrs.strides, 1, attrs.pad, attrs.dimRoundingMode, false, 'channelsLast',
  );
}

/**
 * dW = patchesᵀ · dy, one untransposed XNNPACK matmul with the small dy as its right-hand side
 * (XNNPACK packs the right-hand side on every call). Composing the same thing from stock ops
 * spent 745 ms of an 850 ms filter gradient in the wasm StridedSlice kernel alone.
 */
const conv2dBackpropFilterKernel: KernelFunc = ({ inputs, backend, attrs }) => {
  const b = backend as WasmBackend;
  const { x, dy } = inputs as { x: TensorInfo; dy: TensorInfo };
  const { filterShape } = attrs as unknown as { filterShape: number[] };
  const info = convInfo(attrs as unknown as ConvAttrs, x.shape, filterShape, 'Conv2DBackpropFilter');
  const rows = info.batchSize * info.outHeight * info.outWidth;
  const K = info.filterHeight * info.filterWidth * info.inChannels;
  const patchesT = b.makeOutput([K, rows], 'float32');
  const native = nativeKernels(b);
  if (native) {
    native.im2colT(native.offset(x), native.offset(patchesT), ...convGeometry(info));
  } else {
    // Views are taken after the allocation: growing wasm memory detaches older views.
    im2colTransposed(b.typedArrayFromHeap(x) as Float32Array, info, b.typedArrayFromHeap(patchesT) as Float32Array);
  }
  return composeKernel(b, () => {
    const p = tf.engine().makeTensorFromTensorInfo(patchesT, b);
    return tf.matMul(p, borrow(dy, b).reshape([rows, info.outChannels])).reshape(filterShape);
  });
};

/**
 * dx = col2im(dy · Wᵀ), with W reshaped to [KH·KW·Ci, Co]. This is also the forward pass of
 * conv2dTranspose, so DCGAN generators run through it. The stock wasm kernel is a direct loop
 * (417 ms for a 64×7×7×128 → 64×14×14×64, 4×4 stride-2 case).
 */
const conv2dBackpropInputKernel: KernelFunc = ({ inputs, backend, attrs }) => {
  const b = backend as WasmBackend;
  const { dy, filter } = inputs as { dy: TensorInfo; filter: TensorInfo };
  const { inputShape } = attrs as unknown as { inputShape: number[] };
  const info = convInfo(attrs as unknown as ConvAttrs, inputShape, filter.shape, 'Conv2DBackpropInput');
  const rows = info.batchSize * info.outHeight * info.outWidth;
  const K = info.filterHeight * info.filterWidth * info.inChannels;
  const cols = composeKernel(b, () =>
    tf.matMul(
      borrow(dy, b).reshape([rows, info.outChannels]),
      borrow(filter, b).reshape([K, info.outChannels]),
      false, true,
    ));
  const out = b.makeOutput(inputShape, 'float32');
  const native = nativeKernels(b);
  if (native) native.col2im(native.offset(cols), native.offset(out), ...convGeometry(info));
  else col2im(b.typedArrayFromHeap(cols) as Float32Array, info, b.typedArrayFromHeap(out) as Float32Array);
  b.disposeData(cols.dataId);
  return out;
};

/**
 * Tile as block copies: the innermost row is copied once, then each axis's filled block is repeated
 * with `copyWithin` (a memmove), doubling. The stock wasm kernel computes a source index per output element:
 * 16 ms to tile [1,1,1,32] to [64,14,14,32], the gradient of a DCGAN generator's batch norm.
 */
export function tileInto(x: tf.TypedArray, shape: number[], reps: number[], out: tf.TypedArray): void {
  const r = shape.length;
  if (r === 0) {
    out[0] = x[0]!;
    return;
  }
  // outStride[d]: elements of `out` per step along axis d; inStride[d] the same for `x`.
  const outStride = new Array<number>(r);
  const inStride = new Array<number>(r);
  outStride[r - 1] = 1;
  inStride[r - 1] = 1;
  for (let d = r - 2; d >= 0; d--) {
    outStride[d] = outStride[d + 1]! * shape[d + 1]! * reps[d + 1]!;
    inStride[d] = inStride[d + 1]! * shape[d + 1]!;
  }
  const fill = (d: number, src: number, dst: number): void => {
    const n = shape[d]!;
    if (d === r - 1) {
      out.set(x.subarray(src, src + n), dst);
    } else {
      for (let i = 0; i < n; i++) fill(d + 1, src + i * inStride[d]!, dst + i * outStride[d]!);
    }
    // Repeat by doubling: each copy takes everything filled so far, so a block of one element
    // repeated 1,568 times (broadcasting a [64, 1] gradient over a row) is 11 copies, not 1,567.
    const total = n * outStride[d]! * reps[d]!;
    for (let filled = n * outStride[d]!; filled < total; filled *= 2) {
      out.copyWithin(dst + filled, dst, dst + Math.min(filled, total - filled));
    }
  };
  fill(0, 0, 0);
}

const tileKernel: KernelFunc = ({ inputs, backend, attrs }) => {
  const b = backend as WasmBackend;
  const { x } = inputs as { x: TensorInfo };
  const { reps } = attrs as unknown as { reps: number[] };
  const out = b.makeOutput(x.shape.map((s, i) => s * reps[i]!), x.dtype);
  if (tf.util.sizeFromShape(out.shape) > 0) {
    // Views are taken after the allocation: growing wasm memory detaches older views.
    tileInto(b.typedArrayFromHeap(x), x.shape, reps, b.typedArrayFromHeap(out));
  }
  return out;
};

/** Above this k the stock kernel's sort is as good as a scan with insertion. */
const TOPK_SCAN_MAX_K = 16;

/**
 * Row-wise top-k by one scan with insertion into a sorted list of k: about n compares per row
 * instead of a sort. Ties go to the lower index, as in every TF.js backend. Returns false (and
 * writes nothing meaningful) if a NaN is met, whose order only the stock kernel defines.
 */
export function topKRows(x: tf.TypedArray, rows: number, n: number, k: number, values: tf.TypedArray, indices: Int32Array): boolean {
  for (let r = 0; r < rows; r++) {
    const base = r * n;
    const out = r * k;
    let filled = 0;
    // The smallest value kept once k are kept; -Infinity until then, and NaN never passes `>`.
    let worst = -Infinity;
    for (let i = 0; i < n; i++) {
      const v = x[base + i]!;
      if (!(v > worst) && filled === k) {
        if (v !== v) return false;
        continue;
      }
      if (v !== v) return false;
      // Insert after every kept value >= v, so equal values stay in index order.
      let j = filled < k ? filled++ : k - 1;
      while (j > 0 && values[out + j - 1]! < v) {
        values[out + j] = values[out + j - 1]!;
        indices[out + j] = indices[out + j - 1]!;
        j--;
      }
      values[out + j] = v;
      indices[out + j] = i;
      if (filled === k) worst = values[out + k - 1]!;
    }
  }
  return true;
}

/**
 * TopK for small k: Q's k-th-nearest search takes k = 3 of 10,000 distances per image, where the
 * stock kernel spent 2.2 ms of a 27 ms batch of 64. Larger k, unsorted requests and NaN inputs go
 * to the stock kernel.
 */
function topKKernel(stockTopK: KernelConfig): KernelFunc {
  return (args) => {
    const b = args.backend as WasmBackend;
    const { x } = args.inputs as { x: TensorInfo };
    const { k, sorted } = args.attrs as unknown as { k: number; sorted: boolean };
    const n = x.shape[x.shape.length - 1] ?? 1;
    if (k > TOPK_SCAN_MAX_K || k === 0 || !sorted || (x.dtype !== 'float32' && x.dtype !== 'int32')) return stockTopK.kernelFunc(args);
    const outShape = [...x.shape.slice(0, -1), k];
    const values = b.makeOutput(outShape, x.dtype);
    const indices = b.makeOutput(outShape, 'int32');
    // Views are taken after the allocations: growing wasm memory detaches older views.
    const ok = topKRows(b.typedArrayFromHeap(x), tf.util.sizeFromShape(x.shape) / n, n, k,
      b.typedArrayFromHeap(values), b.typedArrayFromHeap(indices) as Int32Array);
    if (ok) return [values, indices];
    b.disposeData(values.dataId);
    b.disposeData(indices.dataId);
    return stockTopK.kernelFunc(args);
  };
}

// ---------------------------------------------------------------------------------------------
// LeakyReLU and its gradient. The stock wasm backend runs LeakyReLU, and the Greater and Select of
// TF.js's gradient for it, as generic scalar loops: 2.4, 2.5 and 4.6 ms on D's 64×14×14×32
// activations, where an XNNPACK-backed kernel such as Multiply takes about 0.1. In a DCGAN step they
// took about 30 ms. Both are compiled here (kernels/activation.c), one pass each, with the same
// bits (test/wasm-kernels.test.ts compares them with the stock ones). Without the compiled module
// they are x·step(x, α) and dy·step(x, α) on XNNPACK-speed kernels, which give the same values.

/**
 * LeakyReLU(x) = x · step(x, α), step being 1 above 0 and α elsewhere: x·1 is x, and x·α is the
 * stock kernel's product (also −0 for −0). (Prelu would be one kernel but turns −0 into +0.)
 */
const leakyReluKernel: KernelFunc = ({ inputs, backend, attrs }) => {
  const b = backend as WasmBackend;
  const { x } = inputs as { x: TensorInfo };
  const { alpha } = attrs as unknown as { alpha: number };
  if (x.dtype !== 'float32') return stock.get('LeakyRelu')!.kernelFunc({ inputs, backend, attrs });
  const native = nativeKernels(b);
  const n = tf.util.sizeFromShape(x.shape);
  if (native && n > 0) {
    const out = b.makeOutput(x.shape, 'float32');
    native.leakyRelu(native.offset(x), native.offset(out), n, alpha);
    return out;
  }
  return composeKernel(b, () => {
    const t = borrow(x, b);
    return tf.mul(t, tf.step(t, alpha));
  });
};

/** The kernel behind LeakyReLU's gradient on wasm: x > 0 ? dy : dy·α in one compiled pass. */
const LEAKY_RELU_GRAD = 'QgateLeakyReluGrad';
const leakyReluGradKernel: KernelFunc = ({ inputs, backend, attrs }) => {
  const b = backend as WasmBackend;
  const { x, dy } = inputs as { x: TensorInfo; dy: TensorInfo };
  const { alpha } = attrs as unknown as { alpha: number };
  const native = nativeKernels(b)!;
  const out = b.makeOutput(x.shape, 'float32');
  native.leakyReluGrad(native.offset(x), native.offset(dy), native.offset(out), tf.util.sizeFromShape(x.shape), alpha);
  return out;
};

/**
 * LeakyReLU's gradient: TF.js's where(x > 0, dy, dy·α) as one kernel, or as dy · step(x, α)
 * without the compiled module (dy·1 is dy): the same values, without the Greater and Select
 * kernels. Gradients are registered for every backend; the others keep TF.js's.
 */
function leakyReluGradient(original: tf.GradConfig): tf.GradConfig {
  return {
    ...original,
    gradFunc: (dy, saved, attrs) => {
      if (tf.getBackend() !== 'wasm') return original.gradFunc(dy, saved, attrs);
      const [x] = saved as [tf.Tensor];
      const d = dy as tf.Tensor;
      const { alpha } = attrs as unknown as { alpha: number };
      if (x.dtype === 'float32' && d.dtype === 'float32' && x.size > 0 && tf.util.arraysEqual(x.shape, d.shape) && nativeKernels(tf.backend())) {
        return { x: () => tf.engine().runKernel(LEAKY_RELU_GRAD, { x, dy: d }, { alpha } as unknown as NamedAttrMap) as tf.Tensor };
      }
      return { x: () => tf.mul(d, tf.step(x, alpha)) };
    },
  };
}

/**
 * Sum's and Mean's gradients as one broadcast (the Tile kernel's block copies) of dy, divided by the
 * count first for Mean. TF.js builds dy·ones(x.shape) instead: a ones array filled in JavaScript
 * and copied to the heap (0.9 ms for batch norm's 64×14×14×32), a Multiply over it, and for Mean a
 * division over the whole result. dy·1 is dy and every element is divided by the same count, so
 * the values are the same bits.
 */
function reductionGradient(original: tf.GradConfig, kind: 'Sum' | 'Mean'): tf.GradConfig {
  return {
    ...original,
    gradFunc: (dy, saved, attrs) => {
      const [x] = saved as [tf.Tensor];
      const d = dy as tf.Tensor;
      if (tf.getBackend() !== 'wasm' || d.dtype !== 'float32') return original.gradFunc(dy, saved, attrs);
      const { axis } = attrs as unknown as { axis: number | number[] };
      const axes = tf.util.parseAxisParam(axis, x.shape);
      const expandedShape = x.shape.map((n, i) => (axes.includes(i) ? 1 : n));
      const count = axes.reduce((n, a) => n * x.shape[a]!, 1);
      return {
        x: () => {
          const expanded = tf.reshape(d, expandedShape);
          return tf.broadcastTo(kind === 'Mean' ? tf.div(expanded, count) : expanded, x.shape);
        },
      };
    },
  };
}

/**
 * Identity, and Cast to the same dtype, share the input's data as Reshape does instead of copying
 * it. TF.js's engine clones every tensor a gradient saves (an Identity per saved tensor, 3.4 ms of
 * copies per DCGAN step), and tf.moments casts float32 to float32. Tensors are immutable and no
 * kernel writes into its inputs (qgate's Adam writes new buffers), so a shared buffer is safe.
 */
const shareKernel = (kernelName: 'Identity' | 'Cast'): KernelFunc => ({ inputs, backend, attrs }) => {
  const { x } = inputs as { x: TensorInfo };
  const dtype = kernelName === 'Cast' ? (attrs as unknown as { dtype: tf.DataType }).dtype : x.dtype;
  if (x.dtype === 'string' || dtype !== x.dtype) return stock.get(kernelName)!.kernelFunc({ inputs, backend, attrs });
  (backend as WasmBackend).incRef(x.dataId);
  return { dataId: x.dataId, shape: x.shape, dtype: x.dtype };
};

/**
 * The number of leading axes reduced, if the reduced axes are exactly 0, 1, …, k − 1 in that order
 * with 0 < k < rank (the stock kernel sums in the order the axes are given).
 */
function leadingAxes(axis: number | number[], shape: number[]): number | undefined {
  const axes = tf.util.parseAxisParam(axis, shape);
  if (axes.length === 0 || axes.length >= shape.length || axes.some((a, i) => a !== i)) return undefined;
  return axes.length;
}

/**
 * Sum and Mean over the leading axes (batch norm's statistics and its gradients), compiled
 * (kernels/norm.c): the stock kernels transpose the reduced axes to the end and add in a scalar
 * loop, 1.25 ms for 64×14×14×32. Same order, same bits; everything else goes to the stock kernel.
 */
function reduceLeadingKernel(kernelName: 'Sum' | 'Mean'): KernelFunc {
  return ({ inputs, backend, attrs }) => {
    const b = backend as WasmBackend;
    const { x } = inputs as { x: TensorInfo };
    const { axis, keepDims } = attrs as unknown as { axis: number | number[]; keepDims: boolean };
    const k = x.dtype === 'float32' ? leadingAxes(axis, x.shape) : undefined;
    const native = k === undefined ? undefined : nativeKernels(b);
    const rows = k === undefined ? 0 : tf.util.sizeFromShape(x.shape.slice(0, k));
    if (k === undefined || !native || rows === 0) return stock.get(kernelName)!.kernelFunc({ inputs, backend, attrs });
    const cols = tf.util.sizeFromShape(x.shape.slice(k));
    const out = b.makeOutput(keepDims ? x.shape.map((d, i) => (i < k ? 1 : d)) : x.shape.slice(k), 'float32');
    (kernelName === 'Sum' ? native.sumLeading : native.meanLeading)(native.offset(x), native.offset(out), rows, cols);
    return out;
  };
}

/**
 * Batch norm's normalization with per-channel (or single) parameters, compiled (kernels/norm.c)
 * with the stock kernel's arithmetic: 2.1 ms for 64×14×14×32 as a scalar loop with four modulo
 * counters per element. Other parameter shapes go to the stock kernel.
 */
const fusedBatchNormKernel: KernelFunc = ({ inputs, backend, attrs }) => {
  const b = backend as WasmBackend;
  const { x, mean, variance, offset, scale } = inputs as Record<'x' | 'mean' | 'variance', TensorInfo> & Partial<Record<'offset' | 'scale', TensorInfo>>;
  const C = x.shape[x.shape.length - 1] ?? 1;
  const params = [mean, variance, offset, scale];
  const strideOf = (t: TensorInfo | undefined): number | undefined => {
    if (t === undefined) return 0;
    const n = tf.util.sizeFromShape(t.shape);
    return n === 1 ? 0 : n === C ? 1 : undefined;
  };
  const strides = params.map(strideOf);
  const native = nativeKernels(b);
  if (!native || x.shape.length === 0 || [x, ...params].some((t) => t !== undefined && t.dtype !== 'float32') || strides.includes(undefined)) {
    return stock.get('FusedBatchNorm')!.kernelFunc({ inputs, backend, attrs });
  }
  const out = b.makeOutput(x.shape, 'float32');
  const { varianceEpsilon } = attrs as unknown as { varianceEpsilon: number };
  const at = (t: TensorInfo | undefined) => (t === undefined ? 0 : native.offset(t));
  native.batchNorm(
    native.offset(x), at(mean), strides[0]!, at(variance), strides[1]!,
    at(offset), strides[2]!, offset ? 1 : 0, at(scale), strides[3]!, scale ? 1 : 0,
    varianceEpsilon, native.offset(out), tf.util.sizeFromShape(x.shape) / C, C,
  );
  return out;
};

/**
 * Tanh, vectorized and compiled (kernels/activation.c) with the stock kernel's exact results: the stock
 * kernel calls the C library's scalar tanhf once per element, about 18 ns each, 1.8 ms of an MLP
 * GAN step for G's two 64×784 outputs.
 */
const tanhKernel: KernelFunc = ({ inputs, backend, attrs }) => {
  const b = backend as WasmBackend;
  const { x } = inputs as { x: TensorInfo };
  const n = tf.util.sizeFromShape(x.shape);
  const native = nativeKernels(b);
  if (!native || x.dtype !== 'float32' || n === 0) return stock.get('Tanh')!.kernelFunc({ inputs, backend, attrs });
  const out = b.makeOutput(x.shape, 'float32');
  native.tanh(native.offset(x), native.offset(out), n);
  return out;
};

/** The kernel behind Tanh's gradient on wasm: (1 − y²)·dy in one compiled pass. */
const TANH_GRAD = 'QgateTanhGrad';
const tanhGradKernel: KernelFunc = ({ inputs, backend }) => {
  const b = backend as WasmBackend;
  const { y, dy } = inputs as { y: TensorInfo; dy: TensorInfo };
  const native = nativeKernels(b)!;
  const out = b.makeOutput(y.shape, 'float32');
  native.tanhGrad(native.offset(y), native.offset(dy), native.offset(out), tf.util.sizeFromShape(y.shape));
  return out;
};

/**
 * Tanh's gradient, TF.js's mul(sub(1, square(y)), dy), as one kernel: the same operations on each
 * element in the same order, without the Square, Sub and Multiply kernels and their buffers.
 */
function tanhGradient(original: tf.GradConfig): tf.GradConfig {
  return {
    ...original,
    gradFunc: (dy, saved, attrs) => {
      const [y] = saved as [tf.Tensor];
      const d = dy as tf.Tensor;
      const usable = tf.getBackend() === 'wasm' && y.dtype === 'float32' && d.dtype === 'float32' && y.size > 0
        && tf.util.arraysEqual(y.shape, d.shape) && nativeKernels(tf.backend()) !== undefined;
      if (!usable) return original.gradFunc(dy, saved, attrs);
      return { x: () => tf.engine().runKernel(TANH_GRAD, { y, dy: d }) as tf.Tensor };
    },
  };
}

/**
 * The end of Q's distance term, compiled (kernels/knn.c): from the products f·rᵀ [B, R], each
 * row's k-th nearest reference and realism score in one pass, where TF.js took about a dozen
 * kernels over the [B, R] matrix. Inputs: cross [B, R], fNormSq [B, 1], rNormSq, radii and mask [R].
 */
const NEAREST_REALISM = 'QgateNearestAndRealism';
const nearestRealismKernel: KernelFunc = ({ inputs, backend, attrs }) => {
  const b = backend as WasmBackend;
  const { cross, fNormSq, rNormSq, radii, mask } = inputs as Record<'cross' | 'fNormSq' | 'rNormSq' | 'radii' | 'mask', TensorInfo>;
  const { k, eps } = attrs as unknown as { k: number; eps: number };
  const native = nativeKernels(b)!;
  const [B, R] = cross.shape as [number, number];
  const kth = b.makeOutput([B], 'int32');
  const realism = b.makeOutput([B], 'float32');
  const best = b.makeOutput([k], 'float32');
  const bestIndex = b.makeOutput([k], 'int32');
  try {
    native.nearestRealism(
      native.offset(cross), native.offset(fNormSq), native.offset(rNormSq), native.offset(radii), native.offset(mask),
      B, R, k, eps, native.offset(best), native.offset(bestIndex), native.offset(kth), native.offset(realism),
    );
  } finally {
    b.disposeData(best.dataId);
    b.disposeData(bestIndex.dataId);
  }
  return [kth, realism];
};

/**
 * Q's k-th nearest reference index [B] and realism score [B] from cross = f·rᵀ [B, R] and
 * fNormSq = ‖f‖² [B, 1], as score.ts computes them: relu(fNormSq + rNormSq − cross·2) for the
 * squared distances, top-k of their negation for the index, max((radii / sqrt(d2 + eps))·mask)
 * for the realism. The same values from one compiled pass on wasm; undefined where that is not
 * available (another backend, no compiled module, k outside 1…16 or above R, a NaN in a row),
 * and the caller computes them with TF.js's ops.
 */
export function fusedNearestAndRealism(
  cross: tf.Tensor2D, fNormSq: tf.Tensor2D, rNormSq: tf.Tensor1D, radii: tf.Tensor1D, mask: tf.Tensor1D, k: number, eps: number,
): { kth: tf.Tensor1D; realism: tf.Tensor1D } | undefined {
  const [B, R] = cross.shape;
  const float = [cross, fNormSq, rNormSq, radii, mask].every((t) => t.dtype === 'float32');
  if (tf.getBackend() !== 'wasm' || !float || !nativeKernels(tf.backend()) || !Number.isInteger(k) || k < 1 || k > TOPK_SCAN_MAX_K || k > R
    || fNormSq.size !== B || rNormSq.size !== R || radii.size !== R || mask.size !== R) {
    return undefined;
  }
  const [kth, realism] = tf.engine().runKernel(NEAREST_REALISM, { cross, fNormSq, rNormSq, radii, mask }, { k, eps } as unknown as NamedAttrMap) as [tf.Tensor1D, tf.Tensor1D];
  if ((kth.dataSync() as Int32Array).includes(-1)) {
    tf.dispose([kth, realism]);
    return undefined;
  }
  return { kth, realism };
}

/**
 * MaxPool's gradient where the windows tile the input (stride equal to the window, no padding, no
 * dilation: LeNet's 2×2 pools), compiled (kernels/conv.c) with the stock kernel's rule for which
 * pixel gets dy and its exact values (tested with ties, NaN, infinities and signed zeros). The stock kernel visits every window that may cover each pixel: 19 ms
 * for 64×28×28×16, the largest kernel of a generator step that back-propagates Q. Other
 * geometries go to the stock kernel.
 */
const maxPoolGradKernel: KernelFunc = ({ inputs, backend, attrs }) => {
  const b = backend as WasmBackend;
  const { dy, input } = inputs as { dy: TensorInfo; input: TensorInfo };
  const { filterSize, strides, pad, dimRoundingMode } = attrs as unknown as {
    filterSize: number | [number, number]; strides: number | [number, number]; pad: 'valid' | 'same' | number; dimRoundingMode?: 'floor' | 'round' | 'ceil';
  };
  const native = nativeKernels(b);
  const info = tf.backend_util.computePool2DInfo(input.shape as [number, number, number, number], filterSize, strides, 1, pad, dimRoundingMode);
  const tiles = info.strideHeight === info.effectiveFilterHeight && info.strideWidth === info.effectiveFilterWidth
    && info.dilationHeight === 1 && info.dilationWidth === 1 && info.padInfo.top === 0 && info.padInfo.left === 0
    && info.outHeight * info.strideHeight <= info.inHeight && info.outWidth * info.strideWidth <= info.inWidth;
  if (!native || !tiles || input.dtype !== 'float32' || dy.dtype !== 'float32' || tf.util.sizeFromShape(input.shape) === 0) {
    return stock.get('MaxPoolGrad')!.kernelFunc({ inputs, backend, attrs });
  }
  const dx = b.makeOutput(input.shape, 'float32');
  native.maxPoolGrad(
    native.offset(input), native.offset(dy), native.offset(dx), info.batchSize, info.inHeight, info.inWidth, info.inChannels,
    info.outHeight, info.outWidth, info.effectiveFilterHeight, info.effectiveFilterWidth,
  );
  return dx;
};

/** Each row's k-th smallest value of x [rows, n], as [rows, 1] (kernels/knn.c, by selection). */
const KTH_SMALLEST = 'QgateKthSmallest';
const kthSmallestKernel: KernelFunc = ({ inputs, backend, attrs }) => {
  const b = backend as WasmBackend;
  const { x } = inputs as { x: TensorInfo };
  const { k } = attrs as unknown as { k: number };
  const native = nativeKernels(b)!;
  const [rows, n] = x.shape as [number, number];
  const out = b.makeOutput([rows, 1], 'float32');
  const scratch = b.makeOutput([n], 'float32');
  try {
    native.kthSmallest(native.offset(x), native.offset(scratch), native.offset(out), rows, n, k);
  } finally {
    b.disposeData(scratch.dataId);
  }
  return out;
};

/**
 * Each row's k-th smallest value of x [rows, n] as [rows, 1], by one compiled selection per row
 * where TF.js sorts a top-k (1.1 ms for noise's 64 rows of 676, k = 169). The value is one of the
 * row's elements, the one a sort puts at position k − 1. Undefined where it is not available
 * (another backend, no compiled module) or declined (a NaN or −0 in a row, whose place only
 * TF.js's sort defines), and the caller sorts.
 */
export function fusedKthSmallest(x: tf.Tensor2D, k: number): tf.Tensor2D | undefined {
  const [, n] = x.shape;
  if (tf.getBackend() !== 'wasm' || x.dtype !== 'float32' || !nativeKernels(tf.backend()) || !Number.isInteger(k) || k < 1 || k > n || x.size === 0) {
    return undefined;
  }
  const out = tf.engine().runKernel(KTH_SMALLEST, { x }, { k } as unknown as NamedAttrMap) as tf.Tensor2D;
  if ((out.dataSync() as Float32Array).some((v) => Number.isNaN(v))) {
    out.dispose();
    return undefined;
  }
  return out;
}

/** The permutation that swaps the last two axes of a rank-r tensor. */
function swapLastTwo(rank: number): number[] {
  const perm = [...Array(rank).keys()];
  [perm[rank - 2], perm[rank - 1]] = [perm[rank - 1]!, perm[rank - 2]!];
  return perm;
}

/**
 * Transpose of the last two axes, compiled (kernels/transpose.c): the stock kernel took 0.09–0.13 ms
 * for a 128×784 weight matrix, this 0.03. Other permutations and dtypes go to the stock kernel.
 */
const transposeKernel: KernelFunc = ({ inputs, backend, attrs }) => {
  const b = backend as WasmBackend;
  const { x } = inputs as { x: TensorInfo };
  const { perm } = attrs as unknown as { perm: number[] };
  const rank = x.shape.length;
  const swapsLastTwo = rank >= 2 && perm.every((p, i) => p === (i === rank - 2 ? rank - 1 : i === rank - 1 ? rank - 2 : i));
  const native = nativeKernels(b);
  if (!native || !swapsLastTwo || x.dtype !== 'float32' || tf.util.sizeFromShape(x.shape) === 0) {
    return stock.get('Transpose')!.kernelFunc({ inputs, backend, attrs });
  }
  const [rows, cols] = x.shape.slice(-2) as [number, number];
  const out = b.makeOutput([...x.shape.slice(0, -2), cols, rows], 'float32');
  native.transpose(native.offset(x), native.offset(out), tf.util.sizeFromShape(x.shape.slice(0, -2)), rows, cols);
  return out;
};

/** How many times each tensor has been a matmul's right operand, up to REUSED. */
const rightOperandUses = new WeakMap<tf.DataId, number>();
/**
 * A right operand used this many times is taken for a long-lived weight: from then on XNNPACK,
 * whose packing of it is cached, does the product. In a training step no right operand is used
 * more than three times (a discriminator's first-layer weights: real batch, fake batch, G step).
 */
const REUSED = 4;
/**
 * From this many rows of A up, XNNPACK runs the product: its packing is spread over many rows, and
 * it splits the rows between the backend's threads where the compiled kernel has one. At 784 rows
 * (784×64·64×128) XNNPACK on 2 threads took 0.29–0.33 ms with a new B against 0.37.
 */
const MANY_ROWS = 256;
let compiledGemm = true;

/**
 * BatchMatMul and _FusedMatMul. Transposed operands are transposed first (TF.js's transposed
 * matmul is a scalar loop: 13 ms against 1.0 for transpose + plain matmul at 64×784·784×128). The
 * product of one float32 matrix pair, with a bias per column or none and a linear or ReLU
 * activation, runs in the compiled kernel (kernels/gemm.c) when its right operand is new to
 * XNNPACK and A has fewer than MANY_ROWS rows; everything else on XNNPACK. The two give the same
 * bits, so the choice changes only the time.
 */
function matMulKernel(original: KernelConfig): KernelFunc {
  return (args) => {
    const { inputs, backend, attrs } = args;
    const b = backend as WasmBackend;
    const { transposeA, transposeB, activation = 'linear' } = attrs as unknown as { transposeA: boolean; transposeB: boolean; activation?: string };
    const { bias, preluActivationWeights } = inputs as { bias?: TensorInfo; preluActivationWeights?: TensorInfo };
    // Looked up per call: withStockWasmKernels may have put the stock Transpose back.
    const transpose = tf.getKernel('Transpose', 'wasm')!;
    const temporaries: TensorInfo[] = [];
    const transposed = (t: TensorInfo): TensorInfo => {
      const out = transpose.kernelFunc({ inputs: { x: t }, backend, attrs: { perm: swapLastTwo(t.shape.length) } }) as TensorInfo;
      temporaries.push(out);
      return out;
    };
    try {
      const x = transposeA ? transposed(inputs.a!) : inputs.a!;
      const y = transposeB ? transposed(inputs.b!) : inputs.b!;
      const [M, K] = x.shape.slice(-2) as [number, number];
      const N = y.shape[y.shape.length - 1]!;
      const single = (t: TensorInfo) => t.shape.length >= 2 && t.shape.slice(0, -2).every((d) => d === 1);
      // A transposed right operand is a new tensor to XNNPACK every time.
      const uses = transposeB ? 0 : rightOperandUses.get(y.dataId) ?? 0;
      if (!transposeB) rightOperandUses.set(y.dataId, Math.min(uses + 1, REUSED));
      const native = compiledGemm ? nativeKernels(b) : undefined;
      // The stock kernel takes only a rank-1 bias (and throws for others, which it still does).
      const columnBias = bias === undefined || (bias.dtype === 'float32' && bias.shape.length === 1 && bias.shape[0] === N);
      if (native && uses < REUSED && M < MANY_ROWS && M * K * N > 0 && x.dtype === 'float32' && y.dtype === 'float32' && single(x) && single(y)
        && x.shape.length === y.shape.length && columnBias && !preluActivationWeights && (activation === 'linear' || activation === 'relu')) {
        const out = b.makeOutput([...x.shape.slice(0, -2), M, N], 'float32');
        native.gemm(native.offset(x), native.offset(y), bias ? native.offset(bias) : 0, bias ? 1 : 0, activation === 'relu' ? 1 : 0, native.offset(out), M, K, N);
        return out;
      }
      if (!transposeA && !transposeB) return original.kernelFunc(args);
      return original.kernelFunc({ inputs: { ...inputs, a: x, b: y }, backend, attrs: { ...attrs, transposeA: false, transposeB: false } as NamedAttrMap });
    } finally {
      for (const t of temporaries) b.disposeData(t.dataId);
    }
  };
}

/**
 * Runs `fn` with every matmul on XNNPACK (transposed operands still transposed first): for tests
 * and benchmarks, which compare the compiled kernel with it.
 */
export function withXnnpackMatMul<T>(fn: () => T): T {
  const before = compiledGemm;
  compiledGemm = false;
  try {
    return fn();
  } finally {
    compiledGemm = before;
  }
}

let registered = false;
/** The stock kernels and gradients qgate replaced, kept so tests and benchmarks can compare. */
const stock = new Map<string, KernelConfig | undefined>();
const stockGradients = new Map<string, tf.GradConfig>();

/**
 * Registers qgate's wasm kernels. Idempotent; call it after `@tensorflow/tfjs-backend-wasm` has been
 * imported (which registers the stock kernels this wraps).
 */
export function registerQgateWasmKernels(): void {
  if (registered) return;
  for (const name of ['BatchMatMul', '_FusedMatMul']) {
    const original = tf.getKernel(name, 'wasm');
    if (original === undefined) throw new Error(`wasm kernel ${name} is not registered; import the wasm backend first`);
    stock.set(name, original);
    tf.unregisterKernel(name, 'wasm');
    tf.registerKernel({ ...original, kernelFunc: matMulKernel(original) });
  }
  const stockTopK = tf.getKernel('TopK', 'wasm');
  if (stockTopK === undefined) throw new Error('wasm kernel TopK is not registered; import the wasm backend first');
  stock.set('TopK', stockTopK);
  tf.unregisterKernel('TopK', 'wasm');
  // The stock setup still runs when the backend starts: the kernel falls back to it.
  tf.registerKernel({ ...stockTopK, kernelFunc: topKKernel(stockTopK) });
  for (const [kernelName, kernelFunc] of [
    ['LeakyRelu', leakyReluKernel],
    ['Identity', shareKernel('Identity')],
    ['Cast', shareKernel('Cast')],
    ['Sum', reduceLeadingKernel('Sum')],
    ['Mean', reduceLeadingKernel('Mean')],
    ['FusedBatchNorm', fusedBatchNormKernel],
    ['Conv2DBackpropFilter', conv2dBackpropFilterKernel],
    ['Conv2DBackpropInput', conv2dBackpropInputKernel],
    ['Tile', tileKernel],
    ['Tanh', tanhKernel],
    ['Transpose', transposeKernel],
    ['MaxPoolGrad', maxPoolGradKernel],
  ] as const) {
    const original = tf.getKernel(kernelName, 'wasm');
    stock.set(kernelName, original);
    if (original) tf.unregisterKernel(kernelName, 'wasm');
    // The stock setup (which binds the wasm function) still runs when the backend starts, for the
    // kernels that defer to it.
    tf.registerKernel({ ...original, kernelName, backendName: 'wasm', kernelFunc });
  }
  for (const [name, wrap] of [
    ['LeakyRelu', leakyReluGradient],
    ['Sum', (g: tf.GradConfig) => reductionGradient(g, 'Sum')],
    ['Mean', (g: tf.GradConfig) => reductionGradient(g, 'Mean')],
    ['Tanh', tanhGradient],
  ] as const) {
    const grad = tf.getGradient(name);
    if (!grad) continue;
    stockGradients.set(name, grad);
    tf.registerGradient(wrap(grad));
  }
  tf.registerKernel({ kernelName: TANH_GRAD, backendName: 'wasm', kernelFunc: tanhGradKernel });
  tf.registerKernel({ kernelName: LEAKY_RELU_GRAD, backendName: 'wasm', kernelFunc: leakyReluGradKernel });
  tf.registerKernel({ kernelName: NEAREST_REALISM, backendName: 'wasm', kernelFunc: nearestRealismKernel });
  tf.registerKernel({ kernelName: KTH_SMALLEST, backendName: 'wasm', kernelFunc: kthSmallestKernel });
  registered = true;
}

/**
 * Runs `fn` with TF.js's stock wasm kernels and gradients in place of qgate's (a kernel that was
 * missing stays qgate's), then puts qgate's back; `only` limits the swap to the kernels and
 * gradients it names. For tests and benchmarks: the stock kernels are what qgate's must equal, and
 * what they improve on.
 */
export function withStockWasmKernels<T>(fn: () => T, only?: { kernels?: string[]; gradients?: string[] }): T {
  const kernelNames = [...stock.keys()].filter((name) => !only || (only.kernels ?? []).includes(name));
  const gradientNames = [...stockGradients.keys()].filter((name) => !only || (only.gradients ?? []).includes(name));
  const ours = kernelNames.map((name) => tf.getKernel(name, 'wasm'));
  const ourGradients = gradientNames.map((name) => tf.getGradient(name)!);
  const swap = (configs: Array<KernelConfig | undefined>) => {
    for (const c of configs) {
      if (!c) continue;
      tf.unregisterKernel(c.kernelName, 'wasm');
      tf.registerKernel(c);
      // Kernels set up when the backend started; one registered later (a replaced stock kernel) is set up here.
      c.setupFunc?.(tf.backend());
    }
  };
  swap(kernelNames.map((name) => stock.get(name)));
  for (const name of gradientNames) tf.registerGradient(stockGradients.get(name)!);
  try {
    return fn();
  } finally {
    swap(ours);
    for (const g of ourGradients) tf.registerGradient(g);
  }
}
