/**
 * qgate's kernels compiled to wasm (src/backend/kernels/*.c, built by `npm run build:wasm-kernels`)
 * and run directly on the TF.js wasm backend's heap: the module imports the backend's own memory,
 * so a kernel reads and writes tensors in place, by their byte offsets. They stand in for the
 * JavaScript loops of wasm-kernels.ts where those were the slow part of a kernel, and compute the
 * same values in the same order (the tests compare them bit for bit).
 *
 * If the module cannot be loaded, `nativeKernels` returns undefined and the callers keep their
 * JavaScript loops, after one warning.
 */
import { readFileSync } from 'node:fs';
import type * as tf from '@tensorflow/tfjs';
import { logger } from '../log.ts';

/** The part of the WebAssembly JS API used here (this project's TypeScript libs do not declare it). */
export interface WasmApi {
  Module: new (bytes: Uint8Array) => object;
  Instance: new (module: object, imports: Record<string, Record<string, unknown>>) => { exports: object };
  Memory: abstract new (...args: never[]) => { buffer: ArrayBufferLike };
}
export const wasmApi = (globalThis as unknown as { WebAssembly: WasmApi }).WebAssembly;

type Memory = InstanceType<WasmApi['Memory']>;

/** What the wasm backend object holds that these kernels need (it is not exported with types). */
interface BackendInternals {
  wasm: { asm?: { memory?: Memory }; wasmMemory?: Memory };
  dataIdMap: { get(dataId: tf.DataId): { memoryOffset: number } | undefined };
}

/** Geometry arguments, in conv.c's order: B, H, W, C, Ho, Wo, KH, KW, sh, sw, top, left. */
type ConvGeometry = [number, number, number, number, number, number, number, number, number, number, number, number];

export interface NativeKernels {
  /** Byte offset of a tensor's data on the heap. */
  offset(t: tf.TensorInfo): number;
  /** conv.c */
  im2colT(x: number, out: number, ...geometry: ConvGeometry): void;
  col2im(cols: number, out: number, ...geometry: ConvGeometry): void;
  /** conv.c: MaxPool's gradient for windows that tile the input (stride = window, no padding). */
  maxPoolGrad(x: number, dy: number, dx: number, B: number, H: number, W: number, C: number, Ho: number, Wo: number, fh: number, fw: number): void;
  /** norm.c: column sums and means of a [rows, cols] matrix. */
  sumLeading(x: number, out: number, rows: number, cols: number): void;
  meanLeading(x: number, out: number, rows: number, cols: number): void;
  /** optim.c: one Adam update of n elements into three new buffers. */
  adam(
    w: number, m: number, v: number, g: number, n: number, b1: number, oneMinusB1: number, b2: number, oneMinusB2: number,
    oneMinusAccB1: number, oneMinusAccB2: number, eps: number, negLr: number, wOut: number, mOut: number, vOut: number,
  ): void;
  /** norm.c: batch norm over [rows, C]; each parameter's stride is 1 (per channel) or 0 (one value). */
  batchNorm(
    x: number, mean: number, meanStride: number, variance: number, varianceStride: number,
    offset: number, offsetStride: number, hasOffset: number, scale: number, scaleStride: number, hasScale: number,
    epsilon: number, out: number, rows: number, C: number,
  ): void;
  /** activation.c: tanh with the stock kernel's bits, its gradient (1 − y²)·dy, and LeakyReLU and its gradient. */
  tanh(x: number, out: number, n: number): void;
  tanhGrad(y: number, dy: number, out: number, n: number): void;
  leakyRelu(x: number, out: number, n: number, alpha: number): void;
  leakyReluGrad(x: number, dy: number, out: number, n: number, alpha: number): void;
  /** transpose.c: out[b][c][r] = in[b][r][c]. */
  transpose(x: number, out: number, batch: number, rows: number, cols: number): void;
  /** gemm.c: out[M,N] = bias + A[M,K]·B[K,N], then ReLU if relu is 1; B read in place. */
  gemm(a: number, b: number, bias: number, hasBias: number, relu: number, out: number, M: number, K: number, N: number): void;
  /** knn.c: each row's k-th nearest reference and realism score from the products f·rᵀ. */
  nearestRealism(
    cross: number, fNormSq: number, rNormSq: number, radii: number, mask: number, B: number, R: number, k: number, eps: number,
    best: number, bestIndex: number, kth: number, realism: number,
  ): void;
  /** knn.c: each row's k-th smallest value, by selection on a copy in scratch (NaN for rows it declines). */
  kthSmallest(x: number, scratch: number, out: number, rows: number, n: number, k: number): void;
}

export function convGeometry(info: tf.backend_util.Conv2DInfo): ConvGeometry {
  return [
    info.batchSize, info.inHeight, info.inWidth, info.inChannels, info.outHeight, info.outWidth,
    info.filterHeight, info.filterWidth, info.strideHeight, info.strideWidth, info.padInfo.top, info.padInfo.left,
  ];
}

const loaded = new WeakMap<object, NativeKernels | null>();

/** The kernels bound to `backend`'s heap (instantiated once per backend), or undefined if they cannot load. */
export function nativeKernels(backend: tf.KernelBackend): NativeKernels | undefined {
  let k = loaded.get(backend);
  if (k === undefined) {
    try {
      k = instantiate(backend as unknown as BackendInternals);
    } catch (e) {
      logger.warn({ err: e }, 'qgate\'s compiled wasm kernels could not be loaded; using the JavaScript ones');
      k = null;
    }
    loaded.set(backend, k);
  }
  return k ?? undefined;
}

function instantiate(backend: BackendInternals): NativeKernels {
  const memory = backend.wasm.asm?.memory ?? backend.wasm.wasmMemory;
  if (!memory) throw new Error('the wasm backend does not expose its memory');
  // The threaded backend's memory is shared, and an imported memory must be declared as it is.
  const shared = typeof SharedArrayBuffer !== 'undefined' && memory.buffer instanceof SharedArrayBuffer;
  const load = (name: string) => {
    const file = new URL(`./kernels/${name}${shared ? '-shared' : ''}.wasm`, import.meta.url);
    return new wasmApi.Instance(new wasmApi.Module(readFileSync(file)), { env: { memory } }).exports as Record<string, (...args: number[]) => void>;
  };
  const conv = load('conv');
  const norm = load('norm');
  const optim = load('optim');
  const activation = load('activation');
  const layout = load('transpose');
  const gemm = load('gemm');
  const knn = load('knn');
  return {
    offset: (t) => {
      const entry = backend.dataIdMap.get(t.dataId);
      if (!entry) throw new Error('tensor data is not on this backend');
      return entry.memoryOffset;
    },
    im2colT: conv.im2col_t!,
    col2im: conv.col2im!,
    maxPoolGrad: conv.max_pool_grad!,
    sumLeading: norm.sum_leading!,
    meanLeading: norm.mean_leading!,
    batchNorm: norm.batch_norm!,
    adam: optim.adam!,
    tanh: activation.tanh!,
    tanhGrad: activation.tanh_grad!,
    leakyRelu: activation.leaky_relu!,
    leakyReluGrad: activation.leaky_relu_grad!,
    transpose: layout.transpose!,
    gemm: gemm.gemm!,
    nearestRealism: knn.nearest_realism!,
    kthSmallest: knn.kth_smallest!,
  };
}
