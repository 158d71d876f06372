// Forward kernels of the chunked selective scan (variant "chunked").
//
// One thread per channel holds that channel's N states in registers and walks a chunk of
// kChunk steps; a block is kFwdThreads consecutive channels of one batch row and one
// chunk, and stages the chunk's B, C and document-start flags in shared memory tile by
// tile (they are shared by all channels). Three launches:
//   1. summary (chunks 0..K-2): each chunk's end state from a zero start, E, and its
//      decay P = prod_t exp(dt_t A) = exp2(A log2(e) sum_t dt_t) (0 if a document starts
//      in the chunk);
//   2. combine: h_start[k+1] = P[k] h_start[k] + E[k] along the chunks, from h0; the
//      start states are `saved` (what the backward needs);
//   3. output: every chunk again from its start state, writing y (and h_last).
// Hidden states never reach global memory except at chunk boundaries.
#pragma once

#include "mamba/cuda/scan_common.cuh"

namespace gm::cuda::scan {

constexpr int kFwdThreads = 128;  // channels per block
constexpr int kFwdTile = 64;      // steps staged in shared memory at once
static_assert(kChunk % kFwdTile == 0 && kFwdTile % 8 == 0, "tiles must divide chunks");

struct FwdSmem {
  float B[kFwdTile][kMaxState];
  float C[kFwdTile][kMaxState];
  uint8_t reset[kFwdTile];
};

// Stage the f32 rows B[b, :, t .. t+kFwdTile) (and C) as [step][state] plus the reset flags.
// 16 states x 8 groups of 8 steps: one 8-wide load per thread and matrix.
template <class T, bool kWithB, bool kWithC>
__device__ __forceinline__ void stage_tile(const Params& p, int64_t b, int64_t t, int64_t tend, FwdSmem& s) {
  static_assert(kFwdThreads == kMaxState * (kFwdTile / 8), "one load per thread");
  const int n = threadIdx.x % kMaxState, g = threadIdx.x / kMaxState;
  const bool has_n = n < p.state;
  float v[8];
  if constexpr (kWithB) {
    if (has_n)
      load_row8(static_cast<const T*>(p.Bm) + b * p.B_bs + n * p.B_ns, t + g * 8, p.length, p.aligned, v);
#pragma unroll
    for (int j = 0; j < 8; ++j) s.B[g * 8 + j][n] = has_n ? v[j] : 0.f;
  }
  if constexpr (kWithC) {
    if (has_n)
      load_row8(static_cast<const T*>(p.Cm) + b * p.C_bs + n * p.C_ns, t + g * 8, p.length, p.aligned, v);
#pragma unroll
    for (int j = 0; j < 8; ++j) s.C[g * 8 + j][n] = has_n ? v[j] : 0.f;
  }
  if (threadIdx.x < kFwdTile) {
    const int64_t tt = t + threadIdx.x;
    s.reset[threadIdx.x] = p.starts && tt < tend && p.starts[b * p.starts_bs + tt] ? 1 : 0;
  }
}

template <class T>
__global__ void __launch_bounds__(kFwdThreads) scan_fwd_summary_kernel(Params p, float* __restrict__ E,
                                                                       float* __restrict__ P) {
  __shared__ __align__(16) FwdSmem s;
  const int64_t k = blockIdx.x, b = blockIdx.z;
  const int64_t c = static_cast<int64_t>(blockIdx.y) * kFwdThreads + threadIdx.x;
  const bool active = c < p.channels;
  const int64_t cc = active ? c : 0;
  const int64_t t0 = k * kChunk, tend = min(p.length, t0 + kChunk);
  float A2[kMaxState], h[kMaxState];
#pragma unroll
  for (int n = 0; n < kMaxState; ++n) {
    A2[n] = active && n < p.state ? p.A[c * p.state + n] * kLog2e : 0.f;
    h[n] = 0.f;
  }
  const float bias = active && p.delta_bias ? p.delta_bias[c] : 0.f;
  const T* urow = static_cast<const T*>(p.u) + b * p.u_bs + cc * p.u_cs;
  const T* drow = static_cast<const T*>(p.delta) + b * p.delta_bs + cc * p.delta_cs;
  float dtsum = 0.f;
  bool reset_seen = false;
  for (int64_t tt = t0; tt < tend; tt += kFwdTile) {
    __syncthreads();
    stage_tile<T, true, false>(p, b, tt, tend, s);
    __syncthreads();
    for (int sub = 0; sub < kFwdTile && tt + sub < tend; sub += 8) {
      float uv[8], dv[8];
      load_row8(urow, tt + sub, active ? p.length : 0, p.aligned, uv);
      load_row8(drow, tt + sub, active ? p.length : 0, p.aligned, dv);
#pragma unroll
      for (int i = 0; i < 8; ++i) {
        if (tt + sub + i >= tend) break;
        const float dt = scan_dt(dv[i] + bias, p.softplus);
        const float x = dt * uv[i];
        if (s.reset[sub + i]) {
          reset_seen = true;
#pragma unroll
          for (int n = 0; n < kMaxState; ++n) h[n] = 0.f;
        }
        dtsum += dt;
        const float4* Bs = reinterpret_cast<const float4*>(s.B[sub + i]);
#pragma unroll
        for (int q = 0; q < kMaxState / 4; ++q) {
          const float4 bq = Bs[q];
          h[4 * q + 0] = fmaf(ex2_approx(dt * A2[4 * q + 0]), h[4 * q + 0], x * bq.x);
          h[4 * q + 1] = fmaf(ex2_approx(dt * A2[4 * q + 1]), h[4 * q + 1], x * bq.y);
          h[4 * q + 2] = fmaf(ex2_approx(dt * A2[4 * q + 2]), h[4 * q + 2], x * bq.z);
          h[4 * q + 3] = fmaf(ex2_approx(dt * A2[4 * q + 3]), h[4 * q + 3], x * bq.w);
        }
      }
    }
  }
  if (active) {
#pragma unroll
    for (int n = 0; n < kMaxState; ++n) {
      const int64_t i = chunk_index(p, b, k, c, n);
      E[i] = h[n];
      P[i] = reset_seen ? 0.f : ex2_approx(A2[n] * dtsum);
    }
  }
}

// One thread per (b, c, n): start state of every chunk, in chunk order.
__global__ void scan_fwd_combine_kernel(Params p, const float* __restrict__ E, const float* __restrict__ P,
                                        const float* __restrict__ h0, float* __restrict__ starts) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= p.batch * p.channels * kMaxState) return;
  const int64_t n = i % kMaxState, c = (i / kMaxState) % p.channels, b = i / (kMaxState * p.channels);
  float h = h0 && n < p.state ? h0[(b * p.channels + c) * p.state + n] : 0.f;
  for (int64_t k = 0; k < p.chunks; ++k) {
    const int64_t j = chunk_index(p, b, k, c, n);
    starts[j] = h;
    if (k + 1 < p.chunks) h = fmaf(P[j], h, E[j]);
  }
}

template <class T, bool kHasZ>
__global__ void __launch_bounds__(kFwdThreads) scan_fwd_output_kernel(Params p, const float* __restrict__ starts,
                                                                      T* __restrict__ out, int64_t out_bs,
                                                                      int64_t out_cs, float* __restrict__ h_last) {
  __shared__ __align__(16) FwdSmem s;
  const int64_t k = blockIdx.x, b = blockIdx.z;
  const int64_t c = static_cast<int64_t>(blockIdx.y) * kFwdThreads + threadIdx.x;
  const bool active = c < p.channels;
  const int64_t cc = active ? c : 0;
  const int64_t t0 = k * kChunk, tend = min(p.length, t0 + kChunk);
  float A2[kMaxState], h[kMaxState];
#pragma unroll
  for (int n = 0; n < kMaxState; ++n) {
    A2[n] = active && n < p.state ? p.A[c * p.state + n] * kLog2e : 0.f;
    h[n] = active ? starts[chunk_index(p, b, k, c, n)] : 0.f;
  }
  const float bias = active && p.delta_bias ? p.delta_bias[c] : 0.f;
  const float dskip = active && p.Dskip ? p.Dskip[c] : 0.f;
  const T* urow = static_cast<const T*>(p.u) + b * p.u_bs + cc * p.u_cs;
  const T* drow = static_cast<const T*>(p.delta) + b * p.delta_bs + cc * p.delta_cs;
  const T* zrow = kHasZ ? static_cast<const T*>(p.z) + b * p.z_bs + cc * p.z_cs : nullptr;
  T* orow = out + b * out_bs + cc * out_cs;
  const int64_t lim = active ? p.length : 0;  // inactive threads read and write nothing
  for (int64_t tt = t0; tt < tend; tt += kFwdTile) {
    __syncthreads();
    stage_tile<T, true, true>(p, b, tt, tend, s);
    __syncthreads();
    for (int sub = 0; sub < kFwdTile && tt + sub < tend; sub += 8) {
      float uv[8], dv[8], zv[8], ov[8];
      load_row8(urow, tt + sub, lim, p.aligned, uv);
      load_row8(drow, tt + sub, lim, p.aligned, dv);
      if constexpr (kHasZ) load_row8(zrow, tt + sub, lim, p.aligned, zv);
#pragma unroll
      for (int i = 0; i < 8; ++i) {
        ov[i] = 0.f;
        if (tt + sub + i >= tend) break;
        const float dt = scan_dt(dv[i] + bias, p.softplus);
        const float x = dt * uv[i];
        if (s.reset[sub + i]) {
#pragma unroll
          for (int n = 0; n < kMaxState; ++n) h[n] = 0.f;
        }
        const float4* Bs = reinterpret_cast<const float4*>(s.B[sub + i]);
        const float4* Cs = reinterpret_cast<const float4*>(s.C[sub + i]);
        float y = 0.f;
#pragma unroll
        for (int q = 0; q < kMaxState / 4; ++q) {
          const float4 bq = Bs[q], cq = Cs[q];
          h[4 * q + 0] = fmaf(ex2_approx(dt * A2[4 * q + 0]), h[4 * q + 0], x * bq.x);
          h[4 * q + 1] = fmaf(ex2_approx(dt * A2[4 * q + 1]), h[4 * q + 1], x * bq.y);
          h[4 * q + 2] = fmaf(ex2_approx(dt * A2[4 * q + 2]), h[4 * q + 2], x * bq.z);
          h[4 * q + 3] = fmaf(ex2_approx(dt * A2[4 * q + 3]), h[4 * q + 3], x * bq.w);
          y = fmaf(cq.x, h[4 * q + 0], y);
          y = fmaf(cq.y, h[4 * q + 1], y);
          y = fmaf(cq.z, h[4 * q + 2], y);
          y = fmaf(cq.w, h[4 * q + 3], y);
        }
        y = fmaf(dskip, uv[i], y);
        if constexpr (kHasZ) y *= silu_f(zv[i]);
        ov[i] = y;
      }
      store_row8(orow, tt + sub, lim, p.aligned, ov);
    }
  }
  if (h_last && active && k + 1 == p.chunks) {
#pragma unroll
    for (int n = 0; n < kMaxState; ++n)
      if (n < p.state) h_last[(b * p.channels + c) * p.state + n] = h[n];
  }
}

}  // namespace gm::cuda::scan
