// Residual add + RMSNorm on CUDA (token-major [M, d], all dense), forward and backward.
//   forward:  r = residual (+ x); rstd = 1/sqrt(mean(r^2) + eps); out = r * rstd * weight
//   backward: xhat = r * rstd, g = dout * weight;
//             dresidual += rstd * (g - xhat * mean(g * xhat)); dweight += sum_m dout * xhat
// One warp per row. x is act or f32; out and dout are act (bf16 or f32); residual, rstd,
// weight, dresidual, dweight f32. dweight is deterministic: each block owns kRowsPerBlock
// rows, each warp sums its rows in order into its own shared-memory row, the block adds
// the warp rows in order into a partial, and column_sum adds the partials in block order.
#include "mamba/cuda/check.cuh"
#include "mamba/cuda/context_cuda.h"
#include "mamba/cuda/device_util.cuh"
#include "mamba/cuda/reduce.cuh"
#include "mamba/ops.h"

namespace gm::cuda {

namespace {
constexpr int kFwdWarps = 8;
constexpr int kBwdWarps = 4;
constexpr int kRowsPerBlock = 64;

__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

template <class Tx, class To>
__global__ void add_rmsnorm_fwd_kernel(const Tx* __restrict__ x, float* __restrict__ residual,
                                       const float* __restrict__ weight, float eps, To* __restrict__ out,
                                       float* __restrict__ rstd, int64_t M, int64_t d) {
  const int64_t m = static_cast<int64_t>(blockIdx.x) * kFwdWarps + threadIdx.x / 32;
  const int lane = threadIdx.x % 32;
  if (m >= M) return;
  float* r = residual + m * d;
  float ss = 0.f;
  for (int64_t j = lane; j < d; j += 32) {
    float v = r[j];
    if (x) {
      v += to_f(x[m * d + j]);
      r[j] = v;
    }
    ss += v * v;
  }
  ss = warp_sum(ss);
  const float rs = rsqrtf(ss / static_cast<float>(d) + eps);
  if (lane == 0) rstd[m] = rs;
  for (int64_t j = lane; j < d; j += 32) out[m * d + j] = from_f<To>(r[j] * rs * weight[j]);
}

template <class Tg>
__global__ void add_rmsnorm_bwd_kernel(const Tg* __restrict__ dout, const float* __restrict__ residual,
                                       const float* __restrict__ weight, const float* __restrict__ rstd,
                                       float* __restrict__ dresidual, float* __restrict__ partial, int64_t M,
                                       int64_t d) {
  extern __shared__ float acc[];  // [kBwdWarps][d]
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  float* my = acc + static_cast<int64_t>(warp) * d;
  for (int64_t j = lane; j < d; j += 32) my[j] = 0.f;
  const int64_t m0 = static_cast<int64_t>(blockIdx.x) * kRowsPerBlock;
  const int64_t m1 = min(M, m0 + kRowsPerBlock);
  for (int64_t m = m0 + warp; m < m1; m += kBwdWarps) {
    const float* r = residual + m * d;
    const Tg* g = dout + m * d;
    const float rs = rstd[m];
    float dot = 0.f;
    for (int64_t j = lane; j < d; j += 32) {
      const float gv = to_f(g[j]);
      const float xhat = r[j] * rs;
      dot += gv * weight[j] * xhat;
      my[j] += gv * xhat;
    }
    const float mean_dot = warp_sum(dot) / static_cast<float>(d);
    float* dr = dresidual + m * d;
    for (int64_t j = lane; j < d; j += 32) {
      const float xhat = r[j] * rs;
      dr[j] += rs * (to_f(g[j]) * weight[j] - xhat * mean_dot);
    }
  }
  __syncthreads();
  for (int64_t j = threadIdx.x; j < d; j += blockDim.x) {
    float s = 0.f;
    for (int w = 0; w < kBwdWarps; ++w) s += acc[static_cast<int64_t>(w) * d + j];
    partial[static_cast<int64_t>(blockIdx.x) * d + j] = s;
  }
}

void require_rows_md(const Tensor& t, int64_t M, int64_t d, const char* op, const char* name) {
  require_cuda(t, op, name);
  require(t.is_contiguous() && t.numel() == M * d && t.size(-1) == d, op,
          std::string(name) + " must be dense [M, d] with M = " + std::to_string(M) + ", d = " + std::to_string(d) +
              ", got " + t.describe());
}

template <class Tx, class To>
void launch_fwd(CudaContext& c, const Tensor* x, Tensor& residual, const Tensor& weight, float eps, Tensor& out,
                Tensor& rstd, int64_t M, int64_t d) {
  const unsigned blocks = blocks_for(M, kFwdWarps);
  add_rmsnorm_fwd_kernel<Tx, To><<<blocks, kFwdWarps * 32, 0, c.stream()>>>(
      x ? static_cast<const Tx*>(x->raw()) : nullptr, residual.data<float>(), weight.data<float>(), eps,
      static_cast<To*>(out.raw()), rstd.data<float>(), M, d);
  GM_CUDA_CHECK_LAUNCH();
}

template <class Tx>
void dispatch_out(CudaContext& c, const Tensor* x, Tensor& residual, const Tensor& weight, float eps, Tensor& out,
                  Tensor& rstd, int64_t M, int64_t d) {
  if (out.dtype() == DType::BF16)
    launch_fwd<Tx, bf16_t>(c, x, residual, weight, eps, out, rstd, M, d);
  else
    launch_fwd<Tx, float>(c, x, residual, weight, eps, out, rstd, M, d);
}
template <class Tg>
void launch_bwd(CudaContext& c, const Tensor& dout, const Tensor& residual, const Tensor& weight, const Tensor& rstd,
                Tensor& dresidual, Tensor& partial, int64_t M, int64_t d, int64_t blocks, size_t smem) {
  if (smem > 48 * 1024)
    GM_CUDA_CHECK(cudaFuncSetAttribute(add_rmsnorm_bwd_kernel<Tg>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                       static_cast<int>(smem)));
  add_rmsnorm_bwd_kernel<Tg><<<static_cast<unsigned>(blocks), kBwdWarps * 32, smem, c.stream()>>>(
      static_cast<const Tg*>(dout.raw()), residual.data<float>(), weight.data<float>(), rstd.data<float>(),
      dresidual.data<float>(), partial.data<float>(), M, d);
  GM_CUDA_CHECK_LAUNCH();
}
}  // namespace

void add_rmsnorm_fwd(Context& ctx, const Tensor* x, Tensor& residual, const Tensor& weight, float eps, Tensor& out,
                     Tensor& rstd) {
  CudaContext& c = as_cuda(ctx);
  const char* op = "add_rmsnorm_fwd";
  require_cuda(residual, op, "residual");
  require_dtype(residual, DType::F32, op, "residual");
  const int64_t d = residual.size(-1), M = d ? residual.numel() / d : 0;
  require_rows_md(residual, M, d, op, "residual");
  require_rows_md(out, M, d, op, "out");
  require(is_act(out.dtype()), op, "out must be f32 or bf16");
  require_cuda(weight, op, "weight");
  require_dtype(weight, DType::F32, op, "weight");
  require(weight.numel() == d && weight.is_contiguous(), op, "weight must be dense [d]");
  require_cuda(rstd, op, "rstd");
  require_dtype(rstd, DType::F32, op, "rstd");
  require(rstd.numel() == M && rstd.is_contiguous(), op, "rstd must be dense [M]");
  if (x) {
    require_rows_md(*x, M, d, op, "x");
    require(is_act(x->dtype()), op, "x must be f32 or bf16");
  }
  if (M == 0 || d == 0) return;
  if (x && x->dtype() == DType::BF16)
    dispatch_out<bf16_t>(c, x, residual, weight, eps, out, rstd, M, d);
  else
    dispatch_out<float>(c, x, residual, weight, eps, out, rstd, M, d);
}

void add_rmsnorm_bwd(Context& ctx, const Tensor& dout, const Tensor& residual, const Tensor& weight,
                     const Tensor& rstd, Tensor& dresidual, Tensor& dweight) {
  CudaContext& c = as_cuda(ctx);
  const char* op = "add_rmsnorm_bwd";
  require_cuda(residual, op, "residual");
  require_dtype(residual, DType::F32, op, "residual");
  const int64_t d = residual.size(-1), M = d ? residual.numel() / d : 0;
  require_rows_md(residual, M, d, op, "residual");
  require_rows_md(dout, M, d, op, "dout");
  require(is_act(dout.dtype()), op, "dout must be f32 or bf16");
  require_rows_md(dresidual, M, d, op, "dresidual");
  require_dtype(dresidual, DType::F32, op, "dresidual");
  require_cuda(weight, op, "weight");
  require(weight.dtype() == DType::F32 && weight.numel() == d && weight.is_contiguous(), op, "weight must be f32 [d]");
  require_cuda(dweight, op, "dweight");
  require(dweight.dtype() == DType::F32 && dweight.numel() == d && dweight.is_contiguous(), op,
          "dweight must be f32 [d]");
  require_cuda(rstd, op, "rstd");
  require(rstd.dtype() == DType::F32 && rstd.numel() == M && rstd.is_contiguous(), op, "rstd must be f32 [M]");
  if (M == 0 || d == 0) return;
  const int64_t blocks = (M + kRowsPerBlock - 1) / kRowsPerBlock;
  const size_t smem = sizeof(float) * kBwdWarps * static_cast<size_t>(d);
  require(smem <= 200 * 1024, op, "d_model too large for the CUDA RMSNorm backward");
  Tensor partial = Tensor::empty(c.allocator(), {blocks, d}, DType::F32);
  if (dout.dtype() == DType::BF16)
    launch_bwd<bf16_t>(c, dout, residual, weight, rstd, dresidual, partial, M, d, blocks, smem);
  else
    launch_bwd<float>(c, dout, residual, weight, rstd, dresidual, partial, M, d, blocks, smem);
  column_sum(c, partial.data<float>(), blocks, d, dweight.data<float>(), true);
}

}  // namespace gm::cuda
