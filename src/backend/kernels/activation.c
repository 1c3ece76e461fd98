/*
 * Activations and their gradients with the stock TF.js wasm kernels' exact results (see conv.c for
 * the rules these kernels keep: no static data, no stack, no calls, no allocation): tanh, four
 * lanes at a time, and LeakyReLU.
 *
 * The stock kernel calls the C library's tanhf once per element: musl's, after FreeBSD's
 * (fdlibm's) expm1f-based tanhf, a scalar function with a branch for each range of |x|, which
 * took about 18 ns per element, 1.8 ms of a 12 ms MLP GAN step; this takes about 5. It is the
 * same algorithm with the same float32 operations in the same order, computed for every range in
 * every lane and blended by masks instead of branched on. test/native-kernels.test.ts compares it
 * with the stock kernel bit for bit on a sample of every range, and
 * `npm run bench:kernels -- --exhaustive-tanh` on all 2^32 float32 values.
 *
 *   tanh(x) = sign(x) · t(|x|), with e = expm1(2|x|) and
 *     |x| > 10                    t = 1                 (NaN stays NaN)
 *     log(3)/2 < |x| ≤ 10         t = 1 − 2/(e + 2)
 *     log(5/3)/2 < |x| ≤ log(3)/2 t = e/(e + 2)
 *     2^-126 ≤ |x| ≤ log(5/3)/2   t = −e'/(e' + 2),     e' = expm1(−2|x|)
 *     |x| < 2^-126                t = |x|
 */
#include <wasm_simd128.h>

#pragma clang fp contract(off)

/* fdlibm's expm1f constants (bit patterns in the comments). */
#define LN2_HI 6.9313812256e-01f /* 0x3f317180 */
#define LN2_LO 9.0580006145e-06f /* 0x3717f7d1 */
#define INVLN2 1.4426950216e+00f /* 0x3fb8aa3b */
#define Q1 -3.3333212137e-2f     /* -0x888868.0p-28 */
#define Q2 1.5807170421e-3f      /*  0xcf3010.0p-33 */

static inline v128_t f(float v) { return wasm_f32x4_splat(v); }
static inline v128_t u(unsigned v) { return wasm_i32x4_splat((int)v); }

/*
 * expm1(x) for x in [−0.52, 20], the arguments tanh gives it: fdlibm's argument reduction
 * x = k·ln2 + r (k = ±1 directly below 1.5·ln2, rounded from x/ln2 above; k = 0 below 0.5·ln2),
 * its rational approximation on r, and its reconstruction for each k, with every branch taken in
 * every lane and the right one selected. |x| < 2^-25 returns x.
 */
static inline v128_t expm1_4(v128_t x_in) {
  const v128_t tiny = wasm_u32x4_lt(wasm_v128_and(x_in, u(0x7fffffff)), u(0x33000000));
  /* Where the result is x itself, the arithmetic below runs on 1 instead: on |x| < 2^-63 its
   * squares would be subnormal, which x86 computes about a hundred times slower. */
  const v128_t x = wasm_v128_bitselect(f(1.0f), x_in, tiny);
  const v128_t hx = wasm_v128_and(x, u(0x7fffffff));
  const v128_t neg = wasm_i32x4_lt(x, u(0)); /* the sign bit, as a mask */
  const v128_t reduce = wasm_u32x4_gt(hx, u(0x3eb17218)); /* |x| > 0.5·ln2 */
  const v128_t near = wasm_u32x4_lt(hx, u(0x3f851592));   /* |x| < 1.5·ln2 */
  const v128_t k_near = wasm_v128_bitselect(u(-1), u(1), neg);
  /* Truncation toward zero, as C's float-to-int conversion. */
  const v128_t k_far = wasm_i32x4_trunc_sat_f32x4(
      wasm_f32x4_add(wasm_f32x4_mul(f(INVLN2), x), wasm_v128_bitselect(f(-0.5f), f(0.5f), neg)));
  const v128_t k = wasm_v128_and(wasm_v128_bitselect(k_near, k_far, near), reduce);
  /* With k = 0 these give hi = x, lo = 0, r = x, c = 0: the unreduced case's values exactly. */
  const v128_t t = wasm_f32x4_convert_i32x4(k);
  const v128_t hi = wasm_f32x4_sub(x, wasm_f32x4_mul(t, f(LN2_HI)));
  const v128_t lo = wasm_f32x4_mul(t, f(LN2_LO));
  const v128_t r = wasm_f32x4_sub(hi, lo);
  const v128_t c = wasm_f32x4_sub(wasm_f32x4_sub(hi, r), lo);

  const v128_t hfx = wasm_f32x4_mul(f(0.5f), r);
  const v128_t hxs = wasm_f32x4_mul(r, hfx);
  const v128_t r1 = wasm_f32x4_add(f(1.0f), wasm_f32x4_mul(hxs, wasm_f32x4_add(f(Q1), wasm_f32x4_mul(hxs, f(Q2)))));
  const v128_t tt = wasm_f32x4_sub(f(3.0f), wasm_f32x4_mul(r1, hfx));
  const v128_t e0 = wasm_f32x4_mul(hxs, wasm_f32x4_div(wasm_f32x4_sub(r1, tt), wasm_f32x4_sub(f(6.0f), wasm_f32x4_mul(r, tt))));

  /* k = 0 */
  const v128_t y0 = wasm_f32x4_sub(r, wasm_f32x4_sub(wasm_f32x4_mul(r, e0), hxs));
  const v128_t e = wasm_f32x4_sub(wasm_f32x4_sub(wasm_f32x4_mul(r, wasm_f32x4_sub(e0, c)), c), hxs);
  /* k = −1 */
  const v128_t ym1 = wasm_f32x4_sub(wasm_f32x4_mul(f(0.5f), wasm_f32x4_sub(r, e)), f(0.5f));
  /* k = 1 */
  const v128_t y1 = wasm_v128_bitselect(
      wasm_f32x4_mul(f(-2.0f), wasm_f32x4_sub(e, wasm_f32x4_add(r, f(0.25f)))),
      wasm_f32x4_add(f(1.0f), wasm_f32x4_mul(f(2.0f), wasm_f32x4_sub(r, e))),
      wasm_f32x4_lt(r, f(-0.25f)));
  /* 2 ≤ k ≤ 29: 2^k and 2^−k from their exponent bits. */
  const v128_t twopk = wasm_i32x4_shl(wasm_i32x4_add(u(0x7f), k), 23);
  const v128_t twomk = wasm_i32x4_shl(wasm_i32x4_sub(u(0x7f), k), 23);
  const v128_t yk = wasm_f32x4_mul(
      wasm_v128_bitselect(
          wasm_f32x4_add(wasm_f32x4_sub(r, e), wasm_f32x4_sub(f(1.0f), twomk)),
          wasm_f32x4_add(wasm_f32x4_sub(r, wasm_f32x4_add(e, twomk)), f(1.0f)),
          wasm_i32x4_lt(k, u(23))),
      twopk);

  v128_t y = wasm_v128_bitselect(y0, yk, wasm_i32x4_eq(k, u(0)));
  y = wasm_v128_bitselect(ym1, y, wasm_i32x4_eq(k, u(-1)));
  y = wasm_v128_bitselect(y1, y, wasm_i32x4_eq(k, u(1)));
  return wasm_v128_bitselect(x_in, y, tiny);
}

static inline v128_t tanh_4(v128_t x) {
  const v128_t sign = wasm_v128_and(x, u(0x80000000));
  const v128_t w = wasm_v128_and(x, u(0x7fffffff));
  const v128_t large = wasm_u32x4_gt(w, u(0x3f0c9f54)); /* |x| > log(3)/2, or NaN */
  const v128_t mid = wasm_u32x4_gt(w, u(0x3e82c578));   /* |x| > log(5/3)/2 */
  const v128_t normal = wasm_u32x4_ge(w, u(0x00800000));
  const v128_t huge = wasm_u32x4_gt(w, u(0x41200000)); /* |x| > 10, or NaN */
  /* expm1's argument: 2|x|, or −2|x| in the smallest normal range; 1 where it is not used, so that
   * those lanes compute nothing out of range. */
  v128_t arg = wasm_f32x4_add(w, w);
  arg = wasm_v128_bitselect(arg, wasm_v128_or(arg, u(0x80000000)), mid);
  arg = wasm_v128_bitselect(f(1.0f), arg, wasm_v128_or(huge, wasm_v128_not(normal)));
  const v128_t e = expm1_4(arg);
  const v128_t d = wasm_f32x4_add(e, f(2.0f));
  const v128_t q = wasm_f32x4_div(e, d);
  const v128_t t_large = wasm_f32x4_sub(f(1.0f), wasm_f32x4_div(f(2.0f), d));
  /* −e/(e + 2) is −(e/(e + 2)): IEEE division rounds symmetrically. */
  v128_t t = wasm_v128_bitselect(q, wasm_v128_xor(q, u(0x80000000)), mid);
  t = wasm_v128_bitselect(t_large, t, large);
  /* 1 + 0/|x| is 1 for |x| > 10 and NaN for NaN; NaN is kept as it came. */
  t = wasm_v128_bitselect(wasm_v128_bitselect(w, f(1.0f), wasm_u32x4_gt(w, u(0x7f800000))), t, huge);
  t = wasm_v128_bitselect(t, w, normal);
  return wasm_v128_or(t, sign);
}

__attribute__((export_name("tanh")))
void tanh_f32(const float *x, float *out, int n) {
  int i = 0;
  /* Four vectors per iteration: one vector's work is a long chain of dependent operations (three
   * divisions among them), and four independent chains side by side keep the CPU busy while each
   * waits: 0.24 against 0.37 ms for 64×784 values one vector at a time. */
  for (; i + 16 <= n; i += 16) {
    const v128_t a = tanh_4(wasm_v128_load(x + i));
    const v128_t b = tanh_4(wasm_v128_load(x + i + 4));
    const v128_t c = tanh_4(wasm_v128_load(x + i + 8));
    const v128_t d = tanh_4(wasm_v128_load(x + i + 12));
    wasm_v128_store(out + i, a);
    wasm_v128_store(out + i + 4, b);
    wasm_v128_store(out + i + 8, c);
    wasm_v128_store(out + i + 12, d);
  }
  for (; i + 4 <= n; i += 4) wasm_v128_store(out + i, tanh_4(wasm_v128_load(x + i)));
  if (i < n) {
    /* The last one to three elements, in lanes of a vector that never touches memory past n. */
    v128_t v = wasm_f32x4_splat(0.0f);
    v = wasm_f32x4_replace_lane(v, 0, x[i]);
    if (i + 1 < n) v = wasm_f32x4_replace_lane(v, 1, x[i + 1]);
    if (i + 2 < n) v = wasm_f32x4_replace_lane(v, 2, x[i + 2]);
    const v128_t y = tanh_4(v);
    out[i] = wasm_f32x4_extract_lane(y, 0);
    if (i + 1 < n) out[i + 1] = wasm_f32x4_extract_lane(y, 1);
    if (i + 2 < n) out[i + 2] = wasm_f32x4_extract_lane(y, 2);
  }
}

/* Tanh's gradient as TF.js writes it, (1 − y²)·dy, each operation rounded to float32: one pass
 * instead of the Square, Sub and Multiply kernels. */
__attribute__((export_name("tanh_grad")))
void tanh_grad(const float *y, const float *dy, float *out, int n) {
  int i = 0;
  for (; i + 4 <= n; i += 4) {
    const v128_t yi = wasm_v128_load(y + i);
    wasm_v128_store(out + i, wasm_f32x4_mul(wasm_f32x4_sub(f(1.0f), wasm_f32x4_mul(yi, yi)), wasm_v128_load(dy + i)));
  }
  for (; i < n; i++) out[i] = (1.0f - y[i] * y[i]) * dy[i];
}

/* LeakyReLU as the stock kernel computes it, x·step(x, α) with step 1 above 0 and α elsewhere:
 * x·1 is x, and −0 stays −0. The stock kernel is a scalar loop (2.4 ms for 64×14×14×32); qgate's
 * earlier replacement was two XNNPACK kernels, Step and Multiply. */
__attribute__((export_name("leaky_relu")))
void leaky_relu(const float *x, float *out, int n, float alpha) {
  const v128_t a = f(alpha), zero = f(0.0f);
  int i = 0;
  for (; i + 4 <= n; i += 4) {
    const v128_t xi = wasm_v128_load(x + i);
    wasm_v128_store(out + i, wasm_v128_bitselect(xi, wasm_f32x4_mul(xi, a), wasm_f32x4_gt(xi, zero)));
  }
  for (; i < n; i++) out[i] = x[i] > 0.0f ? x[i] : x[i] * alpha;
}

/* Its gradient as qgate registers it, dy·step(x, α) (wasm-kernels.ts), in one pass. */
__attribute__((export_name("leaky_relu_grad")))
void leaky_relu_grad(const float *x, const float *dy, float *out, int n, float alpha) {
  const v128_t a = f(alpha), zero = f(0.0f);
  int i = 0;
  for (; i + 4 <= n; i += 4) {
    const v128_t d = wasm_v128_load(dy + i);
    wasm_v128_store(out + i, wasm_v128_bitselect(d, wasm_f32x4_mul(d, a), wasm_f32x4_gt(wasm_v128_load(x + i), zero)));
  }
  for (; i < n; i++) out[i] = x[i] > 0.0f ? dy[i] : dy[i] * alpha;
}
