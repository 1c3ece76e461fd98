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
 * are in double (the stock kernel keeps the square roots in a vector<double>). */
__attribute__((export_name("batch_norm")))
void batch_norm(const float *x, const float *mean, int mean_stride, const float *variance, int variance_stride,
                const float *offset, int offset_stride, int has_offset, const float *scale, int scale_stride,
                int has_scale, float epsilon, float *out, int rows, int C) {
  for (int r = 0; r < rows; r++) {
    const float *xr = x + r * C;
    float *o = out + r * C;
    for (int c = 0; c < C; c++) {
      const float s = has_scale ? scale[c * scale_stride] : 1.0f;
      const float b = has_offset ? offset[c * offset_stride] : 0.0f;
      const double factor = (double)__builtin_sqrtf(variance[c * variance_stride] + epsilon);
      const float centered = (xr[c] - mean[c * mean_stride]) * s;
      o[c] = (float)((double)b + (double)centered / factor);
    }
  }
}
