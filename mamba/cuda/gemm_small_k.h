// A tensor-core kernel for one shape of gm::cuda::gemm that cuBLAS runs well below the
// memory bandwidth: C[b] = alpha * op(A[b]) @ B[b] + beta * C[b] with bf16 A, B and C, a
// short inner dimension (K = 16, 32, 48 or 64) and a long N: memory-bound products whose
// cost is reading and writing C. In the mixer: the x_proj input gradient (dxc += W_xp^T @
// dx_dbl: M = d_inner, K = dt_rank + 2 d_state, N = L per batch row) and dt_proj (delta =
// W_dt @ dt_low, K = dt_rank).
// Row-major, as gemm.cu: A stored K x M (trans_a) or M x K (lda), B stored K x N (ldb), C
// M x N (ldc).
#pragma once

#include <cstdint>

#include "mamba/tensor.h"

namespace gm::cuda {

class CudaContext;

// Whether gemm() takes the kernel below for these arguments: not trans_b, every
// operand bf16, K in {16, 32, 48, 64}, M a multiple of 64, N a multiple of 8, and every
// base pointer, leading dimension and batch stride 16-byte aligned; N and batch within the
// grid's limits.
bool gemm_small_k_applies(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, const Tensor& A, int64_t lda,
                          int64_t stride_a, const Tensor& B, int64_t ldb, int64_t stride_b, const Tensor& C,
                          int64_t ldc, int64_t stride_c, int64_t batch);

void gemm_small_k(CudaContext& c, bool trans_a, int64_t M, int64_t N, int64_t K, float alpha, const Tensor& A, int64_t lda,
                  int64_t stride_a, const Tensor& B, int64_t ldb, int64_t stride_b, float beta, Tensor& C, int64_t ldc,
                  int64_t stride_c, int64_t batch);

}  // namespace gm::cuda
