/*
 * im2col and col2im for NHWC tensors, run on the TF.js wasm backend's own heap
 * (src/backend/native-kernels.ts loads this with the backend's memory as its import).
 *
 * They are the JavaScript functions im2colTransposed and col2im of src/backend/wasm-kernels.ts,
 * statement for statement: the same values written in the same order, so the same bits (the
 * tests compare them). As JavaScript they cost 2-4 ns per element and took about 6 ms each for
 * a DCGAN layer; compiled with 128-bit SIMD they take 1.2 and 0.3 ms.
 *
 * Rules that keep them safe on a heap they do not own: no static data, no stack (only scalars,
 * which stay in wasm locals), no calls, no allocation. Every pointer is a tensor's byte offset
 * given by the caller. scripts/build-wasm-kernels.sh builds them and checks the first three.
 */
#include <wasm_simd128.h>

/* Column n = (b, oh, ow) of the [KH*KW*C, N] matrix `out` gets the input values under the
 * filter at that output position, zero where the window hangs over the padding. */
__attribute__((export_name("im2col_t")))
void im2col_t(const float *x, float *out, int B, int H, int W, int C, int Ho, int Wo,
              int KH, int KW, int sh, int sw, int top, int left) {
  const int N = B * Ho * Wo;
  int n = 0;
  for (int b = 0; b < B; b++)
    for (int oh = 0; oh < Ho; oh++)
      for (int ow = 0; ow < Wo; ow++, n++) {
        float *o = out + n;
        for (int kh = 0; kh < KH; kh++) {
          const int ih = oh * sh + kh - top;
          for (int kw = 0; kw < KW; kw++) {
            const int iw = ow * sw + kw - left;
            if (ih < 0 || ih >= H || iw < 0 || iw >= W) {
              for (int c = 0; c < C; c++, o += N) *o = 0.0f;
            } else {
              const float *s = x + ((b * H + ih) * W + iw) * C;
              for (int c = 0; c < C; c++, o += N) *o = s[c];
            }
          }
        }
      }
}

/* The adjoint of im2col: each row (b, oh, ow) of the [N, KH*KW*C] matrix `cols` is added back
 * into `out` under its window, rows in order, so every output element sums its terms in the
 * same order as the JavaScript version. */
__attribute__((export_name("col2im")))
void col2im(const float *cols, float *out, int B, int H, int W, int C, int Ho, int Wo,
            int KH, int KW, int sh, int sw, int top, int left) {
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
