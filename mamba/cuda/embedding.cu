// Token embedding on CUDA, forward and backward.
// tokens u8 [B, L] (every id < V: the caller checks), weight / dweight f32 [V, d],
// out / dout f32 [B, L, d], all dense.
// Forward: float4 rows when d % 4 == 0 (the usual case), else one thread per element.
// Backward: tokens are split into fixed blocks of kTokensPerBlock; each block sums its
// tokens' rows in token order into per-block partials [blocks, V, d] (shared memory, one
// thread per column, no atomics), then column_sum adds the partials in block order, so
// dweight is bitwise identical run to run.
#include <algorithm>
#include <cstdint>

#include "mamba/cuda/check.cuh"
#include "mamba/cuda/context_cuda.h"
#include "mamba/cuda/device_util.cuh"
#include "mamba/cuda/reduce.cuh"
#include "mamba/ops.h"

namespace gm::cuda {

namespace {
constexpr int kMaxVocab = 32;
constexpr int kCols = 128;            // columns per backward block (one thread each)
constexpr int kTokensPerBlock = 1024;

__global__ void embedding_fwd_kernel(const uint8_t* __restrict__ tokens, const float* __restrict__ weight,
                                     float* __restrict__ out, int64_t M, int64_t d) {
  const int64_t total = M * d;
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < total;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t m = i / d, j = i - m * d;
    out[i] = weight[static_cast<int64_t>(tokens[m]) * d + j];
  }
}

// Rows of d % 4 == 0 floats, 16-byte aligned: each block copies kFwdRows rows as float4.
constexpr int kFwdRows = 16;
__global__ void embedding_fwd_vec4_kernel(const uint8_t* __restrict__ tokens, const float4* __restrict__ weight,
                                          float4* __restrict__ out, int64_t M, int d4) {
  const int64_t m0 = static_cast<int64_t>(blockIdx.x) * kFwdRows;
  for (int r = 0; r < kFwdRows; ++r) {
    const int64_t m = m0 + r;
    if (m >= M) return;
    const float4* w = weight + static_cast<int64_t>(tokens[m]) * d4;
    float4* o = out + m * d4;
    for (int j = threadIdx.x; j < d4; j += blockDim.x) o[j] = w[j];
  }
}

__global__ void embedding_bwd_partial_kernel(const uint8_t* __restrict__ tokens, const float* __restrict__ dout,
                                             int64_t M, int64_t d, int V, float* __restrict__ partial) {
  __shared__ float acc[kMaxVocab][kCols];
  const int64_t j = static_cast<int64_t>(blockIdx.y) * kCols + threadIdx.x;
  for (int v = 0; v < V; ++v) acc[v][threadIdx.x] = 0.f;
  const int64_t m0 = static_cast<int64_t>(blockIdx.x) * kTokensPerBlock;
  const int64_t m1 = min(M, m0 + kTokensPerBlock);
  if (j < d) {
    for (int64_t m = m0; m < m1; ++m) acc[tokens[m]][threadIdx.x] += dout[m * d + j];
    float* p = partial + static_cast<int64_t>(blockIdx.x) * V * d;
    for (int v = 0; v < V; ++v) p[v * d + j] = acc[v][threadIdx.x];
  }
}

void check_tokens(const Tensor& tokens, const char* op) {
  require_cuda(tokens, op, "tokens");
  require_dtype(tokens, DType::U8, op, "tokens");
  require(tokens.ndim() == 2 && tokens.is_contiguous(), op, "tokens must be dense [B, L], got " + tokens.describe());
}
}  // namespace

void embedding_fwd(Context& ctx, const Tensor& tokens, const Tensor& weight, Tensor& out) {
  CudaContext& c = as_cuda(ctx);
  const char* op = "embedding_fwd";
  check_tokens(tokens, op);
  require_cuda(weight, op, "weight");
  require_dtype(weight, DType::F32, op, "weight");
  require(weight.ndim() == 2 && weight.is_contiguous(), op, "weight must be dense [V, d]");
  const int64_t M = tokens.numel(), d = weight.size(1);
  require_cuda(out, op, "out");
  require_dtype(out, DType::F32, op, "out");
  require(out.is_contiguous() && out.numel() == M * d, op, "out must be dense [B, L, d], got " + out.describe());
  if (M * d == 0) return;
  const bool vec4 = d % 4 == 0 && d / 4 <= 0x7fffffff && reinterpret_cast<uintptr_t>(weight.raw()) % 16 == 0 &&
                    reinterpret_cast<uintptr_t>(out.raw()) % 16 == 0;
  if (vec4) {
    const int d4 = static_cast<int>(d / 4);
    const int threads = std::min(256, (d4 + 31) / 32 * 32);
    const int64_t blocks = (M + kFwdRows - 1) / kFwdRows;
    require(blocks <= 0x7fffffff, op, "too many tokens");
    embedding_fwd_vec4_kernel<<<static_cast<unsigned>(blocks), threads, 0, c.stream()>>>(
        tokens.data<uint8_t>(), static_cast<const float4*>(weight.raw()), static_cast<float4*>(out.raw()), M, d4);
  } else {
    embedding_fwd_kernel<<<capped_blocks(M * d, 256), 256, 0, c.stream()>>>(tokens.data<uint8_t>(),
                                                                            weight.data<float>(), out.data<float>(),
                                                                            M, d);
  }
  GM_CUDA_CHECK_LAUNCH();
}

void embedding_bwd(Context& ctx, const Tensor& tokens, const Tensor& dout, Tensor& dweight) {
  CudaContext& c = as_cuda(ctx);
  const char* op = "embedding_bwd";
  check_tokens(tokens, op);
  require_cuda(dweight, op, "dweight");
  require_dtype(dweight, DType::F32, op, "dweight");
  require(dweight.ndim() == 2 && dweight.is_contiguous(), op, "dweight must be dense [V, d]");
  const int64_t M = tokens.numel(), V = dweight.size(0), d = dweight.size(1);
  require(V <= kMaxVocab, op, "vocabularies above 32 rows are not supported on CUDA");
  require_cuda(dout, op, "dout");
  require_dtype(dout, DType::F32, op, "dout");
  require(dout.is_contiguous() && dout.numel() == M * d, op, "dout must be dense [B, L, d], got " + dout.describe());
  if (M == 0 || d == 0) return;
  const int64_t blocks = (M + kTokensPerBlock - 1) / kTokensPerBlock;
  require(blocks <= 0x7fffffff, op, "too many tokens");
  Tensor partial = Tensor::empty(c.allocator(), {blocks, V * d}, DType::F32);
  const dim3 grid(static_cast<unsigned>(blocks), static_cast<unsigned>((d + kCols - 1) / kCols));
  embedding_bwd_partial_kernel<<<grid, kCols, 0, c.stream()>>>(tokens.data<uint8_t>(), dout.data<float>(), M, d,
                                                               static_cast<int>(V), partial.data<float>());
  GM_CUDA_CHECK_LAUNCH();
  column_sum(c, partial.data<float>(), blocks, V * d, dweight.data<float>(), true);
}

}  // namespace gm::cuda
