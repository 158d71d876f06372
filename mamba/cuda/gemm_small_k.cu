// Small-K bf16 product on the tensor cores (see gemm_small_k.h): C[b] = alpha op(A[b]) B[b] +
// beta C[b], A stored K x M (trans_a) or M x K, B stored K x N, C M x N, all row-major bf16,
// f32 accumulation.
//
// A block computes a 64 x 128 tile of C: A's 64 columns and B's 128 columns for every k and
// the C tile are copied to shared memory at once (cp.async, 16 bytes a thread along the
// rows; rows padded by 16 bytes so that ldmatrix's 8 row reads hit 8 different bank quads),
// each of the 4 warps forms 16 rows x 128 columns with mma.m16n8k16 (K / 16 steps; A and B
// fragments by ldmatrix.trans, as both are stored k-major) and adds its sums into the C tile
// in place, and the block writes the tile back 16 bytes a thread (whole 256-byte row pieces
// per 16 threads). The sum over k is the mma's, in a fixed order: the results are reproducible.
//
// Why: cuBLAS ran the mixer's x_proj input gradient (M = 512, K = 48, N = 131,072, 8 batch
// rows, beta = 1, H200) at 0.89 ms a call, ~2.5 TB/s for the 2.25 GB it must move (C read and
// written, B read), against 4.14 TB/s for a device copy. Measured (H200, `bench_model
// --profile 0`, the 8 calls of a training step; bench/RESULTS.md): cuBLAS 7.0-7.1 ms. This
// kernel's first version (operands by plain loads and shared stores, C prefetched into
// registers, the sums staged as f32 in shared memory, 3 blocks per SM, column tiles first in
// the grid) 9.2 ms; operands by cp.async 7.5 ms; a column tile's row tiles neighbours in the
// grid 7.0 ms; C staged by cp.async too and summed in place (80 registers, 6 blocks per SM)
// 5.2 ms, ~3.6 TB/s. d512 x 16 (M = 1,024, K = 64, N = 32,768, 4 rows, 16 calls): 3.7 ->
// 2.9 ms. dt_proj (A stored M x K, K = 16, beta = 0, 8 calls): 2.97 -> 2.67 ms.
#include <cuda_bf16.h>

#include <type_traits>

#include "mamba/cuda/check.cuh"
#include "mamba/cuda/context_cuda.h"
#include "mamba/cuda/device_util.cuh"
#include "mamba/cuda/gemm_small_k.h"
#include "mamba/cuda/mma.cuh"

namespace gm::cuda {

namespace {

constexpr int kTileM = 64, kTileN = 128, kThreads = 128;
constexpr int kPitchA = kTileM + 8;  // bf16 per shared row of A (k-major): ldmatrix rows on distinct bank quads
constexpr int kPitchB = kTileN + 8;  // of B (k-major), same reason
// Of the C tile: 68 words a row, so that a warp's 4-byte accesses to its fragments (8 rows x
// 4 words) fall on 32 distinct banks.
constexpr int kPitchC = kTileN + 8;

// A's tile: k-major [K][kPitchA] when A is stored K x M (trans_a), else m-major [64][K + 8]
// (rows of K + 8 elements: 8 consecutive rows start on distinct bank quads for every K here).
template <int K, bool kTransA>
struct SmallKSmem {
  alignas(16) bf16_t a[kTransA ? K : kTileM][kTransA ? kPitchA : K + 8];
  alignas(16) bf16_t b[K][kPitchB];
  alignas(16) bf16_t c[kTileM][kPitchC];
};

// 16 bytes global -> shared, the last 16 - bytes of them zero (bytes = 0: all zero).
__device__ __forceinline__ void cp_async16(void* dst, const void* src, int bytes) {
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(smem_addr(dst)), "l"(src), "r"(bytes)
               : "memory");
}

template <int K, bool kTransA>
__global__ void __launch_bounds__(kThreads) gemm_small_k_kernel(int64_t M, int64_t N, float alpha,
                                                                const bf16_t* __restrict__ A, int64_t lda,
                                                                int64_t stride_a, const bf16_t* __restrict__ B,
                                                                int64_t ldb, int64_t stride_b, float beta,
                                                                bf16_t* __restrict__ C, int64_t ldc, int64_t stride_c) {
  __shared__ SmallKSmem<K, kTransA> s;
  const int tid = threadIdx.x, lane = tid % 32, warp = tid / 32;
  // The row tiles of a column tile are neighbours in the grid, so that its B tile can come
  // from DRAM once and from L2 for the others (with the column tiles first, each row tile
  // would read all of B's 100 MB a product at row 0's shape again: 7.5 -> 7.0 ms).
  const int64_t m0 = static_cast<int64_t>(blockIdx.x) * kTileM, n0 = static_cast<int64_t>(blockIdx.y) * kTileN;
  const int64_t b = blockIdx.z;
  A += b * stride_a + (kTransA ? m0 : m0 * lda);
  B += b * stride_b + n0;
  C += b * stride_c + m0 * ldc + n0;
  const int64_t n_left = N - n0;  // columns of this tile that exist (a multiple of 8)

  // Every copy in flight at once, by cp.async (16 bytes each; zero past N): A's tile, B's K
  // rows of 128 (16 pieces), C's 64 rows of 128 (16 pieces; not read when beta = 0). The
  // operands as plain loads and shared stores: 9.2 against 7.5 ms.
  static_assert(K * (kTileM / 8) % kThreads == 0 && K * (kTileN / 8) % kThreads == 0, "whole pieces per thread");
#pragma unroll
  for (int j = 0; j < K * (kTileM / 8) / kThreads; ++j) {
    const int i = tid + j * kThreads;
    if constexpr (kTransA) {
      const int k = i / (kTileM / 8), p = i % (kTileM / 8);
      cp_async16(&s.a[k][8 * p], A + k * lda + 8 * p, 16);
    } else {
      const int m = i / (K / 8), p = i % (K / 8);
      cp_async16(&s.a[m][8 * p], A + m * lda + 8 * p, 16);
    }
  }
#pragma unroll
  for (int j = 0; j < K * (kTileN / 8) / kThreads; ++j) {
    const int i = tid + j * kThreads, k = i / (kTileN / 8), p = i % (kTileN / 8);
    const bool in = 8 * p < n_left;
    cp_async16(&s.b[k][8 * p], in ? B + k * ldb + 8 * p : B, in ? 16 : 0);
  }
  // C: 16 threads a row, 8 columns each, 8 rows a pass.
  const int col = 8 * (tid % 16), row0 = tid / 16;
  constexpr int kRowsPerThread = kTileM / (kThreads / 16);
  const bool col_in = col < n_left;
  if (beta != 0.f) {
#pragma unroll
    for (int i = 0; i < kRowsPerThread; ++i) {
      const int r = row0 + 8 * i;
      cp_async16(&s.c[r][col], col_in ? C + r * ldc + col : C, col_in ? 16 : 0);
    }
  }
  asm volatile("cp.async.commit_group;\ncp.async.wait_all;\n" ::: "memory");
  __syncthreads();

  // Warp w: rows 16 w .. 16 w + 15 of the tile, all 128 columns (16 mma tiles of 8).
  float acc[kTileN / 8][4];
#pragma unroll
  for (int j = 0; j < kTileN / 8; ++j) acc[j][0] = acc[j][1] = acc[j][2] = acc[j][3] = 0.f;
  const int mr = lane % 8, mq = lane / 8;  // ldmatrix: row mr of matrix mq
#pragma unroll
  for (int k0 = 0; k0 < K; k0 += 16) {
    // A fragment (m16 x k16): matrices (m, k0), (m + 8, k0), (m, k0 + 8), (m + 8, k0 + 8) give
    // a0..a3; from the k-major tile (A[m][k] = a[k][m]) transposed.
    uint32_t af[4];
    if constexpr (kTransA)
      ldmatrix_x4_trans(af, &s.a[k0 + 8 * (mq / 2) + mr][16 * warp + 8 * (mq % 2)]);
    else
      ldmatrix_x4(af, &s.a[16 * warp + 8 * (mq % 2) + mr][k0 + 8 * (mq / 2)]);
#pragma unroll
    for (int j = 0; j < kTileN / 8; j += 2) {
      // B fragments of column tiles j and j + 1 (k16 x n8, b0 = k0.., b1 = k0 + 8..):
      // matrices (k0, n), (k0 + 8, n), (k0, n + 8), (k0 + 8, n + 8).
      uint32_t bf[4];
      ldmatrix_x4_trans(bf, &s.b[k0 + 8 * (mq % 2) + mr][8 * j + 8 * (mq / 2)]);
      mma_bf16(acc[j], af, bf[0], bf[1]);
      mma_bf16(acc[j + 1], af, bf[2], bf[3]);
    }
  }

  // Each lane's sums into the C tile where they belong (rows g and g + 8 of the warp's 16,
  // columns 2q and 2q + 1 of each 8), C = alpha sum + beta C; beta = 0 ignores C (NaN
  // included), as BLAS does.
  const int g = lane / 4, q = lane % 4;
#pragma unroll
  for (int j = 0; j < kTileN / 8; ++j) {
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      uint32_t* const cell = reinterpret_cast<uint32_t*>(&s.c[16 * warp + g + 8 * h][8 * j + 2 * q]);
      float lo = alpha * acc[j][2 * h], hi = alpha * acc[j][2 * h + 1];
      if (beta != 0.f) {
        const uint32_t w = *cell;
        lo = fmaf(beta, bf16_lo(w), lo);
        hi = fmaf(beta, bf16_hi(w), hi);
      }
      *cell = pack_bf16(lo, hi);
    }
  }
  __syncthreads();
  if (!col_in) return;
#pragma unroll
  for (int i = 0; i < kRowsPerThread; ++i) {
    const int r = row0 + 8 * i;
    *reinterpret_cast<uint4*>(C + r * ldc + col) = *reinterpret_cast<const uint4*>(&s.c[r][col]);
  }
}

bool aligned16(const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; }

}  // namespace

bool gemm_small_k_applies(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, const Tensor& A, int64_t lda,
                          int64_t stride_a, const Tensor& B, int64_t ldb, int64_t stride_b, const Tensor& C,
                          int64_t ldc, int64_t stride_c, int64_t batch) {
  if (trans_b) return false;
  if (batch > 65535 || (N + kTileN - 1) / kTileN > 65535) return false;  // grid limits
  if (A.dtype() != DType::BF16 || B.dtype() != DType::BF16 || C.dtype() != DType::BF16) return false;
  if (!(K == 16 || K == 32 || K == 48 || K == 64) || M % kTileM != 0 || N % 8 != 0) return false;
  for (int64_t v : {lda, stride_a, ldb, stride_b, ldc, stride_c})
    if (v % 8 != 0) return false;
  return aligned16(A.raw()) && aligned16(B.raw()) && aligned16(C.raw());
}

void gemm_small_k(CudaContext& c, bool trans_a, int64_t M, int64_t N, int64_t K, float alpha, const Tensor& A, int64_t lda,
                  int64_t stride_a, const Tensor& B, int64_t ldb, int64_t stride_b, float beta, Tensor& C, int64_t ldc,
                  int64_t stride_c, int64_t batch) {
  const dim3 grid(static_cast<unsigned>(M / kTileM), static_cast<unsigned>((N + kTileN - 1) / kTileN),
                  static_cast<unsigned>(batch));
  const auto* a = static_cast<const bf16_t*>(A.raw());
  const auto* b = static_cast<const bf16_t*>(B.raw());
  auto* o = static_cast<bf16_t*>(C.raw());
  auto launch = [&](auto k, auto trans_a) {
    gemm_small_k_kernel<decltype(k)::value, decltype(trans_a)::value>
        <<<grid, kThreads, 0, c.stream()>>>(M, N, alpha, a, lda, stride_a, b, ldb, stride_b, beta, o, ldc, stride_c);
  };
  auto with_k = [&](auto trans_a) {
    switch (K) {
      case 16: launch(std::integral_constant<int, 16>{}, trans_a); break;
      case 32: launch(std::integral_constant<int, 32>{}, trans_a); break;
      case 48: launch(std::integral_constant<int, 48>{}, trans_a); break;
      case 64: launch(std::integral_constant<int, 64>{}, trans_a); break;
      default: throw std::logic_error("gemm_small_k: K must be 16, 32, 48 or 64");
    }
  };
  if (trans_a)
    with_k(std::true_type{});
  else
    with_k(std::false_type{});
  GM_CUDA_CHECK_LAUNCH();
}

}  // namespace gm::cuda
