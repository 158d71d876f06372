// Device-side helpers shared by the kernels: f32/bf16 loads and stores, the activation
// functions, fast exp2, launch-size helpers and a 4-d strided indexer.
// Include only from .cu files.
#pragma once

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <stdexcept>
#include <string>

#include "mamba/tensor.h"

namespace gm::cuda {

using bf16_t = __nv_bfloat16;

// ---- element conversion ----------------------------------------------------------
__device__ __forceinline__ float to_f(float x) { return x; }
__device__ __forceinline__ float to_f(bf16_t x) { return __bfloat162float(x); }
template <class T> __device__ __forceinline__ T from_f(float x);
template <> __device__ __forceinline__ float from_f<float>(float x) { return x; }
template <> __device__ __forceinline__ bf16_t from_f<bf16_t>(float x) { return __float2bfloat16_rn(x); }
// The two bf16 of a 32-bit word as f32, exactly (a bf16 is the upper half of an f32): lo is
// the element at the lower address, hi the one after it. One integer instruction each.
__device__ __forceinline__ float bf16_lo(uint32_t w) { return __uint_as_float(w << 16); }
__device__ __forceinline__ float bf16_hi(uint32_t w) { return __uint_as_float(w & 0xffff0000u); }
// Element i % 2 of word w (i % 2 = 0: lo).
__device__ __forceinline__ float bf16_of(uint32_t w, int i) { return i % 2 ? bf16_hi(w) : bf16_lo(w); }

// ---- math ------------------------------------------------------------------------
constexpr float kLog2e = 1.4426950408889634f;

// 2^x on the special-function unit (relative error ~2^-22; flushes denormals).
__device__ __forceinline__ float ex2_approx(float x) {
  float y;
  asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(y) : "f"(x));
  return y;
}
__device__ __forceinline__ float sigmoid_f(float x) { return 1.f / (1.f + __expf(-x)); }
__device__ __forceinline__ float silu_f(float x) { return x * sigmoid_f(x); }
// d silu / dx = s * (1 + x * (1 - s)), s = sigmoid(x)
__device__ __forceinline__ float dsilu_f(float x) {
  const float s = sigmoid_f(x);
  return s * (1.f + x * (1.f - s));
}
// softplus as torch computes it (threshold 20: identity above).
__device__ __forceinline__ float softplus_f(float x) { return x > 20.f ? x : log1pf(__expf(x)); }

// ---- launch helpers --------------------------------------------------------------
inline unsigned blocks_for(int64_t n, int threads) {
  const int64_t b = (n + threads - 1) / threads;
  return static_cast<unsigned>(b < 1 ? 1 : (b > 0x7fffffff ? 0x7fffffff : b));
}

// Blocks for a grid-stride loop over n elements, capped (the loop covers the rest).
inline unsigned capped_blocks(int64_t n, int threads, unsigned cap = 65535u * 16u) {
  const unsigned b = blocks_for(n, threads);
  return b > cap ? cap : b;
}

// Up to 4-d tensor geometry in elements; maps a linear (row-major) index to an offset.
struct Strided4 {
  int64_t size[4] = {1, 1, 1, 1};
  int64_t stride[4] = {0, 0, 0, 0};
  __host__ __device__ int64_t offset(int64_t i) const {
    int64_t off = 0;
#pragma unroll
    for (int d = 3; d >= 0; --d) {
      const int64_t s = size[d];
      const int64_t q = i / s;
      off += (i - q * s) * stride[d];
      i = q;
    }
    return off;
  }
};

inline Strided4 strided4(const Tensor& t) {
  Strided4 g;
  const int nd = t.ndim();
  for (int d = 0; d < nd; ++d) {
    g.size[4 - nd + d] = t.size(d);
    g.stride[4 - nd + d] = t.stride(d);
  }
  return g;
}

// ---- argument checks (host) -------------------------------------------------------
inline void require(bool ok, const char* op, const std::string& what) {
  if (!ok) throw std::invalid_argument(std::string("gm::cuda::") + op + ": " + what);
}
inline void require_cuda(const Tensor& t, const char* op, const char* name) {
  require(t.defined() && t.device().is_cuda(), op, std::string(name) + " must be a CUDA tensor, got " +
                                                       (t.defined() ? t.describe() : std::string("undefined")));
}
inline void require_dtype(const Tensor& t, DType d, const char* op, const char* name) {
  require(t.dtype() == d, op, std::string(name) + " must be " + dtype_name(d) + ", got " + t.describe());
}
inline bool is_act(DType d) { return d == DType::F32 || d == DType::BF16; }

}  // namespace gm::cuda
