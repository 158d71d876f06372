// Chunk-level kernels of the "pipelined" scan variant: the forward summary and output
// passes and the backward's reverse chunk summary. Same math and outputs as the
// reference kernels (scan_fwd.cuh, scan_bwd.cuh), organised to keep the memory system
// busy while the special-function units work:
// - the next 8-step slice of u / delta / z (or dout) is loaded into registers while the
//   current one is computed;
// - the B / C tile in shared memory is double-buffered: the next tile is loaded into
//   registers during the current tile and stored afterwards, so one barrier per tile
//   suffices and its loads never stall the block;
// - softplus and SiLU use the fast exp / log / reciprocal intrinsics (about 1e-6
//   relative error; a series below -3 keeps softplus accurate where log(1 + e) would
//   lose digits).
#pragma once

#include "mamba/cuda/scan_common.cuh"
#include "mamba/cuda/scan_fwd.cuh"

namespace gm::cuda::scan::fast {

static_assert(kMaxState == 16, "the kernels below unroll over 16 states in groups of 4");

__device__ __forceinline__ float softplus(float x) {
  if (x > 20.f) return x;
  const float e = __expf(x);
  if (x < -3.f) return e * (1.f - e * (0.5f - e * (0.33333334f - 0.25f * e)));
  return __logf(1.f + e);
}
__device__ __forceinline__ float sigmoid(float x) { return __fdividef(1.f, 1.f + __expf(-x)); }
__device__ __forceinline__ float silu(float x) { return x * sigmoid(x); }
__device__ __forceinline__ float dsilu(float x) {
  const float s = sigmoid(x);
  return s * (1.f + x * (1.f - s));
}
__device__ __forceinline__ float dt_of(float raw, bool sp) { return sp ? softplus(raw) : raw; }
__device__ __forceinline__ float dt_grad(float raw, bool sp) { return sp ? (raw > 20.f ? 1.f : sigmoid(raw)) : 1.f; }

// 8 consecutive elements of a row as loaded (converted to f32 when read), 0 past L.
template <class T> struct Raw8;
template <> struct Raw8<bf16_t> {
  uint4 r;
  __device__ __forceinline__ void load(const bf16_t* row, int64_t t, int64_t L, bool aligned) {
    if (aligned && t + 8 <= L) {
      r = *reinterpret_cast<const uint4*>(row + t);
    } else {
      const uint16_t* q = reinterpret_cast<const uint16_t*>(row);
      uint32_t w[4];
#pragma unroll
      for (int i = 0; i < 4; ++i) {
        const uint32_t lo = t + 2 * i < L ? q[t + 2 * i] : 0u;
        const uint32_t hi = t + 2 * i + 1 < L ? q[t + 2 * i + 1] : 0u;
        w[i] = lo | (hi << 16);
      }
      r = make_uint4(w[0], w[1], w[2], w[3]);
    }
  }
  __device__ __forceinline__ void zero() { r = make_uint4(0u, 0u, 0u, 0u); }
  __device__ __forceinline__ float get(int i) const {
    return bf16_of(i < 2 ? r.x : i < 4 ? r.y : i < 6 ? r.z : r.w, i);
  }
};
template <> struct Raw8<float> {
  float4 a, b;
  __device__ __forceinline__ void load(const float* row, int64_t t, int64_t L, bool aligned) {
    if (aligned && t + 8 <= L) {
      a = reinterpret_cast<const float4*>(row + t)[0];
      b = reinterpret_cast<const float4*>(row + t)[1];
    } else {
      float v[8];
#pragma unroll
      for (int i = 0; i < 8; ++i) v[i] = t + i < L ? row[t + i] : 0.f;
      a = make_float4(v[0], v[1], v[2], v[3]);
      b = make_float4(v[4], v[5], v[6], v[7]);
    }
  }
  __device__ __forceinline__ void zero() { a = b = make_float4(0.f, 0.f, 0.f, 0.f); }
  __device__ __forceinline__ float get(int i) const {
    const float4& q = i < 4 ? a : b;
    const int j = i % 4;
    return j == 0 ? q.x : j == 1 ? q.y : j == 2 ? q.z : q.w;
  }
};

// Double-buffered B / C tiles ([step][state], f32) and reset flags.
struct TileSmem {
  float B[2][kFwdTile][kMaxState];
  float C[2][kFwdTile][kMaxState];
  uint8_t reset[2][kFwdTile];
};

// Each thread stages one 8-step piece of one state's row of B (and C): state tid % 16,
// steps (tid / 16) * 8 .. + 7 of the tile; threads below kFwdTile also one reset flag.
template <class T, bool kB, bool kC>
struct TileStager {
  Raw8<T> b, c;
  bool reset = false;
  __device__ __forceinline__ void load(const Params& p, int64_t batch, int64_t tt, int64_t tend) {
    const int n = threadIdx.x % kMaxState, g = threadIdx.x / kMaxState;
    if (n < p.state) {
      if constexpr (kB) b.load(static_cast<const T*>(p.Bm) + batch * p.B_bs + n * p.B_ns, tt + g * 8, p.length, p.aligned);
      if constexpr (kC) c.load(static_cast<const T*>(p.Cm) + batch * p.C_bs + n * p.C_ns, tt + g * 8, p.length, p.aligned);
    } else {
      if constexpr (kB) b.zero();
      if constexpr (kC) c.zero();
    }
    if (threadIdx.x < kFwdTile) {
      const int64_t t = tt + threadIdx.x;
      reset = p.starts && t < tend && p.starts[batch * p.starts_bs + t];
    }
  }
  __device__ __forceinline__ void store(TileSmem& s, int buf) const {
    const int n = threadIdx.x % kMaxState, g = threadIdx.x / kMaxState;
#pragma unroll
    for (int j = 0; j < 8; ++j) {
      if constexpr (kB) s.B[buf][g * 8 + j][n] = b.get(j);
      if constexpr (kC) s.C[buf][g * 8 + j][n] = c.get(j);
    }
    if (threadIdx.x < kFwdTile) s.reset[buf][threadIdx.x] = reset;
  }
};

// One recurrence step of a thread's 16 states; returns sum_n C h when kWithC. The sum
// runs in four independent partial sums (one per group of 4 states), so it is not one
// 16-deep chain of dependent FMAs per step.
template <bool kWithC>
__device__ __forceinline__ float step_states(float (&h)[kMaxState], const float (&A2)[kMaxState], float dt, float x,
                                             const float* Bs, const float* Cs) {
  float yq[kMaxState / 4];
#pragma unroll
  for (int q = 0; q < kMaxState / 4; ++q) {
    float y = 0.f;
    const float4 bq = reinterpret_cast<const float4*>(Bs)[q];
    const float bv[4] = {bq.x, bq.y, bq.z, bq.w};
    float cv[4] = {0.f, 0.f, 0.f, 0.f};
    if constexpr (kWithC) {
      const float4 cq = reinterpret_cast<const float4*>(Cs)[q];
      cv[0] = cq.x; cv[1] = cq.y; cv[2] = cq.z; cv[3] = cq.w;
    }
#pragma unroll
    for (int r = 0; r < 4; ++r) {
      const int n = 4 * q + r;
      h[n] = fmaf(ex2_approx(dt * A2[n]), h[n], x * bv[r]);
      if constexpr (kWithC) y = fmaf(cv[r], h[n], y);
    }
    yq[q] = y;
  }
  return (yq[0] + yq[1]) + (yq[2] + yq[3]);
}

// Forward over one chunk for one channel per thread. kOutput: write y (needs C, z);
// otherwise produce the chunk summary (E, P).
template <class T, bool kOutput, bool kHasZ>
__global__ void __launch_bounds__(kFwdThreads) fwd_chunk_kernel(Params p, const float* __restrict__ starts,
                                                                T* __restrict__ out, int64_t out_bs, int64_t out_cs,
                                                                float* __restrict__ h_last, float* __restrict__ E,
                                                                float* __restrict__ P) {
  __shared__ __align__(16) TileSmem s;
  const int64_t k = blockIdx.x, b = blockIdx.z;
  const int64_t c = static_cast<int64_t>(blockIdx.y) * kFwdThreads + threadIdx.x;
  const bool active = c < p.channels;
  const int64_t cc = active ? c : 0;
  const int64_t t0 = k * kChunk, tend = min(p.length, t0 + kChunk);
  float A2[kMaxState], h[kMaxState];
#pragma unroll
  for (int n = 0; n < kMaxState; ++n) {
    A2[n] = active && n < p.state ? p.A[c * p.state + n] * kLog2e : 0.f;
    h[n] = kOutput && active ? starts[chunk_index(p, b, k, c, n)] : 0.f;
  }
  const float bias = active && p.delta_bias ? p.delta_bias[c] : 0.f;
  const float dskip = active && p.Dskip ? p.Dskip[c] : 0.f;
  const T* urow = static_cast<const T*>(p.u) + b * p.u_bs + cc * p.u_cs;
  const T* drow = static_cast<const T*>(p.delta) + b * p.delta_bs + cc * p.delta_cs;
  const T* zrow = kHasZ ? static_cast<const T*>(p.z) + b * p.z_bs + cc * p.z_cs : nullptr;
  T* orow = kOutput ? out + b * out_bs + cc * out_cs : nullptr;
  const int64_t lim = active ? p.length : 0;
  float dtsum = 0.f;
  bool reset_seen = false;

  TileStager<T, true, kOutput> stager;
  stager.load(p, b, t0, tend);
  stager.store(s, 0);
  __syncthreads();
  Raw8<T> ru, rd, rz;
  ru.load(urow, t0, lim, p.aligned);
  rd.load(drow, t0, lim, p.aligned);
  if constexpr (kHasZ) rz.load(zrow, t0, lim, p.aligned);
  int buf = 0;
  for (int64_t tt = t0; tt < tend; tt += kFwdTile, buf ^= 1) {
    const bool more_tiles = tt + kFwdTile < tend;
    if (more_tiles) stager.load(p, b, tt + kFwdTile, tend);
    for (int sub = 0; sub < kFwdTile && tt + sub < tend; sub += 8) {
      // Next 8 steps (possibly in the next tile), loaded while these are computed.
      const int64_t tn = tt + sub + 8;
      Raw8<T> nu, nd, nz;
      const bool more = tn < tend;
      if (more) {
        nu.load(urow, tn, lim, p.aligned);
        nd.load(drow, tn, lim, p.aligned);
        if constexpr (kHasZ) nz.load(zrow, tn, lim, p.aligned);
      }
      float ov[8];
#pragma unroll
      for (int i = 0; i < 8; ++i) {
        ov[i] = 0.f;
        if (tt + sub + i >= tend) break;
        const float dt = dt_of(rd.get(i) + bias, p.softplus);
        const float uu = ru.get(i);
        const float x = dt * uu;
        if (s.reset[buf][sub + i]) {
          reset_seen = true;
#pragma unroll
          for (int n = 0; n < kMaxState; ++n) h[n] = 0.f;
        }
        if constexpr (kOutput) {
          float y = step_states<true>(h, A2, dt, x, s.B[buf][sub + i], s.C[buf][sub + i]);
          y = fmaf(dskip, uu, y);
          if constexpr (kHasZ) y *= silu(rz.get(i));
          ov[i] = y;
        } else {
          dtsum += dt;
          step_states<false>(h, A2, dt, x, s.B[buf][sub + i], nullptr);
        }
      }
      if constexpr (kOutput) store_row8(orow, tt + sub, lim, p.aligned, ov);
      if (more) {
        ru = nu;
        rd = nd;
        if constexpr (kHasZ) rz = nz;
      }
    }
    if (more_tiles) stager.store(s, buf ^ 1);
    __syncthreads();
  }
  if (!active) return;
  if constexpr (kOutput) {
    if (h_last && k + 1 == p.chunks) {
#pragma unroll
      for (int n = 0; n < kMaxState; ++n)
        if (n < p.state) h_last[(b * p.channels + c) * p.state + n] = h[n];
    }
  } else {
#pragma unroll
    for (int n = 0; n < kMaxState; ++n) {
      const int64_t i = chunk_index(p, b, k, c, n);
      E[i] = h[n];
      P[i] = reset_seen ? 0.f : ex2_approx(A2[n] * dtsum);
    }
  }
}

// Backward reverse chunk summary (chunks 1..K-1), as scan_bwd_summary_kernel.
template <class T, bool kHasZ>
__global__ void __launch_bounds__(kFwdThreads) bwd_summary_kernel(Params p, const void* dout, int64_t g_bs,
                                                                  int64_t g_cs, float* __restrict__ Q,
                                                                  float* __restrict__ P) {
  __shared__ __align__(16) TileSmem s;
  const int64_t k = blockIdx.x + 1, b = blockIdx.z;
  const int64_t c = static_cast<int64_t>(blockIdx.y) * kFwdThreads + threadIdx.x;
  const bool active = c < p.channels;
  const int64_t cc = active ? c : 0;
  const int64_t t0 = k * kChunk, tend = min(p.length, t0 + kChunk);
  float A2[kMaxState], g[kMaxState];
#pragma unroll
  for (int n = 0; n < kMaxState; ++n) {
    A2[n] = active && n < p.state ? p.A[c * p.state + n] * kLog2e : 0.f;
    g[n] = 0.f;
  }
  const float bias = active && p.delta_bias ? p.delta_bias[c] : 0.f;
  const T* drow = static_cast<const T*>(p.delta) + b * p.delta_bs + cc * p.delta_cs;
  const T* zrow = kHasZ ? static_cast<const T*>(p.z) + b * p.z_bs + cc * p.z_cs : nullptr;
  const T* grow = static_cast<const T*>(dout) + b * g_bs + cc * g_cs;
  const int64_t lim = active ? p.length : 0;
  float dtsum = 0.f;
  bool reset_seen = false;

  const int64_t tlast = t0 + (tend - 1 - t0) / kFwdTile * kFwdTile;  // start of the last tile
  TileStager<T, false, true> stager;
  stager.load(p, b, tlast, tend);
  stager.store(s, 0);
  __syncthreads();
  // The last 8-step slice that holds a valid step.
  int64_t ts = t0 + (tend - 1 - t0) / 8 * 8;
  Raw8<T> rd, rg, rz;
  rd.load(drow, ts, lim, p.aligned);
  rg.load(grow, ts, lim, p.aligned);
  if constexpr (kHasZ) rz.load(zrow, ts, lim, p.aligned);
  int buf = 0;
  for (int64_t tt = tlast; tt >= t0; tt -= kFwdTile, buf ^= 1) {
    const bool more_tiles = tt > t0;
    if (more_tiles) stager.load(p, b, tt - kFwdTile, tend);
    for (; ts >= tt; ts -= 8) {
      const int64_t tp = ts - 8;
      Raw8<T> nd, ng, nz;
      const bool more = tp >= t0;
      if (more) {
        nd.load(drow, tp, lim, p.aligned);
        ng.load(grow, tp, lim, p.aligned);
        if constexpr (kHasZ) nz.load(zrow, tp, lim, p.aligned);
      }
      const int sub = static_cast<int>(ts - tt);
#pragma unroll
      for (int i = 7; i >= 0; --i) {
        if (ts + i >= tend) continue;
        const float dt = dt_of(rd.get(i) + bias, p.softplus);
        const float dy = kHasZ ? rg.get(i) * silu(rz.get(i)) : rg.get(i);
        dtsum += dt;
        const bool reset = s.reset[buf][sub + i] != 0;
        reset_seen |= reset;
        const float4* Cs = reinterpret_cast<const float4*>(s.C[buf][sub + i]);
#pragma unroll
        for (int q = 0; q < kMaxState / 4; ++q) {
          const float4 cq = Cs[q];
          const float cv[4] = {cq.x, cq.y, cq.z, cq.w};
#pragma unroll
          for (int r = 0; r < 4; ++r) {
            const int n = 4 * q + r;
            const float a = reset ? 0.f : ex2_approx(dt * A2[n]);
            g[n] = a * fmaf(dy, cv[r], g[n]);
          }
        }
      }
      if (more) {
        rd = nd;
        rg = ng;
        if constexpr (kHasZ) rz = nz;
      }
    }
    if (more_tiles) stager.store(s, buf ^ 1);
    __syncthreads();
  }
  if (active) {
#pragma unroll
    for (int n = 0; n < kMaxState; ++n) {
      const int64_t i = chunk_index(p, b, k, c, n);
      Q[i] = g[n];
      P[i] = reset_seen ? 0.f : ex2_approx(A2[n] * dtsum);
    }
  }
}

}  // namespace gm::cuda::scan::fast
