/*
 * im2col and col2im for NHWC tensors, and MaxPool's gradient, run on the TF.js wasm backend's own
 * heap (src/backend/native-kernels.ts loads this with the backend's memory as its import).
 *
 * im2col and col2im compute what the JavaScript functions im2colTransposed and col2im of
 * src/backend/wasm-kernels.ts compute: col2im the same sums in the same order, im2col the same
 * copies in another order; so the same bits (the tests compare them). As JavaScript they cost
 * 2-4 ns per element and took about 6 ms each for a DCGAN layer. MaxPool's gradient gives the
 * stock wasm kernel's bits (see max_pool_grad).
 *
 * Rules that keep them safe on a heap they do not own: no static data, no stack (only scalars,
 * which stay in wasm locals), no calls, no allocation. Every pointer is a tensor's byte offset
 * given by the caller. scripts/build-wasm-kernels.sh builds them and checks the first three.
 */
#include <wasm_simd128.h>

/* The input pixel under tap (kh, kw) of the window at column n = (b, oh, ow), or 0 where the
 * window hangs over the padding. */
static inline const float *tap(const float *x, int n, int kh, int kw, int H, int W, int C, int Ho, int Wo,
                               int sh, int sw, int top, int left) {
  const int ow = n % Wo, t = n / Wo, oh = t % Ho, b = t / Ho;
  const int ih = oh * sh + kh - top, iw = ow * sw + kw - left;
  if (ih < 0 || ih >= H || iw < 0 || iw >= W) return 0;
  return x + ((b * H + ih) * W + iw) * C;
}

/* Column n = (b, oh, ow) of the [KH*KW*C, N] matrix `out` gets the input values under the
 * filter at that output position, zero where the window hangs over the padding.
 * Four columns at a time: four channels of each column's pixel are loaded as one vector and the
 * 4x4 block is transposed, so each row of `out` gets four adjacent values in one store instead of
 * one value per cache line: 0.51 against 1.24 ms, one column at a time, for the DCGAN's 512 x 3136
 * patch matrix. It only copies, so the values are the same whatever the order. */
__attribute__((export_name("im2col_t")))
void im2col_t(const float *x, float *out, int B, int H, int W, int C, int Ho, int Wo,
              int KH, int KW, int sh, int sw, int top, int left) {
  const int N = B * Ho * Wo;
  const v128_t zero = wasm_f32x4_splat(0.0f);
  int n = 0;
  for (; n + 4 <= N; n += 4)
    for (int kh = 0; kh < KH; kh++)
      for (int kw = 0; kw < KW; kw++) {
        const float *s0 = tap(x, n, kh, kw, H, W, C, Ho, Wo, sh, sw, top, left);
        const float *s1 = tap(x, n + 1, kh, kw, H, W, C, Ho, Wo, sh, sw, top, left);
        const float *s2 = tap(x, n + 2, kh, kw, H, W, C, Ho, Wo, sh, sw, top, left);
        const float *s3 = tap(x, n + 3, kh, kw, H, W, C, Ho, Wo, sh, sw, top, left);
        float *o = out + (kh * KW + kw) * C * N + n;
        int c = 0;
        for (; c + 4 <= C; c += 4, o += 4 * N) {
          const v128_t a = s0 ? wasm_v128_load(s0 + c) : zero, b = s1 ? wasm_v128_load(s1 + c) : zero;
          const v128_t e = s2 ? wasm_v128_load(s2 + c) : zero, d = s3 ? wasm_v128_load(s3 + c) : zero;
          const v128_t ab_lo = wasm_i32x4_shuffle(a, b, 0, 4, 1, 5), ab_hi = wasm_i32x4_shuffle(a, b, 2, 6, 3, 7);
          const v128_t ed_lo = wasm_i32x4_shuffle(e, d, 0, 4, 1, 5), ed_hi = wasm_i32x4_shuffle(e, d, 2, 6, 3, 7);
          wasm_v128_store(o, wasm_i64x2_shuffle(ab_lo, ed_lo, 0, 2));
          wasm_v128_store(o + N, wasm_i64x2_shuffle(ab_lo, ed_lo, 1, 3));
          wasm_v128_store(o + 2 * N, wasm_i64x2_shuffle(ab_hi, ed_hi, 0, 2));
          wasm_v128_store(o + 3 * N, wasm_i64x2_shuffle(ab_hi, ed_hi, 1, 3));
        }
        for (; c < C; c++, o += N) {
          o[0] = s0 ? s0[c] : 0.0f;
          o[1] = s1 ? s1[c] : 0.0f;
          o[2] = s2 ? s2[c] : 0.0f;
          o[3] = s3 ? s3[c] : 0.0f;
        }
      }
  for (; n < N; n++)
    for (int kh = 0; kh < KH; kh++)
      for (int kw = 0; kw < KW; kw++) {
        const float *s = tap(x, n, kh, kw, H, W, C, Ho, Wo, sh, sw, top, left);
        float *o = out + (kh * KW + kw) * C * N + n;
        for (int c = 0; c < C; c++, o += N) *o = s ? s[c] : 0.0f;
      }
}

/*
 * col2im for one channel and stride 1, written as a gather: each output pixel sums the columns
 * that cover it, in the order col2im's scatter adds them (windows in increasing (oh, ow), which is
 * decreasing (kh, kw)), from 0. So the same additions in the same order, the same bits; but the
 * sum stays in a register instead of a load, an add and a store per tap into memory just written.
 * With one channel the scatter has nothing to vectorize: 8.1 against 2.6 ms for φ's 64×28×28
 * input gradient (5×5 taps). With stride 2 the gather was slower (1.24 against 0.89 ms for the
 * DCGAN generator's output layer), so that keeps the scatter.
 */
static void col2im_one_channel(const float *cols, float *out, int B, int H, int W, int Ho, int Wo,
                               int KH, int KW, int top, int left) {
  const int K = KH * KW;
  for (int b = 0; b < B; b++)
    for (int ih = 0; ih < H; ih++)
      for (int iw = 0; iw < W; iw++) {
        float acc = 0.0f;
        for (int kh = KH - 1; kh >= 0; kh--) {
          const int oh = ih + top - kh;
          if (oh < 0 || oh >= Ho) continue;
          const float *row = cols + (b * Ho + oh) * Wo * K + kh * KW;
          for (int kw = KW - 1; kw >= 0; kw--) {
            const int ow = iw + left - kw;
            if (ow < 0 || ow >= Wo) continue;
            acc = acc + row[ow * K + kw];
          }
        }
        out[(b * H + ih) * W + iw] = acc;
      }
}

/* The adjoint of im2col: each row (b, oh, ow) of the [N, KH*KW*C] matrix `cols` is added back
 * into `out` under its window, rows in order, so every output element sums its terms in the
 * same order as the JavaScript version. */
__attribute__((export_name("col2im")))
void col2im(const float *cols, float *out, int B, int H, int W, int C, int Ho, int Wo,
            int KH, int KW, int sh, int sw, int top, int left) {
  if (C == 1 && sh == 1 && sw == 1) {
    col2im_one_channel(cols, out, B, H, W, Ho, Wo, KH, KW, top, left);
    return;
  }
  const int size = B * H * W * C;
  for (int i = 0; i < size; i++) out[i] = 0.0f;
  const float *o = cols;
  for (int b = 0; b < B; b++)
    for (int oh = 0; oh < Ho; oh++)
      for (int ow = 0; ow < Wo; ow++)
        for (int kh = 0; kh < KH; kh++) {
          const int ih = oh * sh + kh - top;
          for (int kw = 0; kw < KW; kw++, o += C) {
            const int iw = ow * sw + kw - left;
            if (ih < 0 || ih >= H || iw < 0 || iw >= W) continue;
            float *d = out + ((b * H + ih) * W + iw) * C;
            int c = 0;
            for (; c + 4 <= C; c += 4)
              wasm_v128_store(d + c, wasm_f32x4_add(wasm_v128_load(d + c), wasm_v128_load(o + c)));
            for (; c < C; c++) d[c] += o[c];
          }
        }
}

/*
 * MaxPool's gradient for windows that tile the input (stride = window, no padding, no dilation):
 * each input pixel belongs to at most one window. The stock wasm kernel's rule, found by testing
 * it (test/native-kernels.test.ts): scanning the window in order, a value >= the largest so far
 * moves the maximum there, starting from FLT_MIN, the smallest positive normal float (it looks like
 * numeric_limits<float>::min() taken for the lowest float). So ties go to the last position and
 * NaN is never the maximum. A window with nothing at or above FLT_MIN (all ≤ 0, say) keeps the
 * starting position, which is the tensor's first element: only the very first window (batch 0,
 * top left, channel 0) then sends dy to its first pixel; every other such window sends it nowhere.
 * LeNet's pools come after a ReLU, so only all-zero windows meet that case, and the generator's
 * gradient through them is 0 either way. Every pixel of the window gets 0 + dy·m, m being 1 at
 * the chosen position and 0 elsewhere, so −0 becomes +0 and an infinite or
 * NaN dy gives NaN to the other pixels too. The stock kernel visits every window that may cover
 * each pixel: 19 ms for LeNet's 64×28×28×16 → 64×14×14×16. Four channels at a time here.
 */
#define FLT_MIN_NORMAL 1.17549435e-38f /* 0x00800000 */

__attribute__((export_name("max_pool_grad")))
void max_pool_grad(const float *x, const float *dy, float *dx, int B, int H, int W, int C, int Ho, int Wo, int fh, int fw) {
  const v128_t zero = wasm_f32x4_splat(0.0f), one = wasm_f32x4_splat(1.0f), fmin = wasm_f32x4_splat(FLT_MIN_NORMAL);
  const int n = B * H * W * C;
  for (int i = 0; i < n; i++) dx[i] = 0.0f;
  for (int b = 0; b < B; b++)
    for (int yr = 0; yr < Ho; yr++)
      for (int yc = 0; yc < Wo; yc++) {
        const float *g = dy + ((b * Ho + yr) * Wo + yc) * C;
        const int corner = (b * H + yr * fh) * W + yc * fw;
        int c = 0;
        for (; c + 4 <= C; c += 4) {
          /* −1: no position (see above). */
          v128_t best = fmin, at = wasm_i32x4_splat(-1);
          if (b == 0 && yr == 0 && yc == 0 && c == 0) at = wasm_i32x4_replace_lane(at, 0, 0);
          for (int p = 0; p < fh * fw; p++) {
            const v128_t v = wasm_v128_load(x + (corner + (p / fw) * W + p % fw) * C + c);
            const v128_t more = wasm_f32x4_ge(v, best);
            best = wasm_v128_bitselect(v, best, more);
            at = wasm_v128_bitselect(wasm_i32x4_splat(p), at, more);
          }
          const v128_t gv = wasm_v128_load(g + c);
          for (int p = 0; p < fh * fw; p++) {
            const v128_t m = wasm_v128_and(one, wasm_i32x4_eq(at, wasm_i32x4_splat(p)));
            wasm_v128_store(dx + (corner + (p / fw) * W + p % fw) * C + c, wasm_f32x4_add(zero, wasm_f32x4_mul(gv, m)));
          }
        }
        for (; c < C; c++) {
          float best = FLT_MIN_NORMAL;
          int at = b == 0 && yr == 0 && yc == 0 && c == 0 ? 0 : -1;
          for (int p = 0; p < fh * fw; p++) {
            const float v = x[(corner + (p / fw) * W + p % fw) * C + c];
            if (v >= best) { best = v; at = p; }
          }
          for (int p = 0; p < fh * fw; p++) dx[(corner + (p / fw) * W + p % fw) * C + c] = 0.0f + g[c] * (p == at ? 1.0f : 0.0f);
        }
      }
}
