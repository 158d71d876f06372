// Elementwise ops and reductions: copy with f32<->bf16 rounding and strided views,
// fill of every dtype, axpy / scale / neg_exp / mul against direct formulas, sum and
// sum_squares against a long-double sum and across thread counts, has_nonfinite.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "mamba/ops.h"
#include "tests/test_mamba_ops_helpers.h"

namespace gm {
namespace {

using test::Rng;

TEST(Copy, CastsToBf16WithRoundToNearestEven) {
  CpuContext ctx(1);
  // 1 + 2^-8 is halfway between bf16 neighbours 1 and 1 + 2^-7: ties go to the even one (1).
  // 1 + 3 * 2^-8 is halfway between 1 + 2^-7 and 1 + 2^-6: ties go to 1 + 2^-6.
  const std::vector<double> in{1.0 + std::ldexp(1.0, -8), 1.0 + 3 * std::ldexp(1.0, -8), -2.5, 1e-3};
  Tensor src = test::f32_tensor(ctx, {4}, in);
  Tensor half = ctx.empty({4}, DType::BF16), back = ctx.empty({4}, DType::F32);
  cpu::copy(ctx, src, half);
  cpu::copy(ctx, half, back);
  const auto out = test::values(back);
  EXPECT_EQ(out[0], 1.0);
  EXPECT_EQ(out[1], 1.0 + std::ldexp(1.0, -6));
  EXPECT_EQ(out[2], -2.5);
  EXPECT_NEAR(out[3], 1e-3, 1e-3 * std::ldexp(1.0, -8));
}

TEST(Copy, CopiesBetweenStridedViews) {
  CpuContext ctx(2);
  Rng rng(1);
  const auto v = rng.normal(2 * 5 * 6);
  Tensor src = test::f32_tensor(ctx, {2, 5, 6}, v);
  Tensor dst = test::f32_zeros(ctx, {2, 3, 6});
  Tensor view = src.narrow(1, 1, 3);  // batch stride 30, rows of 6
  cpu::copy(ctx, view, dst);
  for (int64_t b = 0; b < 2; ++b)
    for (int64_t r = 0; r < 3; ++r)
      for (int64_t i = 0; i < 6; ++i)
        EXPECT_EQ(dst.data<float>()[(b * 3 + r) * 6 + i], static_cast<float>(v[(b * 5 + r + 1) * 6 + i]));
  Tensor wrong = test::f32_zeros(ctx, {2, 4, 6});
  EXPECT_THROW(cpu::copy(ctx, view, wrong), std::invalid_argument);
}

TEST(Fill, FillsEveryDtype) {
  CpuContext ctx(2);
  Tensor f = ctx.empty({3, 7}, DType::F32), h = ctx.empty({5}, DType::BF16);
  Tensor i = ctx.empty({4}, DType::I32), u = ctx.empty({2, 2}, DType::U8);
  cpu::fill(ctx, f, 1.5f);
  cpu::fill(ctx, h, -3.0f);
  cpu::fill(ctx, i, 42.0f);
  cpu::fill(ctx, u, 7.0f);
  for (int64_t k = 0; k < 21; ++k) EXPECT_EQ(f.data<float>()[k], 1.5f);
  for (int64_t k = 0; k < 5; ++k) EXPECT_EQ(static_cast<float>(h.data<bf16>()[k]), -3.0f);
  for (int64_t k = 0; k < 4; ++k) EXPECT_EQ(i.data<int32_t>()[k], 42);
  for (int64_t k = 0; k < 4; ++k) EXPECT_EQ(u.data<uint8_t>()[k], 7);
}

TEST(Elementwise, AxpyScaleNegExpMulFollowTheirFormulas) {
  CpuContext ctx(2);
  Rng rng(2);
  const auto a = test::float_exact(rng.normal(1000)), b = test::float_exact(rng.normal(1000));
  Tensor ta = test::f32_tensor(ctx, {10, 100}, a), tb = test::f32_tensor(ctx, {10, 100}, b);
  Tensor y = test::f32_tensor(ctx, {10, 100}, b);
  cpu::axpy(ctx, 0.25f, ta, y);
  Tensor s = test::f32_tensor(ctx, {10, 100}, a);
  cpu::scale(ctx, s, -3.0f);
  Tensor e = ctx.empty({10, 100}, DType::F32), m = ctx.empty({10, 100}, DType::F32);
  cpu::neg_exp(ctx, ta, e);
  cpu::mul(ctx, ta, tb, m);
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_EQ(y.data<float>()[i], static_cast<float>(b[i]) + 0.25f * static_cast<float>(a[i]));
    EXPECT_EQ(s.data<float>()[i], static_cast<float>(a[i]) * -3.0f);
    EXPECT_NEAR(e.data<float>()[i], -std::exp(a[i]), 2e-7 * std::exp(a[i]));
    EXPECT_EQ(m.data<float>()[i], static_cast<float>(a[i]) * static_cast<float>(b[i]));
  }
}

TEST(Reductions, SumsAreExactEnoughAndThreadCountIndependent) {
  Rng rng(3);
  const int64_t n = 100003;  // several reduction blocks and a ragged end
  const auto v = test::float_exact(rng.normal(n));
  long double s = 0, ss = 0;
  for (double x : v) {
    s += x;
    ss += static_cast<long double>(x) * x;
  }
  double sums[2][2];
  for (int run = 0; run < 2; ++run) {
    CpuContext ctx(run ? 3 : 1);
    Tensor t = test::f32_tensor(ctx, {n}, v);
    sums[run][0] = cpu::sum(ctx, t);
    sums[run][1] = cpu::sum_squares(ctx, t);
  }
  EXPECT_NEAR(sums[0][0], static_cast<double>(s), 1e-9);
  EXPECT_NEAR(sums[0][1], static_cast<double>(ss), 1e-9 * static_cast<double>(ss));
  EXPECT_EQ(sums[0][0], sums[1][0]);  // bitwise, not just close
  EXPECT_EQ(sums[0][1], sums[1][1]);
}

TEST(Reductions, HasNonfiniteFindsNanAndInf) {
  CpuContext ctx(2);
  Tensor t = test::f32_zeros(ctx, {50000});
  EXPECT_FALSE(cpu::has_nonfinite(ctx, t));
  t.data<float>()[49999] = std::numeric_limits<float>::quiet_NaN();
  EXPECT_TRUE(cpu::has_nonfinite(ctx, t));
  t.data<float>()[49999] = 0;
  t.data<float>()[123] = -std::numeric_limits<float>::infinity();
  EXPECT_TRUE(cpu::has_nonfinite(ctx, t));
}

}  // namespace
}  // namespace gm
