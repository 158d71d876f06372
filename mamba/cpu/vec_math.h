// Float vectors of 4, 8 and 16 lanes (GCC vector extensions) and the few accurate
// elementwise functions the fast CPU kernels need: exp, softplus (with its derivative),
// sigmoid, silu, silu_grad.
//
// Conventions
// - Every function is lane-wise and uses only IEEE add/sub/mul/div/compare/select and
//   integer bit operations, so a lane's result is the same bits whatever its position
//   or the vector width (V4 on baseline x86-64, V8 with AVX2, V16 with AVX-512: each
//   GCC's native width on its target; wider vectors than the target has are lowered
//   badly, 4x slower, measured) as long as the including file contracts multiply-adds
//   on all of its FMA targets or on none (see simd_level.h).
// - hsum16 adds 16 lanes, held in 16 / lanes vectors, in one fixed tree whatever the
//   width: lanes i and i + 8 first, then i and i + 4, then i and i + 2, then 0 and 1.
// - Accuracy (tests/test_mamba_ops_vec_math.cpp), with and without FMA contraction:
//   exp <= 1 ulp and softplus <= 2 ulp of the exact (double) functions; sigmoid, silu,
//   silu_grad and softplus' at most one ulp worse than the scalar float formulas of
//   scalar_math.h, whose own rounding (1 + exp(-x), 1 - s) dominates.
// - NaN in gives NaN out; +-inf and under/overflow behave like std::exp (exp(-inf) = 0,
//   exp(+inf) = inf, subnormal results rounded once).
// - Functions are always_inline so that each SIMD level's kernels get their own vector code.
#pragma once

#include <cstdint>
#include <cstring>

// Vectors never cross a non-inlined call, so the AVX return-value ABI warning does not
// apply; parameters are const references, for the same reason (GCC's note about vector
// arguments ignores the pragma).
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wpsabi"

namespace gm::cpu::vec {

typedef float V4 __attribute__((vector_size(16)));
typedef int32_t I4 __attribute__((vector_size(16)));
typedef float V8 __attribute__((vector_size(32)));
typedef int32_t I8 __attribute__((vector_size(32)));
typedef float V16 __attribute__((vector_size(64)));
typedef int32_t I16 __attribute__((vector_size(64)));

#define GM_VEC_INLINE inline __attribute__((always_inline))

template <class V>
constexpr int lanes = sizeof(V) / sizeof(float);

// The integer vector of the same shape (what comparisons return).
template <class V>
struct IntOf;
template <>
struct IntOf<V4> {
  using type = I4;
};
template <>
struct IntOf<V8> {
  using type = I8;
};
template <>
struct IntOf<V16> {
  using type = I16;
};
template <class V>
using Int = typename IntOf<V>::type;

// Double vectors of half a float vector's lanes (the same byte size), for sums that the
// reference takes in double: Wide<V> holds lanes<V> / 2 doubles.
typedef float F2 __attribute__((vector_size(8)));
typedef double D2 __attribute__((vector_size(16)));
typedef double D4 __attribute__((vector_size(32)));
typedef double D8 __attribute__((vector_size(64)));
template <class V>
struct HalfOf;
template <>
struct HalfOf<V4> {
  using half = F2;
  using wide = D2;
};
template <>
struct HalfOf<V8> {
  using half = V4;
  using wide = D4;
};
template <>
struct HalfOf<V16> {
  using half = V8;
  using wide = D8;
};
template <class V>
using Wide = typename HalfOf<V>::wide;

template <class V>
GM_VEC_INLINE V splat(float x) {
  V v;
  for (int i = 0; i < lanes<V>; ++i) v[i] = x;
  return v;
}
template <class V>
GM_VEC_INLINE V load(const float* p) {
  V v;
  std::memcpy(&v, p, sizeof v);
  return v;
}
template <class V>
GM_VEC_INLINE void store(float* p, const V& v) {
  std::memcpy(p, &v, sizeof v);
}
// min(n, lanes) lanes from p (n > 0), the others 0.
template <class V>
GM_VEC_INLINE V load_n(const float* p, int64_t n) {
  if (n >= lanes<V>) return load<V>(p);
  float tmp[lanes<V>] = {};
  std::memcpy(tmp, p, static_cast<size_t>(n) * sizeof(float));
  return load<V>(tmp);
}
template <class V>
GM_VEC_INLINE void store_n(float* p, const V& v, int64_t n) {
  if (n >= lanes<V>) return store(p, v);
  float tmp[lanes<V>];
  store(tmp, v);
  std::memcpy(p, tmp, static_cast<size_t>(n) * sizeof(float));
}

template <class D>
GM_VEC_INLINE D splat_wide(double x) {
  D v;
  for (int i = 0; i < static_cast<int>(sizeof(D) / sizeof(double)); ++i) v[i] = x;
  return v;
}
template <class D>
GM_VEC_INLINE D load_double(const double* p) {
  D v;
  std::memcpy(&v, p, sizeof v);
  return v;
}
template <class D>
GM_VEC_INLINE void store_double(double* p, const D& v) {
  std::memcpy(p, &v, sizeof v);
}
// lanes<V> / 2 floats from p, widened to double.
template <class V>
GM_VEC_INLINE Wide<V> load_wide(const float* p) {
  typename HalfOf<V>::half h;
  std::memcpy(&h, p, sizeof h);
  return __builtin_convertvector(h, Wide<V>);
}
// The low and high halves of a float vector, and back, as register shuffles (through
// memory, where two half stores cannot forward to one wide load, the conv1d forward took
// 1.9 instead of 0.9 ns per element).
GM_VEC_INLINE void split(const V4& v, F2& lo, F2& hi) {
  lo = __builtin_shufflevector(v, v, 0, 1);
  hi = __builtin_shufflevector(v, v, 2, 3);
}
GM_VEC_INLINE void split(const V8& v, V4& lo, V4& hi) {
  lo = __builtin_shufflevector(v, v, 0, 1, 2, 3);
  hi = __builtin_shufflevector(v, v, 4, 5, 6, 7);
}
GM_VEC_INLINE void split(const V16& v, V8& lo, V8& hi) {
  lo = __builtin_shufflevector(v, v, 0, 1, 2, 3, 4, 5, 6, 7);
  hi = __builtin_shufflevector(v, v, 8, 9, 10, 11, 12, 13, 14, 15);
}
GM_VEC_INLINE V4 join(const F2& lo, const F2& hi) { return __builtin_shufflevector(lo, hi, 0, 1, 2, 3); }
GM_VEC_INLINE V8 join(const V4& lo, const V4& hi) { return __builtin_shufflevector(lo, hi, 0, 1, 2, 3, 4, 5, 6, 7); }
GM_VEC_INLINE V16 join(const V8& lo, const V8& hi) {
  return __builtin_shufflevector(lo, hi, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
}

// The float vector made of two double halves, each rounded to float (low lanes first).
template <class V>
GM_VEC_INLINE V narrow(const Wide<V>& lo, const Wide<V>& hi) {
  using H = typename HalfOf<V>::half;
  return join(__builtin_convertvector(lo, H), __builtin_convertvector(hi, H));
}
// The low and high halves of v, widened to double.
template <class V>
GM_VEC_INLINE void widen(const V& v, Wide<V>& lo, Wide<V>& hi) {
  typename HalfOf<V>::half l, h;
  split(v, l, h);
  lo = __builtin_convertvector(l, Wide<V>);
  hi = __builtin_convertvector(h, Wide<V>);
}

// Sum of 16 lanes (see Conventions for the tree).
GM_VEC_INLINE float hsum16(const V4* v) {
  V4 s = (v[0] + v[2]) + (v[1] + v[3]);
  s = s + __builtin_shuffle(s, I4{2, 3, 0, 1});
  return s[0] + s[1];
}
GM_VEC_INLINE float hsum16(const V8* v) {
  V8 s = v[0] + v[1];
  s = s + __builtin_shuffle(s, I8{4, 5, 6, 7, 0, 1, 2, 3});
  s = s + __builtin_shuffle(s, I8{2, 3, 0, 1, 6, 7, 4, 5});
  return s[0] + s[1];
}
GM_VEC_INLINE float hsum16(const V16* v) {
  V8 halves[2];
  split(v[0], halves[0], halves[1]);
  return hsum16(halves);
}

// exp(x) = 2^k p: x = k ln2 + r with |r| <= ln2/2 (Cody-Waite split of ln2, exact
// products for |k| <= 150), p = exp(r) = 1 + r + r^2 q(r) with q a degree-4 fit (relative
// error 4e-9 on the interval, far below float rounding), p in [0.7, 1.42].
template <class V>
GM_VEC_INLINE void exp_parts(const V& x, V& p, Int<V>& k) {
  using I = Int<V>;
  const V round_magic = splat<V>(12582912.0f);  // 1.5 * 2^23: adding it rounds to an integer
  const V kf_biased = x * splat<V>(1.44269502f) + round_magic;
  k = __builtin_bit_cast(I, kf_biased) - __builtin_bit_cast(I, round_magic);
  const V kf = kf_biased - round_magic;
  const float ln2_hi = 0.693145751953125f;  // 15 significant bits: kf * ln2_hi is exact
  const float ln2_lo = 0x1.7f7d1cp-20f;     // ln2 - ln2_hi
  const V r = (x - kf * splat<V>(ln2_hi)) - kf * splat<V>(ln2_lo);
  V q = splat<V>(0x1.698abep-10f);
  q = q * r + splat<V>(0x1.123ad4p-7f);
  q = q * r + splat<V>(0x1.5559d0p-5f);
  q = q * r + splat<V>(0x1.555490p-3f);
  q = q * r + splat<V>(0x1.fffffap-2f);
  p = splat<V>(1.0f) + (r + (r * r) * q);
}

// exp(x) for every x: 2^k applied as two exact power-of-two factors, so that subnormal
// results are rounded only once.
template <class V>
GM_VEC_INLINE V exp(const V& x_in) {
  using I = Int<V>;
  // Clamp (NaN stays NaN: both comparisons are false) to where the result is 0 / inf anyway.
  V x = x_in < splat<V>(-104.0f) ? splat<V>(-104.0f) : x_in;
  x = x > splat<V>(88.8f) ? splat<V>(88.8f) : x;
  V p;
  I k;
  exp_parts(x, p, k);
  const I k_half = k >> 1;
  const V scale1 = __builtin_bit_cast(V, (k_half + 127) << 23);
  const V scale2 = __builtin_bit_cast(V, (k - k_half + 127) << 23);
  return (p * scale1) * scale2;
}

// The range where 2^k p is a normal float whatever p: there exp_normal(x) == exp(x),
// bit for bit (both scalings are exact), without exp's clamps and split scaling.
constexpr float kExpNormalLo = -86.0f, kExpNormalHi = 88.0f;
template <class V>
GM_VEC_INLINE V exp_normal(const V& x) {
  using I = Int<V>;
  V p;
  I k;
  exp_parts(x, p, k);
  return __builtin_bit_cast(V, __builtin_bit_cast(I, p) + (k << 23));
}

// log(1 + e) for 0 <= e <= 1 (or NaN): u = 1 + e = 2^j (1 + f) with 1 + f in
// [sqrt(1/2), sqrt(2)), log(1 + f) = f - f^2/2 + s (f^2/2 + R(s^2)) with s = f / (2 + f)
// and R the atanh series 2z/3 + 2z^2/5 + 2z^3/7 + 2z^4/9 (truncation below 1e-9 for
// |s| < 0.172), plus (e - (u - 1)) / u for the rounding of u.
template <class V>
GM_VEC_INLINE V log1p_unit(const V& e) {
  using I = Int<V>;
  const V one = splat<V>(1.0f);
  const V u = one + e;
  const I upper = u > splat<V>(1.41421354f);
  const V m = upper ? u * splat<V>(0.5f) : u;
  const V j = upper ? one : splat<V>(0.0f);
  const V f = m - one;
  const V s = f / (splat<V>(2.0f) + f);
  const V z = s * s;
  V R = splat<V>(2.0f / 9.0f);
  R = R * z + splat<V>(2.0f / 7.0f);
  R = R * z + splat<V>(2.0f / 5.0f);
  R = R * z + splat<V>(2.0f / 3.0f);
  R = R * z;
  const V half_f2 = splat<V>(0.5f) * f * f;
  const V log_m = f - (half_f2 - s * (half_f2 + R));
  const V rounding = (e - (u - one)) / u;
  const float ln2_hi = 0.693145751953125f, ln2_lo = 0x1.7f7d1cp-20f;
  return j * splat<V>(ln2_hi) + (log_m + (j * splat<V>(ln2_lo) + rounding));
}

constexpr float kSoftplusThreshold = 20.0f;  // as gm::cpu::softplus (scalar_math.h)

// softplus(x) = x above the threshold, else max(x, 0) + log1p(e) with e = exp(-|x|).
template <class V>
GM_VEC_INLINE V softplus_from(const V& x, const V& e) {
  const V zero = splat<V>(0.0f);
  const V positive_part = x > zero ? x : zero;
  return x > splat<V>(kSoftplusThreshold) ? x : positive_part + log1p_unit(e);
}
template <class V>
GM_VEC_INLINE V exp_neg_abs(const V& x) {
  return exp(x < splat<V>(0.0f) ? x : -x);
}

template <class V>
GM_VEC_INLINE V softplus(const V& x) {
  return softplus_from(x, exp_neg_abs(x));
}

template <class V>
GM_VEC_INLINE V sigmoid(const V& x) {
  return splat<V>(1.0f) / (splat<V>(1.0f) + exp(-x));
}

// softplus(x) (the same bits as softplus) and softplus'(x) = sigmoid(x) from one exp:
// with e = exp(-|x|), sigmoid(x) = 1 / (1 + e) for x >= 0 and e / (1 + e) below; 1 above
// the threshold.
template <class V>
GM_VEC_INLINE void softplus_and_grad(const V& x, V& value, V& grad) {
  const V e = exp_neg_abs(x), one = splat<V>(1.0f);
  value = softplus_from(x, e);
  const V r = one / (one + e);
  grad = x > splat<V>(kSoftplusThreshold) ? one : (x >= splat<V>(0.0f) ? r : e * r);
}

template <class V>
GM_VEC_INLINE V silu(const V& x) {
  return x * sigmoid(x);
}

// d silu(x) / dx = s (1 + x (1 - s)), as the scalar silu_grad.
template <class V>
GM_VEC_INLINE V silu_grad(const V& x) {
  const V s = sigmoid(x), one = splat<V>(1.0f);
  return s * (one + x * (one - s));
}

// silu(x) and silu'(x), the same bits as the two functions, from one sigmoid.
template <class V>
GM_VEC_INLINE void silu_and_grad(const V& x, V& value, V& grad) {
  const V s = sigmoid(x), one = splat<V>(1.0f);
  value = x * s;
  grad = s * (one + x * (one - s));
}

}  // namespace gm::cpu::vec

#pragma GCC diagnostic pop
