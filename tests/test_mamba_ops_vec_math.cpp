// vec_math.h: accuracy of the vector exp and softplus against double libm, and of
// sigmoid / silu / silu' against the scalar float formulas of scalar_math.h (whose own
// rounding they share), over sweeps of float inputs, both as compiled here (baseline
// x86-64, no FMA) and, when the CPU has it, with AVX2 + FMA contraction as the scan
// compiles them; special values; exp_normal equal to exp bit for bit in its range; the
// combined functions equal to the separate ones; the 16-lane sum tree the same for 4-,
// 8- and 16-lane vectors.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <functional>
#include <vector>

#include "mamba/cpu/scalar_math.h"
#include "mamba/cpu/vec_math.h"
#include "tests/test_mamba_ops_helpers.h"

// Vectors never cross a non-inlined call here (see vec_math.h).
#pragma GCC diagnostic ignored "-Wpsabi"

namespace gm {
namespace {

using namespace gm::cpu;

enum class Fn { kExp, kExpNormal, kSoftplus, kSoftplusPair, kSoftplusGradPair, kSigmoid, kSilu, kSiluGrad };

// out[i] = fn(in[i]) with 4-lane vectors (n a multiple of 4).
template <class V>
inline __attribute__((always_inline)) void apply(Fn fn, const float* in, float* out, int64_t n) {
  for (int64_t i = 0; i < n; i += vec::lanes<V>) {
    const V x = vec::load<V>(in + i);
    V y{}, g{};
    switch (fn) {
      case Fn::kExp: y = vec::exp(x); break;
      case Fn::kExpNormal: y = vec::exp_normal(x); break;
      case Fn::kSoftplus: y = vec::softplus(x); break;
      case Fn::kSoftplusPair: vec::softplus_and_grad(x, y, g); break;
      case Fn::kSoftplusGradPair: vec::softplus_and_grad(x, g, y); break;
      case Fn::kSigmoid: y = vec::sigmoid(x); break;
      case Fn::kSilu: y = vec::silu(x); break;
      case Fn::kSiluGrad: y = vec::silu_grad(x); break;
    }
    vec::store(out + i, y);
  }
}

void apply_baseline(Fn fn, const float* in, float* out, int64_t n) { apply<vec::V4>(fn, in, out, n); }

// A scalar_math.h function on every input (the Fn argument is ignored).
template <float (*F)(float)>
void apply_scalar(Fn, const float* in, float* out, int64_t n) {
  for (int64_t i = 0; i < n; ++i) out[i] = F(in[i]);
}

#if defined(__x86_64__) && defined(__GNUC__)
#pragma GCC push_options
#pragma GCC target("avx2,fma")
#pragma GCC optimize("fp-contract=fast")
void apply_fma(Fn fn, const float* in, float* out, int64_t n) { apply<vec::V8>(fn, in, out, n); }
#pragma GCC pop_options
bool cpu_has_fma() { return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"); }
#else
void apply_fma(Fn fn, const float* in, float* out, int64_t n) { apply_baseline(fn, in, out, n); }
bool cpu_has_fma() { return false; }
#endif

using Apply = void (*)(Fn, const float*, float*, int64_t);
// The variants this CPU runs: always the baseline one, plus the FMA one when available.
std::vector<std::pair<const char*, Apply>> variants() {
  std::vector<std::pair<const char*, Apply>> v{{"baseline", apply_baseline}};
  if (cpu_has_fma()) v.push_back({"avx2+fma", apply_fma});
  return v;
}

// Every `step`-th float from lo up to hi (by bit pattern), padded to a multiple of 8.
std::vector<float> sweep(float lo, float hi, uint32_t step) {
  std::vector<float> xs;
  for (float x = lo; x < hi;) {
    xs.push_back(x);
    uint32_t bits;
    std::memcpy(&bits, &x, 4);
    if (!(bits & 0x80000000u))
      bits += step;  // positive: away from zero
    else if (bits > 0x80000000u + step)
      bits -= step;  // negative: towards zero
    else
      bits = 0;  // through zero into the positive floats
    std::memcpy(&x, &bits, 4);
  }
  while (xs.size() % 8) xs.push_back(0.f);
  return xs;
}

// |got - want| in units of the float spacing at want (subnormal spacing below FLT_MIN).
double ulps(float got, double want) {
  if (std::isnan(want)) return std::isnan(got) ? 0 : INFINITY;
  if (std::isinf(want) || std::fabs(want) > 3.4028234663852886e38)
    return std::isinf(got) && (got > 0) == (want > 0) ? 0 : INFINITY;
  int e;
  std::frexp(std::max(std::fabs(want), 1.1754943508222875e-38), &e);
  return std::fabs(static_cast<double>(got) - want) / std::ldexp(1.0, e - 24);
}

double max_ulps(Apply f, Fn fn, const std::vector<float>& xs, const std::function<double(double)>& exact) {
  std::vector<float> out(xs.size());
  f(fn, xs.data(), out.data(), static_cast<int64_t>(xs.size()));
  double worst = 0;
  for (size_t i = 0; i < xs.size(); ++i) worst = std::max(worst, ulps(out[i], exact(xs[i])));
  return worst;
}

double exact_sigmoid(double x) { return 1.0 / (1.0 + std::exp(-x)); }

TEST(VecMath, ExpIsWithinOneUlpEverywhere) {
  const auto xs = sweep(-104.5f, 89.f, 613);
  for (const auto& [name, f] : variants())
    EXPECT_LE(max_ulps(f, Fn::kExp, xs, [](double x) { return std::exp(x); }), 1.0) << name;
}

TEST(VecMath, ExpSpecialValues) {
  const float in[8] = {NAN, INFINITY, -INFINITY, 0.f, -0.f, 88.73f, -103.5f, -200.f};
  for (const auto& [name, f] : variants()) {
    float out[8];
    f(Fn::kExp, in, out, 8);
    EXPECT_TRUE(std::isnan(out[0])) << name;
    EXPECT_EQ(out[1], INFINITY) << name;
    EXPECT_EQ(out[2], 0.f) << name;
    EXPECT_EQ(out[3], 1.f) << name;
    EXPECT_EQ(out[4], 1.f) << name;
    EXPECT_EQ(out[5], INFINITY) << name;  // exp(88.73) > FLT_MAX
    EXPECT_EQ(out[6], std::ldexp(1.f, -149)) << name;  // 0.8 of the smallest subnormal, rounded once
    EXPECT_EQ(out[7], 0.f) << name;
  }
}

TEST(VecMath, ExpNormalIsExpBitForBitInItsRange) {
  const auto xs = sweep(vec::kExpNormalLo, vec::kExpNormalHi, 301);
  for (const auto& [name, f] : variants()) {
    std::vector<float> a(xs.size()), b(xs.size());
    f(Fn::kExp, xs.data(), a.data(), static_cast<int64_t>(xs.size()));
    f(Fn::kExpNormal, xs.data(), b.data(), static_cast<int64_t>(xs.size()));
    EXPECT_EQ(std::memcmp(a.data(), b.data(), a.size() * sizeof(float)), 0) << name;
  }
}

TEST(VecMath, SoftplusIsWithinTwoUlpsAndItsPairAgrees) {
  const auto xs = sweep(-110.f, 40.f, 613);
  auto exact = [](double x) { return x > 20 ? x : std::log1p(std::exp(x)); };
  for (const auto& [name, f] : variants()) {
    EXPECT_LE(max_ulps(f, Fn::kSoftplus, xs, exact), 2.0) << name;
    std::vector<float> a(xs.size()), b(xs.size());
    f(Fn::kSoftplus, xs.data(), a.data(), static_cast<int64_t>(xs.size()));
    f(Fn::kSoftplusPair, xs.data(), b.data(), static_cast<int64_t>(xs.size()));
    EXPECT_EQ(std::memcmp(a.data(), b.data(), a.size() * sizeof(float)), 0) << name;
    // Its derivative, sigmoid (1 above the threshold): within one ulp of the error of
    // the scalar float softplus_grad.
    auto exact_grad = [](double x) { return x > 20 ? 1.0 : exact_sigmoid(x); };
    const double scalar = max_ulps(apply_scalar<softplus_grad<float>>, Fn::kExp, xs, exact_grad);
    EXPECT_LE(max_ulps(f, Fn::kSoftplusGradPair, xs, exact_grad), scalar + 1.0) << name;
  }
}

// The scalar float formulas have rounding of their own (1 + exp(-x), 1 - s): the vector
// versions may add at most one ulp of exp to it.
TEST(VecMath, SigmoidAndSiluAreAsAccurateAsTheScalarFormulas) {
  // Below -87, 1 + exp(-x) overflows in float (in both): results of 1e-38 and less come
  // out 0, so the sweep stops there.
  const auto xs = sweep(-87.f, 89.f, 613);
  auto exact_silu = [](double x) { return x * exact_sigmoid(x); };
  const double scalar_sigmoid = max_ulps(apply_scalar<sigmoid<float>>, Fn::kExp, xs, exact_sigmoid);
  const double scalar_silu = max_ulps(apply_scalar<silu<float>>, Fn::kExp, xs, exact_silu);
  // silu' = s (1 + x (1 - s)) cancels near x = -1.28: errors relative to its terms' size.
  auto grad_error = [&](Apply f) {
    std::vector<float> out(xs.size());
    f(Fn::kSiluGrad, xs.data(), out.data(), static_cast<int64_t>(xs.size()));
    double worst = 0;
    for (size_t i = 0; i < xs.size(); ++i) {
      const double x = xs[i], sg = exact_sigmoid(x);
      const double scale = sg * (1 + std::fabs(x) * (1 - sg));
      worst = std::max(worst, std::fabs(out[i] - sg * (1 + x * (1 - sg))) / scale);
    }
    return worst;
  };
  const double scalar_grad = grad_error(apply_scalar<silu_grad<float>>);
  for (const auto& [name, f] : variants()) {
    EXPECT_LE(max_ulps(f, Fn::kSigmoid, xs, exact_sigmoid), scalar_sigmoid + 1.0) << name;
    EXPECT_LE(max_ulps(f, Fn::kSilu, xs, exact_silu), scalar_silu + 1.0) << name;
    EXPECT_LE(grad_error(f), scalar_grad + 1.2e-7) << name;
  }
}

TEST(VecMath, SiluPairEqualsTheSeparateFunctions) {
  const auto xs = sweep(-90.f, 90.f, 4099);
  std::vector<float> value(xs.size()), grad(xs.size()), silu(xs.size()), silu_grad(xs.size());
  for (size_t i = 0; i < xs.size(); i += 4) {
    vec::V4 v, g;
    vec::silu_and_grad(vec::load<vec::V4>(xs.data() + i), v, g);
    vec::store(value.data() + i, v);
    vec::store(grad.data() + i, g);
  }
  apply_baseline(Fn::kSilu, xs.data(), silu.data(), static_cast<int64_t>(xs.size()));
  apply_baseline(Fn::kSiluGrad, xs.data(), silu_grad.data(), static_cast<int64_t>(xs.size()));
  EXPECT_EQ(std::memcmp(value.data(), silu.data(), xs.size() * sizeof(float)), 0);
  EXPECT_EQ(std::memcmp(grad.data(), silu_grad.data(), xs.size() * sizeof(float)), 0);
}

TEST(VecMath, SixteenLaneSumIsTheSameTreeAtEveryWidth) {
  test::Rng rng(3);
  for (int trial = 0; trial < 200; ++trial) {
    // Mixed magnitudes, so that a different order of additions would show.
    std::vector<float> lanes = test::to_float(rng.normal(16));
    for (int i = 0; i < 16; i += 3) lanes[i] *= 1e7f;
    vec::V4 v4[4];
    vec::V8 v8[2];
    vec::V16 v16[1];
    for (int i = 0; i < 4; ++i) v4[i] = vec::load<vec::V4>(lanes.data() + 4 * i);
    for (int i = 0; i < 2; ++i) v8[i] = vec::load<vec::V8>(lanes.data() + 8 * i);
    v16[0] = vec::load<vec::V16>(lanes.data());
    // The documented tree: lanes i + (i + 8), then + 4, + 2, + 1.
    float s8[8], s4[4], s2[2];
    for (int i = 0; i < 8; ++i) s8[i] = lanes[i] + lanes[i + 8];
    for (int i = 0; i < 4; ++i) s4[i] = s8[i] + s8[i + 4];
    for (int i = 0; i < 2; ++i) s2[i] = s4[i] + s4[i + 2];
    const float want = s2[0] + s2[1];
    EXPECT_EQ(vec::hsum16(v4), want);
    EXPECT_EQ(vec::hsum16(v8), want);
    EXPECT_EQ(vec::hsum16(v16), want);
  }
}

TEST(VecMath, HalvesAndDoublesRoundTrip) {
  float in[16];
  for (int i = 0; i < 16; ++i) in[i] = 0.1f * static_cast<float>(i) - 0.7f;
  const vec::V16 v = vec::load<vec::V16>(in);
  vec::D8 lo, hi;
  vec::widen(v, lo, hi);
  for (int i = 0; i < 8; ++i) {
    EXPECT_EQ(lo[i], static_cast<double>(in[i]));
    EXPECT_EQ(hi[i], static_cast<double>(in[i + 8]));
  }
  const vec::V16 back = vec::narrow<vec::V16>(lo, hi);
  for (int i = 0; i < 16; ++i) EXPECT_EQ(back[i], in[i]);
  vec::V4 a, b;
  vec::split(vec::load<vec::V8>(in), a, b);
  const vec::V8 joined = vec::join(a, b);
  for (int i = 0; i < 8; ++i) EXPECT_EQ(joined[i], in[i]);
}

}  // namespace
}  // namespace gm
