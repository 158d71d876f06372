// AdamW against a step computed by hand (torch.optim.AdamW's formula), over several
// steps so that the bias corrections change, with weight decay and gradient scaling.
#include <gtest/gtest.h>

#include <cmath>

#include "mamba/ops.h"
#include "tests/test_mamba_ops_helpers.h"

namespace gm {
namespace {

TEST(AdamW, MatchesAHandComputedUpdateOverSeveralSteps) {
  test::Rng rng(1);
  const int64_t n = 1000;
  std::vector<double> p = test::float_exact(rng.normal(n)), m(n, 0.0), v(n, 0.0);
  CpuContext ctx(2);
  Tensor tp = test::f32_tensor(ctx, {n}, p), tm = test::f32_zeros(ctx, {n}), tv = test::f32_zeros(ctx, {n});
  AdamWStep s;
  s.lr = 1e-2f;
  s.beta1 = 0.9f;
  s.beta2 = 0.95f;
  s.eps = 1e-8f;
  s.weight_decay = 0.1f;
  s.grad_scale = 0.5f;
  for (int64_t step = 1; step <= 3; ++step) {
    const std::vector<double> g = test::float_exact(rng.normal(n));
    Tensor tg = test::f32_tensor(ctx, {n}, g);
    s.step = step;
    cpu::adamw(ctx, tp, tg, tm, tv, s);
    const double b1 = s.beta1, b2 = s.beta2;
    for (int64_t i = 0; i < n; ++i) {
      const double gs = g[i] * s.grad_scale;
      p[i] *= 1.0 - double(s.lr) * double(s.weight_decay);
      m[i] = b1 * m[i] + (1 - b1) * gs;
      v[i] = b2 * v[i] + (1 - b2) * gs * gs;
      const double mhat = m[i] / (1 - std::pow(b1, double(step)));
      const double vhat = v[i] / (1 - std::pow(b2, double(step)));
      p[i] -= double(s.lr) * mhat / (std::sqrt(vhat) + double(s.eps));
    }
  }
  EXPECT_LT(test::rel_error(test::values(tm), m), 1e-6);
  EXPECT_LT(test::rel_error(test::values(tv), v), 1e-6);
  EXPECT_LT(test::rel_error(test::values(tp), p), 1e-6);
}

TEST(AdamW, FirstStepMovesEachWeightByTheLearningRate) {
  CpuContext ctx(1);
  Tensor p = test::f32_tensor(ctx, {3}, {1.0, -1.0, 0.5});
  Tensor g = test::f32_tensor(ctx, {3}, {2.0, -0.001, 30.0});
  Tensor m = test::f32_zeros(ctx, {3}), v = test::f32_zeros(ctx, {3});
  AdamWStep s;
  s.lr = 0.01f;
  s.eps = 0;
  cpu::adamw(ctx, p, g, m, v, s);
  // Bias-corrected m / sqrt(v) is sign(g) on the first step, without weight decay.
  EXPECT_NEAR(p.data<float>()[0], 0.99f, 1e-6);
  EXPECT_NEAR(p.data<float>()[1], -0.99f, 1e-6);
  EXPECT_NEAR(p.data<float>()[2], 0.49f, 1e-6);
}

TEST(AdamW, RejectsStepZero) {
  CpuContext ctx(1);
  Tensor p = test::f32_zeros(ctx, {2}), g = test::f32_zeros(ctx, {2}), m = test::f32_zeros(ctx, {2}),
         v = test::f32_zeros(ctx, {2});
  AdamWStep s;
  s.step = 0;
  EXPECT_THROW(cpu::adamw(ctx, p, g, m, v, s), std::invalid_argument);
}

}  // namespace
}  // namespace gm
