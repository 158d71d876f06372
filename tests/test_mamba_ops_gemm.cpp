// Strided-batched GEMM against a naive triple loop (four transpose combinations,
// padded leading dimensions, batch strides including 0, alpha and beta), beta = 0
// ignoring NaN in C, K = 0, and thread-count independence.
#include <gtest/gtest.h>

#include <array>

#include "mamba/ops.h"
#include "tests/test_mamba_ops_helpers.h"

namespace gm {
namespace {

using test::Rng;

struct GemmShape {
  bool ta, tb;
  int64_t M, N, K, batch;
  int64_t lda, ldb, ldc, sa, sb, sc;
};

// C[b] = alpha op(A[b]) op(B[b]) + beta C[b] in double over the same storage layout.
void naive_gemm(const GemmShape& s, double alpha, const std::vector<double>& A, const std::vector<double>& B,
                double beta, std::vector<double>& C) {
  for (int64_t b = 0; b < s.batch; ++b)
    for (int64_t i = 0; i < s.M; ++i)
      for (int64_t j = 0; j < s.N; ++j) {
        double acc = 0;
        for (int64_t k = 0; k < s.K; ++k) {
          const double a = s.ta ? A[b * s.sa + k * s.lda + i] : A[b * s.sa + i * s.lda + k];
          const double bv = s.tb ? B[b * s.sb + j * s.ldb + k] : B[b * s.sb + k * s.ldb + j];
          acc += a * bv;
        }
        double& c = C[b * s.sc + i * s.ldc + j];
        c = alpha * acc + beta * c;
      }
}

// Storage needed by a batch of (rows x cols) matrices with leading dimension ld.
size_t extent(int64_t batch, int64_t stride, int64_t rows, int64_t ld) {
  return static_cast<size_t>((batch - 1) * stride + (rows - 1) * ld + ld);
}

class GemmTranspose : public ::testing::TestWithParam<std::tuple<bool, bool>> {};

TEST_P(GemmTranspose, MatchesNaiveLoopWithStridesAndBeta) {
  const auto [ta, tb] = GetParam();
  // A small product, and one spanning several of the op's tiles of C in both directions.
  for (const auto [M, N, K, batch] : {std::array<int64_t, 4>{5, 7, 9, 3}, std::array<int64_t, 4>{130, 300, 17, 2}}) {
    GemmShape s{ta, tb, M, N, K, batch, 0, 0, 0, 0, 0, 0};
    // Stored shapes: A is M x K (K x M when transposed), B is K x N (N x K); rows padded.
    s.lda = (ta ? s.M : s.K) + 2;
    s.ldb = (tb ? s.K : s.N) + 2;
    s.ldc = s.N + 3;
    s.sa = (ta ? s.K : s.M) * s.lda + 1;
    s.sb = 0;  // B broadcast over the batch, like a weight
    s.sc = s.M * s.ldc + 4;
    Rng rng(ta * 2 + tb);
    const auto A = test::float_exact(rng.normal(extent(s.batch, s.sa, ta ? s.K : s.M, s.lda)));
    const auto B = test::float_exact(rng.normal(extent(1, 0, tb ? s.N : s.K, s.ldb)));
    auto C = test::float_exact(rng.normal(extent(s.batch, s.sc, s.M, s.ldc)));
    const double alpha = 0.75, beta = -0.5;
    CpuContext ctx(2);
    Tensor tA = test::f32_tensor(ctx, {static_cast<int64_t>(A.size())}, A);
    Tensor tB = test::f32_tensor(ctx, {static_cast<int64_t>(B.size())}, B);
    Tensor tC = test::f32_tensor(ctx, {static_cast<int64_t>(C.size())}, C);
    cpu::gemm(ctx, ta, tb, s.M, s.N, s.K, alpha, tA, s.lda, s.sa, tB, s.ldb, s.sb, beta, tC, s.ldc, s.sc, s.batch);
    naive_gemm(s, alpha, A, B, beta, C);  // padding entries stay untouched in both
    EXPECT_LT(test::rel_error(test::values(tC), C), 1e-6) << "M " << M;
  }
}

INSTANTIATE_TEST_SUITE_P(All, GemmTranspose, ::testing::Combine(::testing::Bool(), ::testing::Bool()));

TEST(Gemm, BetaZeroIgnoresNanInC) {
  CpuContext ctx(1);
  Tensor A = test::f32_tensor(ctx, {2, 3}, {1, 2, 3, 4, 5, 6});
  Tensor B = test::f32_tensor(ctx, {3, 2}, {1, 0, 0, 1, 1, 1});
  Tensor C = test::f32_tensor(ctx, {2, 2}, {NAN, NAN, NAN, NAN});
  cpu::gemm(ctx, false, false, 2, 2, 3, 1.0f, A, 3, 0, B, 2, 0, 0.0f, C, 2, 0, 1);
  EXPECT_EQ(test::values(C), (std::vector<double>{4, 5, 10, 11}));
}

TEST(Gemm, EmptyInnerDimensionScalesC) {
  CpuContext ctx(1);
  Tensor A = test::f32_zeros(ctx, {1}), B = test::f32_zeros(ctx, {1});
  Tensor C = test::f32_tensor(ctx, {2, 2}, {1, 2, 3, 4});
  cpu::gemm(ctx, false, false, 2, 2, 0, 1.0f, A, 1, 0, B, 2, 0, 2.0f, C, 2, 0, 1);
  EXPECT_EQ(test::values(C), (std::vector<double>{2, 4, 6, 8}));
}

TEST(Gemm, ResultsDoNotDependOnTheThreadCount) {
  const int64_t M = 384, N = 320, K = 448;
  Rng rng(12);
  const auto A = rng.normal(M * K), B = rng.normal(K * N);
  std::vector<Tensor> results;
  for (int threads : {1, 2, 3}) {
    CpuContext ctx(threads);
    Tensor tA = test::f32_tensor(ctx, {M, K}, A), tB = test::f32_tensor(ctx, {N, K}, B);
    Tensor tC = test::f32_zeros(ctx, {M, N});
    cpu::gemm(ctx, false, true, M, N, K, 1.0f, tA, K, 0, tB, K, 0, 0.0f, tC, N, 0, 1);
    results.push_back(tC);
  }
  EXPECT_TRUE(test::bitwise_equal(results[0], results[1]));
  EXPECT_TRUE(test::bitwise_equal(results[0], results[2]));
}

TEST(Gemm, RejectsBf16AndShortLeadingDimensions) {
  CpuContext ctx(1);
  Tensor A16 = ctx.empty({4, 4}, DType::BF16), A = test::f32_zeros(ctx, {4, 4}), C = test::f32_zeros(ctx, {4, 4});
  EXPECT_THROW(cpu::gemm(ctx, false, false, 4, 4, 4, 1, A16, 4, 0, A, 4, 0, 0, C, 4, 0, 1), std::invalid_argument);
  EXPECT_THROW(cpu::gemm(ctx, false, false, 4, 4, 4, 1, A, 3, 0, A, 4, 0, 0, C, 4, 0, 1), std::invalid_argument);
}

}  // namespace
}  // namespace gm
