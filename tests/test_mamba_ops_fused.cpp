// The fused ops of the training step on the CPU: the out-of-place residual add + RMSNorm
// and the norm backward with the residual gradient's act copy give bitwise what the
// plain ops give; the LM head + cross-entropy matches finite differences of a double
// implementation written here, accumulates into dweight, and ignores non-ACGT targets.
#include <gtest/gtest.h>

#include <cmath>

#include "mamba/ops.h"
#include "tests/test_mamba_ops_helpers.h"

namespace gm {
namespace {

using test::Rng;

Tensor copy_of(CpuContext& ctx, const Tensor& t) {
  Tensor c = ctx.empty(t.shape(), t.dtype());
  std::memcpy(c.raw(), t.raw(), t.nbytes());
  return c;
}

TEST(ResidualNorm, OutOfPlaceForwardEqualsTheInPlaceOp) {
  CpuContext ctx(2);
  Rng rng(11);
  const int64_t M = 301, d = 40;
  const Tensor x = test::f32_tensor(ctx, {M, d}, rng.normal(M * d));
  const Tensor r_in = test::f32_tensor(ctx, {M, d}, rng.normal(M * d));
  const Tensor w = test::f32_tensor(ctx, {d}, rng.uniform(d, 0.5, 1.5));
  for (bool with_x : {false, true}) {
    Tensor r_ref = copy_of(ctx, r_in), out_ref = ctx.empty({M, d}, DType::F32), rstd_ref = ctx.empty({M}, DType::F32);
    cpu::add_rmsnorm_fwd(ctx, with_x ? &x : nullptr, r_ref, w, 1e-5f, out_ref, rstd_ref);
    const Tensor r_before = copy_of(ctx, r_in);
    Tensor r_out = test::f32_zeros(ctx, {M, d}), out = ctx.empty({M, d}, DType::F32), rstd = ctx.empty({M}, DType::F32);
    cpu::add_rmsnorm_fwd_out(ctx, with_x ? &x : nullptr, r_in, r_out, w, 1e-5f, out, rstd);
    EXPECT_TRUE(test::bitwise_equal(r_out, r_ref));
    EXPECT_TRUE(test::bitwise_equal(out, out_ref));
    EXPECT_TRUE(test::bitwise_equal(rstd, rstd_ref));
    EXPECT_TRUE(test::bitwise_equal(r_in, r_before)) << "residual_in must stay untouched";
  }
  // In place through the same tensor is the plain op; partial overlap is refused.
  Tensor r = copy_of(ctx, r_in), out = ctx.empty({M, d}, DType::F32), rstd = ctx.empty({M}, DType::F32);
  cpu::add_rmsnorm_fwd_out(ctx, &x, r, r, w, 1e-5f, out, rstd);
  Tensor r2 = copy_of(ctx, r_in), out2 = ctx.empty({M, d}, DType::F32), rstd2 = ctx.empty({M}, DType::F32);
  cpu::add_rmsnorm_fwd(ctx, &x, r2, w, 1e-5f, out2, rstd2);
  EXPECT_TRUE(test::bitwise_equal(r, r2));
  Tensor big = test::f32_zeros(ctx, {M + 1, d});
  const Tensor lo = big.narrow(0, 0, M), hi = big.narrow(0, 1, M);
  Tensor hi_mut = hi;
  EXPECT_THROW(cpu::add_rmsnorm_fwd_out(ctx, nullptr, lo, hi_mut, w, 1e-5f, out, rstd), std::invalid_argument);
}

TEST(ResidualNorm, BackwardWithActCopyEqualsThePlainOp) {
  CpuContext ctx(2);
  Rng rng(12);
  const int64_t M = 300, d = 24;
  Tensor res = test::f32_tensor(ctx, {M, d}, rng.normal(M * d));
  const Tensor w = test::f32_tensor(ctx, {d}, rng.uniform(d, 0.5, 1.5));
  Tensor out = ctx.empty({M, d}, DType::F32), rstd = ctx.empty({M}, DType::F32);
  cpu::add_rmsnorm_fwd(ctx, nullptr, res, w, 1e-5f, out, rstd);
  const Tensor dout = test::f32_tensor(ctx, {M, d}, rng.normal(M * d));
  const Tensor dres0 = test::f32_tensor(ctx, {M, d}, rng.normal(M * d));
  const Tensor dw0 = test::f32_tensor(ctx, {d}, rng.normal(d));
  Tensor dres_ref = copy_of(ctx, dres0), dw_ref = copy_of(ctx, dw0);
  cpu::add_rmsnorm_bwd(ctx, dout, res, w, rstd, dres_ref, dw_ref);
  Tensor dres = copy_of(ctx, dres0), dw = copy_of(ctx, dw0), dres_act = test::f32_zeros(ctx, {M, d});
  cpu::add_rmsnorm_bwd_act(ctx, dout, res, w, rstd, dres, dw, dres_act);
  EXPECT_TRUE(test::bitwise_equal(dres, dres_ref));
  EXPECT_TRUE(test::bitwise_equal(dw, dw_ref));
  EXPECT_TRUE(test::bitwise_equal(dres_act, dres_ref));
  EXPECT_THROW(cpu::add_rmsnorm_bwd_act(ctx, dout, res, w, rstd, dres, dw, dres), std::invalid_argument);
}

// The loss sum * scale of a linear head and weighted next-token cross-entropy, in double.
struct HeadProblem {
  int64_t M, d, V;
  std::vector<double> h, w;
  std::vector<uint8_t> targets, flags;
  double soft = 0.25, scale = 0.01;

  double weight(int64_t i) const {
    if (targets[i] < 7 || targets[i] > 10) return 0.0;
    return (flags[i] & 1) ? soft : 1.0;
  }
  double loss() const {
    double total = 0;
    std::vector<double> z(V);
    for (int64_t i = 0; i < M; ++i) {
      double mx = -INFINITY;
      for (int64_t v = 0; v < V; ++v) {
        z[v] = 0;
        for (int64_t j = 0; j < d; ++j) z[v] += h[i * d + j] * w[v * d + j];
        mx = std::max(mx, z[v]);
      }
      double s = 0;
      for (int64_t v = 0; v < V; ++v) s += std::exp(z[v] - mx);
      total += weight(i) * (mx + std::log(s) - z[targets[i]]);
    }
    return total * scale;
  }
};

TEST(LmHeadCrossEntropy, MatchesFiniteDifferencesAndAccumulates) {
  CpuContext ctx(2);
  Rng rng(13);
  HeadProblem p{70, 12, 16, {}, {}, {}, {}};
  p.h = test::float_exact(rng.normal(p.M * p.d));
  p.w = test::float_exact(rng.normal(p.V * p.d, 0.5));
  for (int64_t i = 0; i < p.M; ++i) {
    p.targets.push_back(static_cast<uint8_t>(rng.index(16)));  // specials and N too: weight 0
    p.flags.push_back(static_cast<uint8_t>(rng.index(3) == 0 ? 1 : 0));
  }
  const Tensor h = test::f32_tensor(ctx, {p.M, p.d}, p.h), w = test::f32_tensor(ctx, {p.V, p.d}, p.w);
  const Tensor targets = test::u8_tensor(ctx, {p.M}, p.targets), flags = test::u8_tensor(ctx, {p.M}, p.flags);
  Tensor losses = ctx.empty({p.M}, DType::F32), dh = ctx.empty({p.M, p.d}, DType::F32);
  const std::vector<double> dw0 = rng.normal(p.V * p.d);
  Tensor dw = test::f32_tensor(ctx, {p.V, p.d}, dw0);
  cpu::lm_head_cross_entropy(ctx, h, w, targets, &flags, static_cast<float>(p.soft), static_cast<float>(p.scale),
                             losses, dh, dw);

  double sum = 0;
  for (int64_t i = 0; i < p.M; ++i) {
    sum += losses.data<float>()[i];
    if (p.weight(i) == 0) {
      EXPECT_EQ(losses.data<float>()[i], 0.f) << "row " << i;
    }
  }
  EXPECT_NEAR(sum * p.scale, p.loss(), 1e-5 * std::abs(p.loss()));
  std::vector<double> gw = test::values(dw);
  for (size_t i = 0; i < gw.size(); ++i) gw[i] -= static_cast<double>(static_cast<float>(dw0[i]));
  auto loss = [&] { return p.loss(); };
  auto r = test::check_gradient(loss, p.h, test::values(dh));
  EXPECT_LT(test::rel_error(r.analytic, r.numeric), 1e-4) << "dh";
  r = test::check_gradient(loss, p.w, gw);
  EXPECT_LT(test::rel_error(r.analytic, r.numeric), 1e-4) << "dweight";
}

}  // namespace
}  // namespace gm
