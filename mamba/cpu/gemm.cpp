// Row-major strided-batched GEMM on the CPU through OpenBLAS (f32 only):
//   C[b] = alpha * op(A[b]) @ op(B[b]) + beta * C[b].
// Multithreaded OpenBLAS gives results that depend on its thread count, so OpenBLAS
// runs single-threaded on fixed tiles of C (kRowTile x kColTile per batch entry) that
// OpenMP spreads over ctx.threads(): each element is always computed by the same
// single-threaded call, whatever the thread count. beta = 0 ignores the old contents
// of C (NaN included), as BLAS does.
#include <cblas.h>

#include <algorithm>
#include <climits>
#include <string>

#include "mamba/cpu/checks.h"
#include "mamba/ops.h"

namespace gm::cpu {
namespace {

constexpr int64_t kRowTile = 64;
constexpr int64_t kColTile = 256;

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
  const float* bm = B.data<float>();
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
  openblas_set_num_threads(1);
  const int64_t row_tiles = (M + kRowTile - 1) / kRowTile, col_tiles = (N + kColTile - 1) / kColTile;
  const int64_t tiles = batch * row_tiles * col_tiles;
#pragma omp parallel for num_threads(ctx.threads()) schedule(dynamic)
  for (int64_t tile = 0; tile < tiles; ++tile) {
    const int64_t b = tile / (row_tiles * col_tiles);
    const int64_t i0 = (tile / col_tiles % row_tiles) * kRowTile, j0 = (tile % col_tiles) * kColTile;
    const int64_t rows = std::min(kRowTile, M - i0), cols = std::min(kColTile, N - j0);
    // Row i0 of op(A) starts at column i0 of the stored matrix when transposed; same for B's columns.
    const float* a_tile = a + b * stride_a + (trans_a ? i0 : i0 * lda);
    const float* b_tile = bm + b * stride_b + (trans_b ? j0 * ldb : j0);
    cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans, trans_b ? CblasTrans : CblasNoTrans,
                static_cast<int>(rows), static_cast<int>(cols), static_cast<int>(K), alpha, a_tile,
                static_cast<int>(lda), b_tile, static_cast<int>(ldb), beta, c + b * stride_c + i0 * ldc + j0,
                static_cast<int>(ldc));
  }
}

}  // namespace gm::cpu
