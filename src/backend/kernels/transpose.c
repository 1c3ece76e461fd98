/*
 * The transpose of a batch of row-major matrices, for matmuls with transposed operands (see conv.c
 * for the rules these kernels keep: no static data, no stack, no calls, no allocation).
 *
 * XNNPACK's matmul is fast only untransposed, so src/backend/wasm-kernels.ts transposes a
 * transposed operand first. The stock Transpose kernel did that at about 4.5 ns per element: 0.47 ms
 * for a 128×784 weight matrix, as long as the 64×784·784×128 product after it. This moves 4×4
 * blocks through vector registers, so every load and store is four adjacent floats. It only
 * copies, so the values are the same bits.
 */
#include <wasm_simd128.h>

/* out[b][c][r] = in[b][r][c] for b < batch, r < rows, c < cols. */
__attribute__((export_name("transpose")))
void transpose(const float *in, float *out, int batch, int rows, int cols) {
  for (int b = 0; b < batch; b++, in += rows * cols, out += rows * cols) {
    int r = 0;
    for (; r + 4 <= rows; r += 4) {
      const float *i0 = in + r * cols, *i1 = i0 + cols, *i2 = i1 + cols, *i3 = i2 + cols;
      int c = 0;
      for (; c + 4 <= cols; c += 4) {
        const v128_t a = wasm_v128_load(i0 + c), b1 = wasm_v128_load(i1 + c);
        const v128_t e = wasm_v128_load(i2 + c), d = wasm_v128_load(i3 + c);
        const v128_t ab_lo = wasm_i32x4_shuffle(a, b1, 0, 4, 1, 5), ab_hi = wasm_i32x4_shuffle(a, b1, 2, 6, 3, 7);
        const v128_t ed_lo = wasm_i32x4_shuffle(e, d, 0, 4, 1, 5), ed_hi = wasm_i32x4_shuffle(e, d, 2, 6, 3, 7);
        float *o = out + c * rows + r;
        wasm_v128_store(o, wasm_i64x2_shuffle(ab_lo, ed_lo, 0, 2));
        wasm_v128_store(o + rows, wasm_i64x2_shuffle(ab_lo, ed_lo, 1, 3));
        wasm_v128_store(o + 2 * rows, wasm_i64x2_shuffle(ab_hi, ed_hi, 0, 2));
        wasm_v128_store(o + 3 * rows, wasm_i64x2_shuffle(ab_hi, ed_hi, 1, 3));
      }
      for (; c < cols; c++) {
        float *o = out + c * rows + r;
        o[0] = i0[c];
        o[1] = i1[c];
        o[2] = i2[c];
        o[3] = i3[c];
      }
    }
    for (; r < rows; r++)
      for (int c = 0; c < cols; c++) out[c * rows + r] = in[r * cols + c];
  }
}
