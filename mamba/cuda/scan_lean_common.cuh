// Pieces shared by the "lean" selective-scan kernels (scan_fwd_lean.cuh, scan_bwd_lean.cuh):
// branch-free activations, 4-wide row loads and asynchronous global -> shared copies.
//
// Why branch-free: the recurrence kernels unroll 8 or 16 steps; a data-dependent branch
// inside a step (softplus ranges, document starts, the sequence end) cuts the unrolled
// body into one basic block per step, and the compiler can then no longer overlap one
// step's activations and exponentials with the previous step's multiply-adds. The lean
// kernels test for resets and the sequence end once per slice and run a straight-line
// body when neither occurs.
//
// exp2 on the FMA pipe: the thread-per-channel kernels wait mostly on the MIO queue, which
// the special-function unit shares with shared-memory loads; a degree-5 polynomial
// (about 11 FMA-pipe instructions, relative error ~2e-7, as ex2.approx) for some of the
// 16 states per step takes exponentials off that queue.
//
// Asynchronous copies (cp.async): a row slice loaded into registers "ahead" can be moved
// by the compiler next to its use when registers are short (Nsight Compute showed the
// thread-per-channel kernels stalled on global loads most of the time); a copy into
// shared memory is issued where it is written and completes on its own.
#pragma once

#include "mamba/cuda/scan_common.cuh"

namespace gm::cuda::scan::lean {

static_assert(kMaxState == 16, "the lean kernels unroll over 16 states");

// softplus(x) = log(1 + e^x) (identity above 20). Both the series, accurate below -3 where
// 1 + e rounds, and the log are evaluated, then selected: no branch.
__device__ __forceinline__ float softplus(float x) {
  const float e = ex2_approx(x * kLog2e);
  const float series = e * (1.f - e * (0.5f - e * (0.33333334f - 0.25f * e)));
  const float lg = __logf(1.f + e);
  const float r = x < -3.f ? series : lg;
  return x > 20.f ? x : r;
}
__device__ __forceinline__ float sigmoid(float x) { return __fdividef(1.f, 1.f + ex2_approx(-x * kLog2e)); }
__device__ __forceinline__ float dt_of(float raw, bool sp) { return sp ? softplus(raw) : raw; }
__device__ __forceinline__ float dt_grad(float raw, bool sp) {
  return sp ? (raw > 20.f ? 1.f : sigmoid(raw)) : 1.f;
}

// 2^x with FMA-pipe instructions only: x = j + f (j integer, |f| <= 1/2), 2^f by a
// degree-5 minimax polynomial, 2^j added into the exponent bits. x is clamped to
// [-125, 126], so the result stays a normal float (2^-125 where ex2.approx.ftz gives 0:
// far below anything the recurrence resolves).
__device__ __forceinline__ float exp2_fma(float x) {
  x = fminf(fmaxf(x, -125.f), 126.f);
  const float shifted = x + 12582912.f;  // 1.5 * 2^23: rounds x to an integer in the low bits
  const float j = shifted - 12582912.f;
  const float f = x - j;
  float p = 1.328230486e-03f;
  p = fmaf(p, f, 9.675589390e-03f);
  p = fmaf(p, f, 5.550695211e-02f);
  p = fmaf(p, f, 2.402211875e-01f);
  p = fmaf(p, f, 6.931470037e-01f);
  p = fmaf(p, f, 1.000000119e+00f);
  return __int_as_float(__float_as_int(p) + (__float_as_int(shifted) << 23));
}

// 2^x for state n of 16, of which the last kPoly go to the FMA pipe.
template <int kPoly>
__device__ __forceinline__ float exp2_state(float x, int n) {
  return n >= kMaxState - kPoly ? exp2_fma(x) : ex2_approx(x);
}

// Where the lean backward's reverse chunk summary leaves, for every kFlowStep-step sub-chunk
// of the chunks k0 .. k0 + window - 1, what its main kernel needs to walk the sub-chunks
// forwards: the gradient flowing into the sub-chunk's last state from the rest of its chunk
// (a zero carry at the chunk's end), 16 states as 4 float4, and the sum of dt over the
// chunk's steps after the sub-chunk (the bits kNoCarry when one of them starts a document:
// no carry gets through; dt may be negative without softplus). Layout
// [batch][chunk - k0][sub-chunk][channel]; scan_segments.h, flow_window_chunks, bounds the
// window.
constexpr uint32_t kNoCarry = 0xffffffffu;  // a NaN: compared as bits
struct FlowArgs {
  int64_t k0, window;
  float4* flows;    // 4 per slot
  float* dt_after;  // 1 per slot
  __device__ __forceinline__ int64_t slot(const Params& p, int64_t b, int64_t k, int j, int64_t c) const {
    return ((b * window + (k - k0)) * kFlowSubs + j) * p.channels + c;
  }
};

// 16 values (one step's B or C row) staged in shared memory as loaded, as f32.
__device__ __forceinline__ void row16(const float* p, float (&v)[kMaxState]) {
#pragma unroll
  for (int q = 0; q < 4; ++q) {
    const float4 f = reinterpret_cast<const float4*>(p)[q];
    v[4 * q] = f.x; v[4 * q + 1] = f.y; v[4 * q + 2] = f.z; v[4 * q + 3] = f.w;
  }
}
__device__ __forceinline__ void row16(const bf16_t* p, float (&v)[kMaxState]) {
#pragma unroll
  for (int q = 0; q < 2; ++q) {
    const uint4 r = reinterpret_cast<const uint4*>(p)[q];
    const uint32_t w[4] = {r.x, r.y, r.z, r.w};
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      v[8 * q + 2 * i] = bf16_lo(w[i]);
      v[8 * q + 2 * i + 1] = bf16_hi(w[i]);
    }
  }
}

// 4 consecutive elements of a row as loaded (converted to f32 when read), 0 past L.
template <class T> struct Raw4;
template <> struct Raw4<bf16_t> {
  uint2 r;
  __device__ __forceinline__ void load(const bf16_t* row, int64_t t, int64_t L, bool aligned) {
    if (aligned && t + 4 <= L) {
      r = *reinterpret_cast<const uint2*>(row + t);
    } else {
      const uint16_t* q = reinterpret_cast<const uint16_t*>(row);
      uint32_t w[2];
#pragma unroll
      for (int i = 0; i < 2; ++i) {
        const uint32_t lo = t + 2 * i < L ? q[t + 2 * i] : 0u;
        const uint32_t hi = t + 2 * i + 1 < L ? q[t + 2 * i + 1] : 0u;
        w[i] = lo | (hi << 16);
      }
      r = make_uint2(w[0], w[1]);
    }
  }
  __device__ __forceinline__ void zero() { r = make_uint2(0u, 0u); }
  __device__ __forceinline__ float get(int i) const {
    return bf16_of(i < 2 ? r.x : r.y, i);
  }
};
template <> struct Raw4<float> {
  float4 a;
  __device__ __forceinline__ void load(const float* row, int64_t t, int64_t L, bool aligned) {
    if (aligned && t + 4 <= L) {
      a = *reinterpret_cast<const float4*>(row + t);
    } else {
      a.x = t < L ? row[t] : 0.f;
      a.y = t + 1 < L ? row[t + 1] : 0.f;
      a.z = t + 2 < L ? row[t + 2] : 0.f;
      a.w = t + 3 < L ? row[t + 3] : 0.f;
    }
  }
  __device__ __forceinline__ void zero() { a = make_float4(0.f, 0.f, 0.f, 0.f); }
  __device__ __forceinline__ float get(int i) const { return i == 0 ? a.x : i == 1 ? a.y : i == 2 ? a.z : a.w; }
};

// 16 bytes global -> shared, of which the first `bytes` are read and the rest zero-filled
// (src need not be readable past them). Through L1, so that neighbours' copies share lines.
__device__ __forceinline__ void cp_async16(void* smem_dst, const void* src, int bytes) {
  const unsigned dst = static_cast<unsigned>(__cvta_generic_to_shared(smem_dst));
  asm volatile("cp.async.ca.shared.global [%0], [%1], 16, %2;\n" ::"r"(dst), "l"(src), "r"(bytes) : "memory");
}
// 16 bytes of row[t ..] into shared memory, 0 from lim on: an asynchronous copy for an
// aligned row, else element loads and one store.
template <class T>
__device__ __forceinline__ void copy16_bounded(T* dst, const T* row, int64_t t, int64_t lim, bool aligned) {
  constexpr int kPer = 16 / static_cast<int>(sizeof(T));
  if (aligned) {
    const int64_t n = lim - t;
    const int bytes = n <= 0 ? 0 : static_cast<int>((n < kPer ? n : kPer) * static_cast<int64_t>(sizeof(T)));
    cp_async16(dst, bytes > 0 ? static_cast<const void*>(row + t) : static_cast<const void*>(row), bytes);
  } else {
    uint32_t w[4] = {0u, 0u, 0u, 0u};
    if constexpr (sizeof(T) == 2) {
      const uint16_t* q = reinterpret_cast<const uint16_t*>(row);
#pragma unroll
      for (int i = 0; i < 8; ++i)
        if (t + i < lim) w[i / 2] |= static_cast<uint32_t>(q[t + i]) << (16 * (i % 2));
    } else {
      const uint32_t* q = reinterpret_cast<const uint32_t*>(row);
#pragma unroll
      for (int i = 0; i < 4; ++i)
        if (t + i < lim) w[i] = q[t + i];
    }
    *reinterpret_cast<uint4*>(dst) = make_uint4(w[0], w[1], w[2], w[3]);
  }
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::: "memory"); }
// Wait until at most N of this thread's committed copy groups are still in flight.
template <int N>
__device__ __forceinline__ void cp_async_wait() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(N) : "memory");
}

__device__ __forceinline__ float4 ld4(const float* p) { return *reinterpret_cast<const float4*>(p); }
__device__ __forceinline__ void st4(float* p, float4 v) { *reinterpret_cast<float4*>(p) = v; }
__device__ __forceinline__ float get4(const float4& v, int i) { return i == 0 ? v.x : i == 1 ? v.y : i == 2 ? v.z : v.w; }

}  // namespace gm::cuda::scan::lean
