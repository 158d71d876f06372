// Row-major strided-batched GEMM on the CPU through OpenBLAS (f32 only):
//   C[b] = alpha * op(A[b]) @ op(B[b]) + beta * C[b].
// OpenBLAS splits a product over threads by blocks of C, never over K, so every
// element is summed in the same order whatever the thread count. beta = 0 ignores the
// old contents of C (NaN included), as BLAS does.
#include <cblas.h>

#include <algorithm>
#include <climits>
#include <string>

#include "mamba/cpu/checks.h"
#include "mamba/ops.h"

namespace gm::cpu {
namespace {

void require_ld(int64_t ld, int64_t cols, const char* name) {
  if (ld < std::max<int64_t>(1, cols))
    detail::fail("gemm", std::string(name) + " = " + std::to_string(ld) + " is smaller than the " +
                             std::to_string(cols) + " columns of the stored matrix");
}

}  // namespace

void gemm(Context& ctx, bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha,
          const Tensor& A, int64_t lda, int64_t stride_a, const Tensor& B, int64_t ldb, int64_t stride_b,
          float beta, Tensor& C, int64_t ldc, int64_t stride_c, int64_t batch) {
  detail::require_dtype("gemm", "A", A, DType::F32);
  detail::require_dtype("gemm", "B", B, DType::F32);
  detail::require_dtype("gemm", "C", C, DType::F32);
  if (M < 0 || N < 0 || K < 0 || batch < 0) detail::fail("gemm", "negative size");
  if (M == 0 || N == 0 || batch == 0) return;
  require_ld(lda, trans_a ? M : K, "lda");
  require_ld(ldb, trans_b ? K : N, "ldb");
  require_ld(ldc, N, "ldc");
  for (int64_t v : {M, N, K, lda, ldb, ldc})
    if (v > INT_MAX) detail::fail("gemm", "a size or leading dimension exceeds the 32-bit BLAS interface");

  const float* a = A.data<float>();
  const float* b = B.data<float>();
  float* c = C.data<float>();
  if (K == 0 || alpha == 0.0f) {
    // Nothing to multiply: C = beta * C (with beta = 0 clearing C).
#pragma omp parallel for num_threads(ctx.threads()) schedule(static)
    for (int64_t i = 0; i < batch * M; ++i) {
      float* row = c + (i / M) * stride_c + (i % M) * ldc;
      for (int64_t j = 0; j < N; ++j) row[j] = beta == 0.0f ? 0.0f : beta * row[j];
    }
    return;
  }
  openblas_set_num_threads(ctx.threads());
  for (int64_t i = 0; i < batch; ++i) {
    cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans, trans_b ? CblasTrans : CblasNoTrans,
                static_cast<int>(M), static_cast<int>(N), static_cast<int>(K), alpha, a + i * stride_a,
                static_cast<int>(lda), b + i * stride_b, static_cast<int>(ldb), beta, c + i * stride_c,
                static_cast<int>(ldc));
  }
}

}  // namespace gm::cpu
