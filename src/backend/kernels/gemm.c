/*
 * out[M,N] = bias + A[M,K]·B[K,N] (then ReLU if asked), row-major, with B read where it lies (see
 * conv.c for the rules these kernels keep: no static data, no stack, no calls, no allocation).
 *
 * Why: XNNPACK, behind TF.js's wasm matmul, first packs B into its own layout and caches the
 * packing per tensor. That pays off for weights used many times, but in a training step every right
 * operand is new (weights after each update, gradients, transposed weights), and packing plus
 * operator setup cost up to as much as the product itself: 64×128·128×784 took 0.33 ms here
 * against 0.72 for XNNPACK with a new B. src/backend/wasm-kernels.ts decides which one runs.
 *
 * The sums are XNNPACK's, in XNNPACK's order: each output starts from its bias (or +0) and adds one
 * product at a time for k = 0, 1, …, K − 1, each product and each sum rounded to float32 (no fused
 * multiply-add). So the bits are the same (test/native-kernels.test.ts compares them), except
 * possibly the sign of a NaN.
 *
 * Order: B in panels of 8 columns, outermost. A panel (K rows of 32 bytes) stays in cache while
 * every 4-row block of A passes over it; the loop that went the other way, B streamed once per
 * row block, was no faster than XNNPACK.
 */
#include <wasm_simd128.h>

#pragma clang fp contract(off)

#define MAC(acc, s, v) acc = wasm_f32x4_add(acc, wasm_f32x4_mul(s, v))

__attribute__((export_name("gemm")))
void gemm(const float *A, const float *B, const float *bias, int has_bias, int relu, float *out, int M, int K, int N) {
  const v128_t zero = wasm_f32x4_splat(0.0f);
  int j = 0;
  for (; j + 8 <= N; j += 8) {
    const v128_t b0 = has_bias ? wasm_v128_load(bias + j) : zero;
    const v128_t b1 = has_bias ? wasm_v128_load(bias + j + 4) : zero;
    int i = 0;
    for (; i + 4 <= M; i += 4) {
      const float *a0 = A + i * K, *a1 = a0 + K, *a2 = a1 + K, *a3 = a2 + K;
      v128_t c00 = b0, c01 = b1, c10 = b0, c11 = b1, c20 = b0, c21 = b1, c30 = b0, c31 = b1;
      const float *bk = B + j;
      for (int k = 0; k < K; k++, bk += N) {
        const v128_t x0 = wasm_v128_load(bk), x1 = wasm_v128_load(bk + 4);
        const v128_t s0 = wasm_f32x4_splat(a0[k]), s1 = wasm_f32x4_splat(a1[k]);
        const v128_t s2 = wasm_f32x4_splat(a2[k]), s3 = wasm_f32x4_splat(a3[k]);
        MAC(c00, s0, x0); MAC(c01, s0, x1);
        MAC(c10, s1, x0); MAC(c11, s1, x1);
        MAC(c20, s2, x0); MAC(c21, s2, x1);
        MAC(c30, s3, x0); MAC(c31, s3, x1);
      }
      float *o = out + i * N + j;
      wasm_v128_store(o, c00); wasm_v128_store(o + 4, c01); o += N;
      wasm_v128_store(o, c10); wasm_v128_store(o + 4, c11); o += N;
      wasm_v128_store(o, c20); wasm_v128_store(o + 4, c21); o += N;
      wasm_v128_store(o, c30); wasm_v128_store(o + 4, c31);
    }
    for (; i < M; i++) {
      const float *a0 = A + i * K;
      v128_t c00 = b0, c01 = b1;
      const float *bk = B + j;
      for (int k = 0; k < K; k++, bk += N) {
        const v128_t s0 = wasm_f32x4_splat(a0[k]);
        MAC(c00, s0, wasm_v128_load(bk));
        MAC(c01, s0, wasm_v128_load(bk + 4));
      }
      wasm_v128_store(out + i * N + j, c00);
      wasm_v128_store(out + i * N + j + 4, c01);
    }
  }
  for (; j + 4 <= N; j += 4) {
    const v128_t b0 = has_bias ? wasm_v128_load(bias + j) : zero;
    for (int i = 0; i < M; i++) {
      const float *a0 = A + i * K;
      v128_t c00 = b0;
      const float *bk = B + j;
      for (int k = 0; k < K; k++, bk += N) MAC(c00, wasm_f32x4_splat(a0[k]), wasm_v128_load(bk));
      wasm_v128_store(out + i * N + j, c00);
    }
  }
  for (; j < N; j++)
    for (int i = 0; i < M; i++) {
      float c = has_bias ? bias[j] : 0.0f;
      const float *a = A + i * K;
      for (int k = 0; k < K; k++) c = c + a[k] * B[k * N + j];
      out[i * N + j] = c;
    }
  if (relu) {
    /* XNNPACK's clamp at 0: max(0, x) as 0 < x ? x : 0, which makes −0 (and NaN) +0. */
    int t = 0;
    const int n = M * N;
    for (; t + 4 <= n; t += 4) wasm_v128_store(out + t, wasm_f32x4_pmax(zero, wasm_v128_load(out + t)));
    for (; t < n; t++) out[t] = 0.0f < out[t] ? out[t] : 0.0f;
  }
}
