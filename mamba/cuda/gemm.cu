// Row-major strided-batched GEMM on CUDA through cublasGemmStridedBatchedEx.
//   C[b] = alpha * op(A[b]) @ op(B[b]) + beta * C[b]
// cuBLAS is column-major: a row-major X is the column-major X^T, so we ask for
// C^T = op(B)^T op(A)^T, i.e. swap the operands and pass M and N swapped.
// Precision: f32 operands use CUBLAS_COMPUTE_32F_PEDANTIC (true fp32, no TF32); bf16
// operands accumulate in fp32 (CUBLAS_COMPUTE_32F) into an f32 or bf16 C.
// beta = 0 ignores the old contents of C (NaN included), as BLAS does.
// One shape runs on a kernel of its own (gemm_small_k.h): bf16 op(A) B with K <= 64, which
// cuBLAS ran well below the memory bandwidth.
#include <climits>
#include <string>

#include "mamba/cuda/check.cuh"
#include "mamba/cuda/context_cuda.h"
#include "mamba/cuda/device_util.cuh"
#include "mamba/cuda/gemm_small_k.h"
#include "mamba/ops.h"

namespace gm::cuda {

namespace {
cudaDataType_t cuda_type(DType d) {
  switch (d) {
    case DType::F32: return CUDA_R_32F;
    case DType::BF16: return CUDA_R_16BF;
    default: throw std::invalid_argument(std::string("gm::cuda::gemm: unsupported dtype ") + dtype_name(d));
  }
}

void require_ld(int64_t ld, int64_t cols, const char* name) {
  require(ld >= std::max<int64_t>(1, cols), "gemm",
          std::string(name) + " = " + std::to_string(ld) + " is smaller than the " + std::to_string(cols) +
              " columns of the stored matrix");
}
}  // namespace

void gemm(Context& ctx, bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha,
          const Tensor& A, int64_t lda, int64_t stride_a, const Tensor& B, int64_t ldb, int64_t stride_b,
          float beta, Tensor& C, int64_t ldc, int64_t stride_c, int64_t batch) {
  CudaContext& c = as_cuda(ctx);
  require_cuda(A, "gemm", "A");
  require_cuda(B, "gemm", "B");
  require_cuda(C, "gemm", "C");
  require(A.dtype() == B.dtype(), "gemm", "A and B must share a dtype: " + A.describe() + ", " + B.describe());
  require(is_act(A.dtype()) && is_act(C.dtype()), "gemm", "dtypes must be f32 or bf16");
  require(!(A.dtype() == DType::F32 && C.dtype() == DType::BF16), "gemm", "f32 operands need an f32 C");
  require(M >= 0 && N >= 0 && K >= 0 && batch >= 0, "gemm", "negative size");
  if (M == 0 || N == 0 || batch == 0) return;
  require_ld(lda, trans_a ? M : K, "lda");
  require_ld(ldb, trans_b ? K : N, "ldb");
  require_ld(ldc, N, "ldc");
  for (int64_t v : {M, N, K, lda, ldb, ldc, batch})
    require(v <= INT_MAX, "gemm", "a size, leading dimension or batch exceeds 32 bits");

  if (gemm_small_k_applies(trans_a, trans_b, M, N, K, A, lda, stride_a, B, ldb, stride_b, C, ldc, stride_c, batch)) {
    gemm_small_k(c, trans_a, M, N, K, alpha, A, lda, stride_a, B, ldb, stride_b, beta, C, ldc, stride_c, batch);
    return;
  }
  const bool fp32 = A.dtype() == DType::F32;
  const cublasComputeType_t compute = fp32 ? CUBLAS_COMPUTE_32F_PEDANTIC : CUBLAS_COMPUTE_32F;
  const cublasOperation_t op_a = trans_a ? CUBLAS_OP_T : CUBLAS_OP_N;
  const cublasOperation_t op_b = trans_b ? CUBLAS_OP_T : CUBLAS_OP_N;
  GM_CUBLAS_CHECK(cublasGemmStridedBatchedEx(
      c.cublas(), op_b, op_a, static_cast<int>(N), static_cast<int>(M), static_cast<int>(K), &alpha, B.raw(),
      cuda_type(B.dtype()), static_cast<int>(ldb), stride_b, A.raw(), cuda_type(A.dtype()), static_cast<int>(lda),
      stride_a, &beta, C.raw(), cuda_type(C.dtype()), static_cast<int>(ldc), stride_c, static_cast<int>(batch),
      compute, CUBLAS_GEMM_DEFAULT));
}

}  // namespace gm::cuda
