// cuBLAS GEMM against the CPU (OpenBLAS) twin: every transpose combination, padded
// leading dimensions, strided batches with a broadcast operand (stride 0), beta != 0;
// f32 operands within 1e-5 (true fp32, no TF32) and bf16 operands (f32 accumulation,
// f32 or bf16 C) within 1e-2 of the CPU run on the same bf16-rounded inputs. The small-K
// kernel (gemm_small_k.h) against the same twin, at shapes that take it.
#include "mamba/cuda/gemm_small_k.h"
#include "tests/test_cuda_support.h"

#ifdef GENOMAMBA_HAVE_CUDA
namespace gm::test {
namespace {

using CudaGemm = CudaTest;

struct GemmCase {
  bool ta, tb;
  int64_t M, N, K, batch;
  bool broadcast_b;  // B shared by every batch (stride 0), as a weight
  float alpha, beta;
};

// pad: extra columns of every stored leading dimension. Returns whether the small-K kernel
// took the product.
bool run(CudaGemm& t, const GemmCase& g, DType operands, DType c_dtype, double tol, int64_t pad = 3) {
  SCOPED_TRACE("ta " + std::to_string(g.ta) + " tb " + std::to_string(g.tb) + " M" + std::to_string(g.M) + " N" +
               std::to_string(g.N) + " K" + std::to_string(g.K) + " batch " + std::to_string(g.batch) + " " +
               dtype_name(operands) + "->" + dtype_name(c_dtype));
  // Stored shapes, with `pad` extra columns in every leading dimension.
  const int64_t a_rows = g.ta ? g.K : g.M, a_cols = g.ta ? g.M : g.K;
  const int64_t b_rows = g.tb ? g.N : g.K, b_cols = g.tb ? g.K : g.N;
  const int64_t lda = a_cols + pad, ldb = b_cols + pad, ldc = g.N + pad;
  const int64_t sa = a_rows * lda, sb = g.broadcast_b ? 0 : b_rows * ldb, sc = g.M * ldc;
  Tensor A = t.normal({g.batch * sa});
  Tensor B = t.normal({(g.broadcast_b ? 1 : g.batch) * b_rows * ldb});
  Tensor C = t.normal({g.batch * sc});
  if (operands == DType::BF16) {
    CudaTest::round_bf16(A);
    CudaTest::round_bf16(B);
  }
  if (c_dtype == DType::BF16) CudaTest::round_bf16(C);
  Tensor dA = t.upload(A, operands), dB = t.upload(B, operands), dC = t.upload(C, c_dtype);
  const bool small_k = gm::cuda::gemm_small_k_applies(g.ta, g.tb, g.M, g.N, g.K, dA, lda, sa, dB, ldb, sb, dC, ldc, sc, g.batch);
  gm::cpu::gemm(*t.cpu_, g.ta, g.tb, g.M, g.N, g.K, g.alpha, A, lda, sa, B, ldb, sb, g.beta, C, ldc, sc, g.batch);
  gm::cuda::gemm(*t.gpu_, g.ta, g.tb, g.M, g.N, g.K, g.alpha, dA, lda, sa, dB, ldb, sb, g.beta, dC, ldc, sc, g.batch);
  EXPECT_LE(rel_error(t.download(dC), C), tol);
  return small_k;
}

TEST_F(CudaGemm, MatchesCpu) {
  SCOPED_TRACE(seed_note());
  const GemmCase cases[] = {
      {false, false, 37, 53, 71, 1, false, 1.f, 0.f},   {false, true, 64, 48, 33, 3, true, 1.f, 0.f},
      {true, false, 29, 130, 64, 2, false, 0.5f, 1.f},  {true, true, 100, 7, 257, 4, true, -1.f, 0.25f},
      {false, true, 1, 16, 256, 1, false, 1.f, 1.f},    {false, false, 512, 64, 96, 2, true, 1.f, 0.f},
  };
  for (const GemmCase& g : cases) {
    run(*this, g, DType::F32, DType::F32, 1e-5);
    run(*this, g, DType::BF16, DType::F32, 1e-2);
    run(*this, g, DType::BF16, DType::BF16, 1e-2);
  }
}

// The mixer's x_proj input gradient, dt_proj and their neighbours: bf16 A^T B and A B with
// K = 16..64, whole 64-row tiles, N a multiple of 8 but not of the kernel's 128 columns,
// 16-byte aligned rows; the kernel must take them (and must not take the f32 or unaligned
// ones).
TEST_F(CudaGemm, SmallKKernelMatchesCpu) {
  SCOPED_TRACE(seed_note());
  const GemmCase cases[] = {
      {true, false, 128, 1000, 48, 3, false, 1.f, 1.f},   {true, false, 64, 136, 16, 2, true, 0.5f, 0.f},
      {true, false, 192, 264, 64, 1, false, -1.f, 0.25f},  {true, false, 64, 8, 32, 2, false, 1.f, 1.f},
      {false, false, 128, 1000, 16, 3, false, 1.f, 0.f},  {false, false, 64, 136, 32, 2, true, 0.5f, 1.f},
      {false, false, 192, 264, 48, 1, false, -1.f, 0.25f}, {false, false, 64, 8, 64, 2, false, 1.f, 1.f},
  };
  for (const GemmCase& g : cases) {
    EXPECT_TRUE(run(*this, g, DType::BF16, DType::BF16, 1e-2, 8)) << "the small-K kernel did not take it";
    EXPECT_FALSE(run(*this, g, DType::BF16, DType::BF16, 1e-2, 3)) << "unaligned rows";
    EXPECT_FALSE(run(*this, g, DType::F32, DType::F32, 1e-5, 8)) << "f32";
  }
}

// beta = 0 ignores C, NaN included, in the small-K kernel too (whole tiles, no padding: the
// kernel writes every element).
TEST_F(CudaGemm, SmallKKernelBetaZeroOverwritesNaN) {
  SCOPED_TRACE(seed_note());
  const int64_t M = 64, N = 256, K = 48;
  Tensor A = normal({K * M}), B = normal({K * N}), C = host({M * N});
  round_bf16(A);
  round_bf16(B);
  gm::cpu::fill(*cpu_, C, 0.f);
  Tensor dA = upload(A, DType::BF16), dB = upload(B, DType::BF16), dC = dev({M * N}, DType::BF16);
  poison(dC);
  ASSERT_TRUE(gm::cuda::gemm_small_k_applies(true, false, M, N, K, dA, M, 0, dB, N, 0, dC, N, 0, 1));
  gm::cpu::gemm(*cpu_, true, false, M, N, K, 1.f, A, M, 0, B, N, 0, 0.f, C, N, 0, 1);
  gm::cuda::gemm(*gpu_, true, false, M, N, K, 1.f, dA, M, 0, dB, N, 0, 0.f, dC, N, 0, 1);
  EXPECT_LE(rel_error(download(dC), C), 1e-2);
}

// beta = 0 ignores whatever C held, NaN included, as BLAS does.
TEST_F(CudaGemm, BetaZeroOverwritesNaN) {
  SCOPED_TRACE(seed_note());
  Tensor A = normal({8 * 16}), B = normal({16 * 12}), C = host({8 * 12});
  gm::cpu::fill(*cpu_, C, 0.f);
  Tensor dA = upload(A), dB = upload(B), dC = dev({8 * 12}, DType::F32);
  poison(dC);
  gm::cpu::gemm(*cpu_, false, false, 8, 12, 16, 1.f, A, 16, 0, B, 12, 0, 0.f, C, 12, 0, 1);
  gm::cuda::gemm(*gpu_, false, false, 8, 12, 16, 1.f, dA, 16, 0, dB, 12, 0, 0.f, dC, 12, 0, 1);
  EXPECT_LE(rel_error(download(dC), C), 1e-5);
}

}  // namespace
}  // namespace gm::test
#endif
