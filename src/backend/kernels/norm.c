/*
 * Batch norm's kernels on the TF.js wasm backend's heap (see conv.c for the rules: no stack, no
 * data, no calls, no allocation; pointers are tensors' byte offsets).
 *
 * Each computes what TF.js's stock wasm kernel computes, in the same order and precision, so the
 * bits are the same (test/native-kernels.test.ts compares them with the stock kernels): the stock
 * kernels are generic scalar loops (Sum and Mean first transpose the reduced axes to the end), and
 * took 40 ms of a DCGAN step on batch norm's statistics, normalization and gradients.
 */
#include <wasm_simd128.h>

/* out[c] = x[0][c] + x[1][c] + ... + x[rows-1][c] in float32, from 0 and in row order: the stock
 * Sum's order after its transpose. Four columns at a time; each column's order is unchanged. */
__attribute__((export_name("sum_leading")))
void sum_leading(const float *x, float *out, int rows, int cols) {
  for (int c = 0; c < cols; c++) out[c] = 0.0f;
  for (int r = 0; r < rows; r++) {
    const float *row = x + r * cols;
    int c = 0;
    for (; c + 4 <= cols; c += 4)
      wasm_v128_store(out + c, wasm_f32x4_add(wasm_v128_load(out + c), wasm_v128_load(row + c)));
    for (; c < cols; c++) out[c] += row[c];
  }
}

/* The stock Mean: the sum above divided by the count, in float32. */
__attribute__((export_name("mean_leading")))
void mean_leading(const float *x, float *out, int rows, int cols) {
  sum_leading(x, out, rows, cols);
  const float n = (float)rows;
  for (int c = 0; c < cols; c++) out[c] = out[c] / n;
}

/* Inference-form batch norm over [rows, C] with per-channel (stride 1) or scalar (stride 0)
 * parameters, as the stock kernel computes it:
 *   out = offset + (x - mean) * scale / sqrtf(variance + epsilon)
 * where (x - mean) * scale is float, the square root is float, and the division and the addition
 * are in double (the stock kernel keeps the square roots in a vector<double>).
 * Four channels at a time down all rows, so each channel's parameters and square root are computed
 * once and the double divisions run two to a vector: the same operations on the same values. */
__attribute__((export_name("batch_norm")))
void batch_norm(const float *x, const float *mean, int mean_stride, const float *variance, int variance_stride,
                const float *offset, int offset_stride, int has_offset, const float *scale, int scale_stride,
                int has_scale, float epsilon, float *out, int rows, int C) {
  int c0 = 0;
  for (; c0 + 4 <= C; c0 += 4) {
    float m[4], s[4], b[4], f[4];
    for (int j = 0; j < 4; j++) {
      const int c = c0 + j;
      m[j] = mean[c * mean_stride];
      s[j] = has_scale ? scale[c * scale_stride] : 1.0f;
      b[j] = has_offset ? offset[c * offset_stride] : 0.0f;
      f[j] = __builtin_sqrtf(variance[c * variance_stride] + epsilon);
    }
    const v128_t vm = wasm_f32x4_make(m[0], m[1], m[2], m[3]), vs = wasm_f32x4_make(s[0], s[1], s[2], s[3]);
    const v128_t b_lo = wasm_f64x2_make(b[0], b[1]), b_hi = wasm_f64x2_make(b[2], b[3]);
    const v128_t f_lo = wasm_f64x2_make(f[0], f[1]), f_hi = wasm_f64x2_make(f[2], f[3]);
    for (int r = 0; r < rows; r++) {
      const v128_t centered = wasm_f32x4_mul(wasm_f32x4_sub(wasm_v128_load(x + r * C + c0), vm), vs);
      const v128_t lo = wasm_f64x2_add(b_lo, wasm_f64x2_div(wasm_f64x2_promote_low_f32x4(centered), f_lo));
      const v128_t hi = wasm_f64x2_add(b_hi, wasm_f64x2_div(wasm_f64x2_promote_low_f32x4(wasm_i32x4_shuffle(centered, centered, 2, 3, 0, 1)), f_hi));
      wasm_v128_store(out + r * C + c0, wasm_i32x4_shuffle(wasm_f32x4_demote_f64x2_zero(lo), wasm_f32x4_demote_f64x2_zero(hi), 0, 1, 4, 5));
    }
  }
  for (int r = 0; r < rows; r++) {
    const float *xr = x + r * C;
    float *o = out + r * C;
    for (int c = c0; c < C; c++) {
      const float s = has_scale ? scale[c * scale_stride] : 1.0f;
      const float b = has_offset ? offset[c * offset_stride] : 0.0f;
      const double factor = (double)__builtin_sqrtf(variance[c * variance_stride] + epsilon);
      const float centered = (xr[c] - mean[c * mean_stride]) * s;
      o[c] = (float)((double)b + (double)centered / factor);
    }
  }
}
