// Residual add + RMSNorm and the embedding: finite differences of the double
// references (with the accumulate-into-gradient rules), the f32 ops against them,
// thread-count independence, and the vocabulary check.
#include <gtest/gtest.h>

#include "mamba/cpu/embedding_ref.h"
#include "mamba/cpu/rmsnorm_ref.h"
#include "mamba/ops.h"
#include "tests/test_mamba_ops_helpers.h"

namespace gm {
namespace {

using test::Rng;
using namespace gm::cpu;  // the reference templates; ops are still called as cpu::name

struct NormData {
  int64_t M, d;
  double eps = 1e-5;
  std::vector<double> x, residual, weight, w_out, w_res;

  NormData(int64_t m, int64_t width, uint64_t seed) : M(m), d(width) {
    Rng rng(seed);
    x = test::float_exact(rng.normal(M * d));
    residual = test::float_exact(rng.normal(M * d));
    weight = test::float_exact(rng.uniform(d, 0.5, 1.5));
    w_out = test::float_exact(rng.normal(M * d));
    w_res = test::float_exact(rng.normal(M * d));
  }
  // out, the post-add residual and rstd.
  void forward(std::vector<double>& out, std::vector<double>& res, std::vector<double>& rstd) const {
    out.assign(M * d, NAN);
    rstd.assign(M, NAN);
    res = residual;
    add_rmsnorm_forward_ref<double>(x.data(), res.data(), weight.data(), M, d, eps, out.data(), rstd.data(), 1);
  }
  // The loss sees both outputs: the normed activations and the residual stream.
  double loss() const {
    std::vector<double> out, res, rstd;
    forward(out, res, rstd);
    return test::dot(out, w_out) + test::dot(res, w_res);
  }
};

TEST(AddRmsNorm, MatchesFiniteDifferencesAndAccumulates) {
  NormData data(5, 7, 1);
  std::vector<double> out, res, rstd;
  data.forward(out, res, rstd);
  std::vector<double> dres = data.w_res;  // the gradient arriving from later layers
  Rng rng(2);
  const std::vector<double> dweight0 = rng.normal(data.d);
  std::vector<double> dweight = dweight0;
  add_rmsnorm_backward_ref<double>(data.w_out.data(), res.data(), data.weight.data(), rstd.data(), data.M, data.d,
                                   dres.data(), dweight.data(), 2);
  for (int64_t j = 0; j < data.d; ++j) dweight[j] -= dweight0[j];
  auto loss = [&] { return data.loss(); };
  auto r = test::check_gradient(loss, data.x, dres);
  EXPECT_LT(test::rel_error(r.analytic, r.numeric), 1e-7) << "x";
  r = test::check_gradient(loss, data.residual, dres);
  EXPECT_LT(test::rel_error(r.analytic, r.numeric), 1e-7) << "residual";
  r = test::check_gradient(loss, data.weight, dweight);
  EXPECT_LT(test::rel_error(r.analytic, r.numeric), 1e-7) << "weight";
}

TEST(AddRmsNorm, FloatOpMatchesDoubleReference) {
  NormData data(300, 24, 3);  // more rows than one reduction block
  std::vector<double> out, res, rstd;
  data.forward(out, res, rstd);
  CpuContext ctx(2);
  Tensor x = test::f32_tensor(ctx, {3, 100, 24}, data.x);
  Tensor residual = test::f32_tensor(ctx, {3, 100, 24}, data.residual);
  Tensor weight = test::f32_tensor(ctx, {24}, data.weight);
  Tensor y = ctx.empty({3, 100, 24}, DType::F32), rs = ctx.empty({3, 100}, DType::F32);
  cpu::add_rmsnorm_fwd(ctx, &x, residual, weight, static_cast<float>(data.eps), y, rs);
  EXPECT_LT(test::rel_error(test::values(y), out), 1e-6);
  EXPECT_LT(test::rel_error(test::values(residual), res), 1e-6);
  EXPECT_LT(test::rel_error(test::values(rs), rstd), 1e-6);

  Tensor dout = test::f32_tensor(ctx, {3, 100, 24}, data.w_out);
  Tensor dres = test::f32_tensor(ctx, {3, 100, 24}, data.w_res);
  Tensor dweight = test::f32_zeros(ctx, {24});
  cpu::add_rmsnorm_bwd(ctx, dout, residual, weight, rs, dres, dweight);
  std::vector<double> rdres = data.w_res, rdweight(24, 0.0);
  add_rmsnorm_backward_ref<double>(data.w_out.data(), res.data(), data.weight.data(), rstd.data(), data.M, data.d,
                                   rdres.data(), rdweight.data(), 1);
  EXPECT_LT(test::rel_error(test::values(dres), rdres), 1e-6);
  EXPECT_LT(test::rel_error(test::values(dweight), rdweight), 1e-6);
}

TEST(AddRmsNorm, WithoutXNormalisesTheResidualAsIs) {
  CpuContext ctx(1);
  Tensor residual = test::f32_tensor(ctx, {1, 4}, {1, -2, 3, -4});
  Tensor weight = test::f32_tensor(ctx, {4}, {1, 1, 1, 2});
  Tensor y = ctx.empty({1, 4}, DType::F32), rs = ctx.empty({1}, DType::F32);
  cpu::add_rmsnorm_fwd(ctx, nullptr, residual, weight, 0.0f, y, rs);
  const double r = 1.0 / std::sqrt((1 + 4 + 9 + 16) / 4.0);
  EXPECT_NEAR(rs.data<float>()[0], r, 1e-7);
  EXPECT_NEAR(y.data<float>()[3], -4 * r * 2, 1e-6);
  EXPECT_EQ(residual.data<float>()[1], -2.0f);
}

TEST(AddRmsNorm, ResultsDoNotDependOnTheThreadCount) {
  NormData data(1000, 32, 4);
  std::vector<Tensor> results[2];
  for (int run = 0; run < 2; ++run) {
    CpuContext ctx(run ? 3 : 1);
    Tensor x = test::f32_tensor(ctx, {1000, 32}, data.x), residual = test::f32_tensor(ctx, {1000, 32}, data.residual);
    Tensor weight = test::f32_tensor(ctx, {32}, data.weight);
    Tensor y = ctx.empty({1000, 32}, DType::F32), rs = ctx.empty({1000}, DType::F32);
    cpu::add_rmsnorm_fwd(ctx, &x, residual, weight, 1e-5f, y, rs);
    Tensor dout = test::f32_tensor(ctx, {1000, 32}, data.w_out), dres = test::f32_tensor(ctx, {1000, 32}, data.w_res);
    Tensor dweight = test::f32_zeros(ctx, {32});
    cpu::add_rmsnorm_bwd(ctx, dout, residual, weight, rs, dres, dweight);
    results[run] = {y, rs, residual, dres, dweight};
  }
  for (size_t i = 0; i < results[0].size(); ++i)
    EXPECT_TRUE(test::bitwise_equal(results[0][i], results[1][i])) << "output #" << i;
}

std::vector<uint8_t> random_tokens(Rng& rng, size_t n, int V) {
  std::vector<uint8_t> t(n);
  for (auto& v : t) v = static_cast<uint8_t>(rng.index(V));
  return t;
}

TEST(Embedding, BackwardMatchesFiniteDifferencesAndAccumulates) {
  const int64_t M = 20, V = 6, d = 5;
  Rng rng(7);
  const std::vector<uint8_t> tokens = random_tokens(rng, M, V);
  std::vector<double> weight = rng.normal(V * d), w = rng.normal(M * d);
  auto loss = [&] {
    std::vector<double> out(M * d);
    embedding_forward_ref<double>(tokens.data(), M, weight.data(), d, out.data(), 1);
    return test::dot(out, w);
  };
  const std::vector<double> dweight0 = rng.normal(V * d);
  std::vector<double> dweight = dweight0;
  embedding_backward_ref<double>(tokens.data(), M, w.data(), V, d, dweight.data(), 2);
  for (size_t i = 0; i < dweight.size(); ++i) dweight[i] -= dweight0[i];
  const auto r = test::check_gradient(loss, weight, dweight);
  EXPECT_LT(test::rel_error(r.analytic, r.numeric), 1e-8);
}

TEST(Embedding, OpsGatherRowsAndAreThreadCountIndependent) {
  const int64_t B = 3, L = 700, V = 16, d = 130;  // d spans several column blocks
  Rng rng(8);
  const std::vector<uint8_t> tokens = random_tokens(rng, B * L, V);
  const std::vector<double> weight = rng.normal(V * d), dout = rng.normal(B * L * d);
  std::vector<Tensor> grads;
  for (int threads : {1, 3}) {
    CpuContext ctx(threads);
    Tensor tok = test::u8_tensor(ctx, {B, L}, tokens), wt = test::f32_tensor(ctx, {V, d}, weight);
    Tensor out = ctx.empty({B, L, d}, DType::F32);
    cpu::embedding_fwd(ctx, tok, wt, out);
    for (int64_t m = 0; m < B * L; m += 97)
      for (int64_t j = 0; j < d; ++j) ASSERT_EQ(out.data<float>()[m * d + j], wt.data<float>()[tokens[m] * d + j]);
    Tensor g = test::f32_tensor(ctx, {B, L, d}, dout), dweight = test::f32_zeros(ctx, {V, d});
    cpu::embedding_bwd(ctx, tok, g, dweight);
    grads.push_back(dweight);
  }
  EXPECT_TRUE(test::bitwise_equal(grads[0], grads[1]));
  std::vector<double> ref(V * d, 0.0);
  embedding_backward_ref<double>(tokens.data(), B * L, test::float_exact(dout).data(), V, d, ref.data(), 1);
  EXPECT_LT(test::rel_error(test::values(grads[0]), ref), 1e-7);
}

TEST(Embedding, RejectsTokensOutsideTheVocabulary) {
  CpuContext ctx(1);
  Tensor tok = test::u8_tensor(ctx, {1, 3}, {1, 2, 9});
  Tensor wt = test::f32_zeros(ctx, {8, 4}), out = ctx.empty({1, 3, 4}, DType::F32);
  try {
    cpu::embedding_fwd(ctx, tok, wt, out);
    FAIL() << "expected an exception";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("position 2"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace gm
