/*
 * The end of Q's distance term in one pass over the reference products (see conv.c for the rules
 * these kernels keep: no static data, no stack, no calls, no allocation).
 *
 * src/quality/score.ts computes, for features f [B, D] and the reference features r [R, D]:
 *   d2     = relu((‖f‖² + ‖r‖²) − (f·rᵀ)·2)                     [B, R]
 *   kth    = the index of each row's k-th smallest d2 (ties to the lower index), by top-k of −d2
 *   realism = max over r of (radius_r / sqrt(d2 + ε)) · mask_r
 * as about a dozen kernels, each a pass over the [64, 10,000] matrix (about 4 ms of a 20 ms batch).
 * This is the same float32 operations in the same order for each element, in one pass: the
 * products f·rᵀ come from the matmul as before, and everything after them happens here. So the
 * indices and values are the same (test/quality.test.ts compares them with the unfused path).
 * A row with a NaN gets kth = −1, and the caller takes the unfused path, whose NaN order the stock
 * kernels define.
 */
#include <wasm_simd128.h>

#pragma clang fp contract(off)

/* Keeps best[0..k) the k smallest d2 seen, ascending, equal values in index order. */
static inline void keep(float d2, int r, float *best, int *best_i, int *filled, int k, float *worst) {
  if (*filled == k && !(d2 < *worst)) return;
  int j = *filled < k ? (*filled)++ : k - 1;
  while (j > 0 && best[j - 1] > d2) {
    best[j] = best[j - 1];
    best_i[j] = best_i[j - 1];
    j--;
  }
  best[j] = d2;
  best_i[j] = r;
  if (*filled == k) *worst = best[k - 1];
}

/* cross [B, R], fn [B], rn [R], radii [R], mask [R]; best [k] and best_i [k] are scratch. Writes
 * kth [B] and realism [B]. Needs 1 ≤ k ≤ R. */
__attribute__((export_name("nearest_realism")))
void nearest_realism(const float *cross, const float *fn, const float *rn, const float *radii, const float *mask,
                     int B, int R, int k, float eps, float *best, int *best_i, int *kth, float *realism) {
  const v128_t zero = wasm_f32x4_splat(0.0f), two = wasm_f32x4_splat(2.0f), veps = wasm_f32x4_splat(eps);
  for (int b = 0; b < B; b++) {
    const float *c = cross + b * R;
    const float f = fn[b];
    const v128_t vf = wasm_f32x4_splat(f);
    int filled = 0, nan = 0;
    /* Below the first k, every d2 is kept: worst is +∞ until then. */
    float worst = __builtin_inff();
    v128_t vmax = wasm_f32x4_splat(-__builtin_inff());
    int r = 0;
    for (; r + 4 <= R; r += 4) {
      const v128_t d = wasm_f32x4_sub(wasm_f32x4_add(vf, wasm_v128_load(rn + r)), wasm_f32x4_mul(wasm_v128_load(c + r), two));
      nan |= wasm_v128_any_true(wasm_f32x4_ne(d, d));
      const v128_t d2 = wasm_v128_and(d, wasm_f32x4_gt(d, zero)); /* relu; −0 and tiny negatives become +0 */
      const v128_t q = wasm_f32x4_mul(wasm_f32x4_div(wasm_v128_load(radii + r), wasm_f32x4_sqrt(wasm_f32x4_add(d2, veps))), wasm_v128_load(mask + r));
      vmax = wasm_v128_bitselect(q, vmax, wasm_f32x4_gt(q, vmax));
      /* The top-k list changes rarely once full: check the four lanes at once, then in index order. */
      if (wasm_v128_any_true(wasm_f32x4_lt(d2, wasm_f32x4_splat(worst))) || filled < k) {
        keep(wasm_f32x4_extract_lane(d2, 0), r, best, best_i, &filled, k, &worst);
        keep(wasm_f32x4_extract_lane(d2, 1), r + 1, best, best_i, &filled, k, &worst);
        keep(wasm_f32x4_extract_lane(d2, 2), r + 2, best, best_i, &filled, k, &worst);
        keep(wasm_f32x4_extract_lane(d2, 3), r + 3, best, best_i, &filled, k, &worst);
      }
    }
    /* The maximum of the lanes: the same value in any order, for values that are not NaN. */
    float mx = wasm_f32x4_extract_lane(vmax, 0);
    for (int l = 1; l < 4; l++) {
      const float v = l == 1 ? wasm_f32x4_extract_lane(vmax, 1) : l == 2 ? wasm_f32x4_extract_lane(vmax, 2) : wasm_f32x4_extract_lane(vmax, 3);
      if (v > mx) mx = v;
    }
    for (; r < R; r++) {
      const float d = (f + rn[r]) - c[r] * 2.0f;
      nan |= d != d;
      const float d2 = d > 0.0f ? d : 0.0f;
      const float q = (radii[r] / __builtin_sqrtf(d2 + eps)) * mask[r];
      if (q > mx) mx = q;
      keep(d2, r, best, best_i, &filled, k, &worst);
    }
    kth[b] = nan ? -1 : best_i[k - 1];
    realism[b] = mx;
  }
}

/* Swaps two floats of one row. */
static inline void swap(float *a, int i, int j) {
  const float t = a[i];
  a[i] = a[j];
  a[j] = t;
}

/*
 * Each row's k-th smallest value (k from 1), by selection on a copy of the row in `scratch`
 * (n floats): Hoare's quickselect with a median-of-three pivot, expected O(n). The value is one
 * of the row's own elements, so it is the one a sort would put at position k − 1, bit for bit,
 * unless two different bit patterns compare equal there: −0 and +0. A row with a −0 or a NaN
 * (whose order only TF.js's sort defines) gets a NaN, and the caller takes TF.js's top-k instead.
 */
__attribute__((export_name("kth_smallest")))
void kth_smallest(const float *x, float *scratch, float *out, int rows, int n, int k) {
  for (int r = 0; r < rows; r++) {
    const float *row = x + r * n;
    int odd = 0;
    for (int i = 0; i < n; i++) {
      const float v = row[i];
      odd |= v != v || (v == 0.0f && __builtin_signbit(v));
      scratch[i] = v;
    }
    if (odd) {
      out[r] = __builtin_nanf("");
      continue;
    }
    int lo = 0, hi = n - 1;
    const int target = k - 1;
    while (lo < hi) {
      /* Median of three as the pivot, which also keeps sorted rows from the worst case. */
      const int mid = lo + (hi - lo) / 2;
      if (scratch[mid] < scratch[lo]) swap(scratch, mid, lo);
      if (scratch[hi] < scratch[lo]) swap(scratch, hi, lo);
      if (scratch[hi] < scratch[mid]) swap(scratch, hi, mid);
      const float pivot = scratch[mid];
      int i = lo, j = hi;
      while (i <= j) {
        while (scratch[i] < pivot) i++;
        while (scratch[j] > pivot) j--;
        if (i <= j) {
          swap(scratch, i, j);
          i++;
          j--;
        }
      }
      if (target <= j) hi = j;
      else if (target >= i) lo = i;
      else break;
    }
    out[r] = scratch[target];
  }
}
