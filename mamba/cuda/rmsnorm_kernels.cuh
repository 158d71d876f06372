// Kernels of the residual add + RMSNorm ops (rmsnorm.cu: add_rmsnorm_fwd/bwd in place;
// residual_norm.cu: add_rmsnorm_fwd_out out of place, add_rmsnorm_bwd_act with the
// act-dtype copy of the residual gradient). Token-major dense [M, d] rows.
//   forward:  r_out = r_in (+ x); rstd = 1/sqrt(mean(r_out^2) + eps); out = r_out * rstd * weight
//             (r_in == r_out is the in-place op: each element is read before it is written)
//   backward: xhat = r * rstd, g = dout * weight;
//             dresidual += rstd * (g - xhat * mean(g * xhat)) (and dres_act = that, cast);
//             dweight partials: sum over a block's rows of dout * xhat
// One warp per row. dweight is deterministic: each block owns kRowsPerBlock rows, each warp
// sums its rows in order into its own shared-memory row, the block adds the warp rows in
// order into a partial, and column_sum (reduce.cuh) adds the partials in block order.
// Include only from .cu files.
#pragma once

#include <string>

#include "mamba/cuda/check.cuh"
#include "mamba/cuda/context_cuda.h"
#include "mamba/cuda/device_util.cuh"
#include "mamba/cuda/reduce.cuh"

namespace gm::cuda::rmsnorm {

constexpr int kFwdWarps = 8;
constexpr int kBwdWarps = 4;
constexpr int kRowsPerBlock = 64;

__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

template <class Tx, class To>
__global__ void fwd_kernel(const Tx* __restrict__ x, const float* r_in, float* r_out, const float* __restrict__ weight,
                           float eps, To* __restrict__ out, float* __restrict__ rstd, int64_t M, int64_t d) {
  const int64_t m = static_cast<int64_t>(blockIdx.x) * kFwdWarps + threadIdx.x / 32;
  const int lane = threadIdx.x % 32;
  if (m >= M) return;
  const float* ri = r_in + m * d;
  float* ro = r_out + m * d;
  float ss = 0.f;
  for (int64_t j = lane; j < d; j += 32) {
    float v = ri[j];
    if (x) v += to_f(x[m * d + j]);
    if (x || ri != ro) ro[j] = v;
    ss += v * v;
  }
  ss = warp_sum(ss);
  const float rs = rsqrtf(ss / static_cast<float>(d) + eps);
  if (lane == 0) rstd[m] = rs;
  for (int64_t j = lane; j < d; j += 32) out[m * d + j] = from_f<To>(ro[j] * rs * weight[j]);
}

// Four consecutive elements of an act-dtype row as float (16 bytes of f32, 8 of bf16).
__device__ __forceinline__ float4 load4(const float* p) { return *reinterpret_cast<const float4*>(p); }
__device__ __forceinline__ float4 load4(const bf16_t* p) {
  const uint2 r = *reinterpret_cast<const uint2*>(p);
  return make_float4(bf16_lo(r.x), bf16_hi(r.x), bf16_lo(r.y), bf16_hi(r.y));
}
__device__ __forceinline__ void store4(float* p, float4 v) { *reinterpret_cast<float4*>(p) = v; }
__device__ __forceinline__ void store4(bf16_t* p, float4 v) {
  const __nv_bfloat162 lo = __floats2bfloat162_rn(v.x, v.y), hi = __floats2bfloat162_rn(v.z, v.w);
  uint2 r;
  r.x = *reinterpret_cast<const uint32_t*>(&lo);
  r.y = *reinterpret_cast<const uint32_t*>(&hi);
  *reinterpret_cast<uint2*>(p) = r;
}

// fwd_kernel for d = 128 V with 16-byte aligned rows: lane l holds elements 4 (32 i + l) ..
// +3 of the row (i < V) in registers, so the residual is read once and every access moves
// 16 bytes (8 for bf16). Same sums in the same order per lane as fwd_kernel, but the lanes'
// partial sums differ, so results agree with it to rounding, not bitwise.
template <class Tx, class To, int V>
__global__ void fwd_vec_kernel(const Tx* __restrict__ x, const float* r_in, float* r_out,
                               const float* __restrict__ weight, float eps, To* __restrict__ out,
                               float* __restrict__ rstd, int64_t M) {
  constexpr int d = 128 * V;
  const int64_t m = static_cast<int64_t>(blockIdx.x) * kFwdWarps + threadIdx.x / 32;
  const int lane = threadIdx.x % 32;
  if (m >= M) return;
  float4 v[V];
  float ss = 0.f;
#pragma unroll
  for (int i = 0; i < V; ++i) {
    const int64_t j = m * d + 4 * (32 * i + lane);
    float4 a = load4(r_in + j);
    if (x) {
      const float4 b = load4(x + j);
      a.x += b.x; a.y += b.y; a.z += b.z; a.w += b.w;
    }
    if (x || r_in != r_out) store4(r_out + j, a);
    ss += a.x * a.x + a.y * a.y + a.z * a.z + a.w * a.w;
    v[i] = a;
  }
  ss = warp_sum(ss);
  const float rs = rsqrtf(ss / static_cast<float>(d) + eps);
  if (lane == 0) rstd[m] = rs;
#pragma unroll
  for (int i = 0; i < V; ++i) {
    const int c = 4 * (32 * i + lane);
    const float4 w = load4(weight + c);
    store4(out + m * d + c, make_float4(v[i].x * rs * w.x, v[i].y * rs * w.y, v[i].z * rs * w.z, v[i].w * rs * w.w));
  }
}

// Ta: dtype of dres_act (ignored when it is null).
template <class Tg, class Ta>
__global__ void bwd_kernel(const Tg* __restrict__ dout, const float* __restrict__ residual,
                           const float* __restrict__ weight, const float* __restrict__ rstd,
                           float* __restrict__ dresidual, Ta* __restrict__ dres_act, float* __restrict__ partial,
                           int64_t M, int64_t d) {
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
      const float v = dr[j] + rs * (to_f(g[j]) * weight[j] - xhat * mean_dot);
      dr[j] = v;
      if (dres_act) dres_act[m * d + j] = from_f<Ta>(v);
    }
  }
  __syncthreads();
  for (int64_t j = threadIdx.x; j < d; j += blockDim.x) {
    float s = 0.f;
    for (int w = 0; w < kBwdWarps; ++w) s += acc[static_cast<int64_t>(w) * d + j];
    partial[static_cast<int64_t>(blockIdx.x) * d + j] = s;
  }
}

// bwd_kernel for d = 128 V with 16-byte aligned rows (lane l: elements 4 (32 i + l) .. +3):
// the row's dout and residual are read once into registers and every access moves 16 bytes
// (8 for bf16). Each warp's dweight row still sums its rows in order, so dweight is the
// same sums in the same order as bwd_kernel's; dresidual agrees with it to rounding.
template <class Tg, class Ta, int V>
__global__ void bwd_vec_kernel(const Tg* __restrict__ dout, const float* __restrict__ residual,
                               const float* __restrict__ weight, const float* __restrict__ rstd,
                               float* __restrict__ dresidual, Ta* __restrict__ dres_act, float* __restrict__ partial,
                               int64_t M) {
  constexpr int d = 128 * V;
  __shared__ float4 acc[kBwdWarps][d / 4];
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
#pragma unroll
  for (int i = 0; i < V; ++i) acc[warp][32 * i + lane] = make_float4(0.f, 0.f, 0.f, 0.f);
  float4 w[V];
#pragma unroll
  for (int i = 0; i < V; ++i) w[i] = load4(weight + 4 * (32 * i + lane));
  const int64_t m0 = static_cast<int64_t>(blockIdx.x) * kRowsPerBlock;
  const int64_t m1 = min(M, m0 + kRowsPerBlock);
  for (int64_t m = m0 + warp; m < m1; m += kBwdWarps) {
    const float rs = rstd[m];
    float4 g[V], xh[V];
    float dot = 0.f;
#pragma unroll
    for (int i = 0; i < V; ++i) {
      const int64_t j = m * d + 4 * (32 * i + lane);
      g[i] = load4(dout + j);
      const float4 r = load4(residual + j);
      xh[i] = make_float4(r.x * rs, r.y * rs, r.z * rs, r.w * rs);
      dot += g[i].x * w[i].x * xh[i].x;
      dot += g[i].y * w[i].y * xh[i].y;
      dot += g[i].z * w[i].z * xh[i].z;
      dot += g[i].w * w[i].w * xh[i].w;
      float4& a = acc[warp][32 * i + lane];
      a.x += g[i].x * xh[i].x;
      a.y += g[i].y * xh[i].y;
      a.z += g[i].z * xh[i].z;
      a.w += g[i].w * xh[i].w;
    }
    const float mean_dot = warp_sum(dot) / static_cast<float>(d);
#pragma unroll
    for (int i = 0; i < V; ++i) {
      const int64_t j = m * d + 4 * (32 * i + lane);
      float4 v = load4(dresidual + j);
      v.x += rs * (g[i].x * w[i].x - xh[i].x * mean_dot);
      v.y += rs * (g[i].y * w[i].y - xh[i].y * mean_dot);
      v.z += rs * (g[i].z * w[i].z - xh[i].z * mean_dot);
      v.w += rs * (g[i].w * w[i].w - xh[i].w * mean_dot);
      store4(dresidual + j, v);
      if (dres_act) store4(dres_act + j, v);
    }
  }
  __syncthreads();
  const float* flat = reinterpret_cast<const float*>(acc);
  for (int j = threadIdx.x; j < d; j += blockDim.x) {
    float s = 0.f;
    for (int wi = 0; wi < kBwdWarps; ++wi) s += flat[wi * d + j];
    partial[static_cast<int64_t>(blockIdx.x) * d + j] = s;
  }
}

inline void require_rows_md(const Tensor& t, int64_t M, int64_t d, const char* op, const char* name) {
  require_cuda(t, op, name);
  require(t.is_contiguous() && t.numel() == M * d && t.size(-1) == d, op,
          std::string(name) + " must be dense [M, d] with M = " + std::to_string(M) + ", d = " + std::to_string(d) +
              ", got " + t.describe());
}

inline void require_norm_vectors(const Tensor& weight, const Tensor& rstd, int64_t M, int64_t d, const char* op) {
  require_cuda(weight, op, "weight");
  require(weight.dtype() == DType::F32 && weight.numel() == d && weight.is_contiguous(), op, "weight must be f32 [d]");
  require_cuda(rstd, op, "rstd");
  require(rstd.dtype() == DType::F32 && rstd.numel() == M && rstd.is_contiguous(), op, "rstd must be f32 [M]");
}

template <class Tx, class To, int V>
void launch_fwd_vec(CudaContext& c, const Tensor* x, const Tensor& r_in, Tensor& r_out, const Tensor& weight,
                    float eps, Tensor& out, Tensor& rstd, int64_t M) {
  fwd_vec_kernel<Tx, To, V><<<blocks_for(M, kFwdWarps), kFwdWarps * 32, 0, c.stream()>>>(
      x ? static_cast<const Tx*>(x->raw()) : nullptr, r_in.data<float>(), r_out.data<float>(), weight.data<float>(),
      eps, static_cast<To*>(out.raw()), rstd.data<float>(), M);
  GM_CUDA_CHECK_LAUNCH();
}

inline bool aligned16(const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; }

// The vector kernel for d = 128, 256, 512, 1024 with 16-byte aligned tensors, else the
// general one. Measured before it (H200, d256 x 8 inference at 8 x 131,072): the general
// kernel's 4-byte accesses and second read of the residual took 8.48 ms per million tokens
// for the 9 norms, whose bytes take ~6.1 ms at the copy bandwidth.
template <class Tx, class To>
void launch_fwd_typed(CudaContext& c, const Tensor* x, const Tensor& r_in, Tensor& r_out, const Tensor& weight,
                      float eps, Tensor& out, Tensor& rstd, int64_t M, int64_t d) {
  const bool aligned = aligned16(r_in.raw()) && aligned16(r_out.raw()) && aligned16(out.raw()) &&
                       aligned16(weight.raw()) && (!x || aligned16(x->raw()));
  if (aligned) {
    switch (d) {
      case 128: return launch_fwd_vec<Tx, To, 1>(c, x, r_in, r_out, weight, eps, out, rstd, M);
      case 256: return launch_fwd_vec<Tx, To, 2>(c, x, r_in, r_out, weight, eps, out, rstd, M);
      case 512: return launch_fwd_vec<Tx, To, 4>(c, x, r_in, r_out, weight, eps, out, rstd, M);
      case 1024: return launch_fwd_vec<Tx, To, 8>(c, x, r_in, r_out, weight, eps, out, rstd, M);
      default: break;
    }
  }
  fwd_kernel<Tx, To><<<blocks_for(M, kFwdWarps), kFwdWarps * 32, 0, c.stream()>>>(
      x ? static_cast<const Tx*>(x->raw()) : nullptr, r_in.data<float>(), r_out.data<float>(), weight.data<float>(),
      eps, static_cast<To*>(out.raw()), rstd.data<float>(), M, d);
  GM_CUDA_CHECK_LAUNCH();
}

// Checks shapes and dtypes, then r_out = r_in (+ x) and the norm.
inline void launch_fwd(CudaContext& c, const char* op, const Tensor* x, const Tensor& r_in, Tensor& r_out,
                       const Tensor& weight, float eps, Tensor& out, Tensor& rstd) {
  require_cuda(r_in, op, "residual");
  require_dtype(r_in, DType::F32, op, "residual");
  const int64_t d = r_in.size(-1), M = d ? r_in.numel() / d : 0;
  require_rows_md(r_in, M, d, op, "residual");
  require_rows_md(r_out, M, d, op, "residual_out");
  require_dtype(r_out, DType::F32, op, "residual_out");
  require_rows_md(out, M, d, op, "out");
  require(is_act(out.dtype()), op, "out must be f32 or bf16");
  require_norm_vectors(weight, rstd, M, d, op);
  if (x) {
    require_rows_md(*x, M, d, op, "x");
    require(is_act(x->dtype()), op, "x must be f32 or bf16");
  }
  if (M == 0 || d == 0) return;
  const bool bf16_out = out.dtype() == DType::BF16;
  if (x && x->dtype() == DType::BF16) {
    if (bf16_out) launch_fwd_typed<bf16_t, bf16_t>(c, x, r_in, r_out, weight, eps, out, rstd, M, d);
    else launch_fwd_typed<bf16_t, float>(c, x, r_in, r_out, weight, eps, out, rstd, M, d);
  } else {
    if (bf16_out) launch_fwd_typed<float, bf16_t>(c, x, r_in, r_out, weight, eps, out, rstd, M, d);
    else launch_fwd_typed<float, float>(c, x, r_in, r_out, weight, eps, out, rstd, M, d);
  }
}

template <class Tg, class Ta, int V>
void launch_bwd_vec(CudaContext& c, const Tensor& dout, const Tensor& residual, const Tensor& weight,
                    const Tensor& rstd, Tensor& dresidual, Tensor* dres_act, Tensor& partial, int64_t M,
                    int64_t blocks) {
  bwd_vec_kernel<Tg, Ta, V><<<static_cast<unsigned>(blocks), kBwdWarps * 32, 0, c.stream()>>>(
      static_cast<const Tg*>(dout.raw()), residual.data<float>(), weight.data<float>(), rstd.data<float>(),
      dresidual.data<float>(), dres_act ? static_cast<Ta*>(dres_act->raw()) : nullptr, partial.data<float>(), M);
  GM_CUDA_CHECK_LAUNCH();
}

// The vector kernel for d = 128, 256, 512, 1024 with 16-byte aligned tensors (as the
// forward), else the general one.
template <class Tg, class Ta>
void launch_bwd_typed(CudaContext& c, const Tensor& dout, const Tensor& residual, const Tensor& weight,
                      const Tensor& rstd, Tensor& dresidual, Tensor* dres_act, Tensor& partial, int64_t M, int64_t d,
                      int64_t blocks, size_t smem) {
  const bool aligned = aligned16(dout.raw()) && aligned16(residual.raw()) && aligned16(weight.raw()) &&
                       aligned16(dresidual.raw()) && (!dres_act || aligned16(dres_act->raw()));
  if (aligned) {
    switch (d) {
      case 128: return launch_bwd_vec<Tg, Ta, 1>(c, dout, residual, weight, rstd, dresidual, dres_act, partial, M, blocks);
      case 256: return launch_bwd_vec<Tg, Ta, 2>(c, dout, residual, weight, rstd, dresidual, dres_act, partial, M, blocks);
      case 512: return launch_bwd_vec<Tg, Ta, 4>(c, dout, residual, weight, rstd, dresidual, dres_act, partial, M, blocks);
      case 1024: return launch_bwd_vec<Tg, Ta, 8>(c, dout, residual, weight, rstd, dresidual, dres_act, partial, M, blocks);
      default: break;
    }
  }
  if (smem > 48 * 1024)
    GM_CUDA_CHECK(cudaFuncSetAttribute(bwd_kernel<Tg, Ta>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                       static_cast<int>(smem)));
  bwd_kernel<Tg, Ta><<<static_cast<unsigned>(blocks), kBwdWarps * 32, smem, c.stream()>>>(
      static_cast<const Tg*>(dout.raw()), residual.data<float>(), weight.data<float>(), rstd.data<float>(),
      dresidual.data<float>(), dres_act ? static_cast<Ta*>(dres_act->raw()) : nullptr, partial.data<float>(), M, d);
  GM_CUDA_CHECK_LAUNCH();
}

// Checks shapes and dtypes, then the backward (dres_act may be null) and dweight.
inline void launch_bwd(CudaContext& c, const char* op, const Tensor& dout, const Tensor& residual,
                       const Tensor& weight, const Tensor& rstd, Tensor& dresidual, Tensor& dweight,
                       Tensor* dres_act) {
  require_cuda(residual, op, "residual");
  require_dtype(residual, DType::F32, op, "residual");
  const int64_t d = residual.size(-1), M = d ? residual.numel() / d : 0;
  require_rows_md(residual, M, d, op, "residual");
  require_rows_md(dout, M, d, op, "dout");
  require(is_act(dout.dtype()), op, "dout must be f32 or bf16");
  require_rows_md(dresidual, M, d, op, "dresidual");
  require_dtype(dresidual, DType::F32, op, "dresidual");
  if (dres_act) {
    require_rows_md(*dres_act, M, d, op, "dresidual_act");
    require(is_act(dres_act->dtype()), op, "dresidual_act must be f32 or bf16");
    require(dres_act->raw() != dresidual.raw(), op, "dresidual and dresidual_act must not alias");
  }
  require_norm_vectors(weight, rstd, M, d, op);
  require_cuda(dweight, op, "dweight");
  require(dweight.dtype() == DType::F32 && dweight.numel() == d && dweight.is_contiguous(), op,
          "dweight must be f32 [d]");
  if (M == 0 || d == 0) return;
  const int64_t blocks = (M + kRowsPerBlock - 1) / kRowsPerBlock;
  const size_t smem = sizeof(float) * kBwdWarps * static_cast<size_t>(d);
  require(smem <= 200 * 1024, op, "d_model too large for the CUDA RMSNorm backward");
  Tensor partial = Tensor::empty(c.allocator(), {blocks, d}, DType::F32);
  const bool g_bf16 = dout.dtype() == DType::BF16;
  const bool a_bf16 = dres_act && dres_act->dtype() == DType::BF16;
  if (g_bf16 && a_bf16)
    launch_bwd_typed<bf16_t, bf16_t>(c, dout, residual, weight, rstd, dresidual, dres_act, partial, M, d, blocks, smem);
  else if (g_bf16)
    launch_bwd_typed<bf16_t, float>(c, dout, residual, weight, rstd, dresidual, dres_act, partial, M, d, blocks, smem);
  else if (a_bf16)
    launch_bwd_typed<float, bf16_t>(c, dout, residual, weight, rstd, dresidual, dres_act, partial, M, d, blocks, smem);
  else
    launch_bwd_typed<float, float>(c, dout, residual, weight, rstd, dresidual, dres_act, partial, M, d, blocks, smem);
  column_sum(c, partial.data<float>(), blocks, d, dweight.data<float>(), true);
}

}  // namespace gm::cuda::rmsnorm
