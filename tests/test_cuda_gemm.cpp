// cuBLAS GEMM against the CPU (OpenBLAS) twin: every transpose combination, padded
// leading dimensions, strided batches with a broadcast operand (stride 0), beta != 0;
// f32 operands within 1e-5 (true fp32, no TF32) and bf16 operands (f32 accumulation,
// f32 or bf16 C) within 1e-2 of the CPU run on the same bf16-rounded inputs.
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

void run(CudaGemm& t, const GemmCase& g, DType operands, DType c_dtype, double tol) {
  SCOPED_TRACE("ta " + std::to_string(g.ta) + " tb " + std::to_string(g.tb) + " M" + std::to_string(g.M) + " N" +
               std::to_string(g.N) + " K" + std::to_string(g.K) + " batch " + std::to_string(g.batch) + " " +
               dtype_name(operands) + "->" + dtype_name(c_dtype));
  // Stored shapes, with 3 extra columns of padding in every leading dimension.
  const int64_t a_rows = g.ta ? g.K : g.M, a_cols = g.ta ? g.M : g.K;
  const int64_t b_rows = g.tb ? g.N : g.K, b_cols = g.tb ? g.K : g.N;
  const int64_t lda = a_cols + 3, ldb = b_cols + 3, ldc = g.N + 3;
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
  gm::cpu::gemm(*t.cpu_, g.ta, g.tb, g.M, g.N, g.K, g.alpha, A, lda, sa, B, ldb, sb, g.beta, C, ldc, sc, g.batch);
  gm::cuda::gemm(*t.gpu_, g.ta, g.tb, g.M, g.N, g.K, g.alpha, dA, lda, sa, dB, ldb, sb, g.beta, dC, ldc, sc, g.batch);
  EXPECT_LE(rel_error(t.download(dC), C), tol);
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
