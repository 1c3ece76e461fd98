/*
 * One Adam update of a variable in one pass, on the TF.js wasm backend's heap (see conv.c for
 * the rules: no stack, no data, no calls, no allocation; pointers are tensors' byte offsets).
 *
 * TF.js's AdamOptimizer makes the same update as eleven tensor ops per variable, each rounded to
 * float32; this does the same operations in the same order, each rounded to float32 (wasm has no
 * fused multiply-add, and clang is told not to contract), so the bits are the same
 * (test/native-kernels.test.ts trains with both and compares). Per element:
 *   m' = m*b1 + g*(1-b1)          v' = v*b2 + g^2*(1-b2)
 *   w' = (m'/(1-b1^t)) / (sqrt(v'/(1-b2^t)) + eps) * (-lr) + w
 */
#include <wasm_simd128.h>

#pragma clang fp contract(off)

__attribute__((export_name("adam")))
void adam(const float *w, const float *m, const float *v, const float *g, int n,
          float b1, float one_minus_b1, float b2, float one_minus_b2,
          float one_minus_acc_b1, float one_minus_acc_b2, float eps, float neg_lr,
          float *w_out, float *m_out, float *v_out) {
  const v128_t B1 = wasm_f32x4_splat(b1), OB1 = wasm_f32x4_splat(one_minus_b1);
  const v128_t B2 = wasm_f32x4_splat(b2), OB2 = wasm_f32x4_splat(one_minus_b2);
  const v128_t A1 = wasm_f32x4_splat(one_minus_acc_b1), A2 = wasm_f32x4_splat(one_minus_acc_b2);
  const v128_t E = wasm_f32x4_splat(eps), L = wasm_f32x4_splat(neg_lr);
  int i = 0;
  for (; i + 4 <= n; i += 4) {
    const v128_t gi = wasm_v128_load(g + i);
    const v128_t mi = wasm_f32x4_add(wasm_f32x4_mul(wasm_v128_load(m + i), B1), wasm_f32x4_mul(gi, OB1));
    const v128_t vi = wasm_f32x4_add(wasm_f32x4_mul(wasm_v128_load(v + i), B2), wasm_f32x4_mul(wasm_f32x4_mul(gi, gi), OB2));
    const v128_t mh = wasm_f32x4_div(mi, A1);
    const v128_t vh = wasm_f32x4_div(vi, A2);
    const v128_t step = wasm_f32x4_mul(wasm_f32x4_div(mh, wasm_f32x4_add(wasm_f32x4_sqrt(vh), E)), L);
    wasm_v128_store(w_out + i, wasm_f32x4_add(step, wasm_v128_load(w + i)));
    wasm_v128_store(m_out + i, mi);
    wasm_v128_store(v_out + i, vi);
  }
  for (; i < n; i++) {
    const float gi = g[i];
    const float mi = m[i] * b1 + gi * one_minus_b1;
    const float vi = v[i] * b2 + (gi * gi) * one_minus_b2;
    const float mh = mi / one_minus_acc_b1;
    const float vh = vi / one_minus_acc_b2;
    w_out[i] = (mh / (__builtin_sqrtf(vh) + eps)) * neg_lr + w[i];
    m_out[i] = mi;
    v_out[i] = vi;
  }
}
