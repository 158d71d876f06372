// Thread-per-channel chunk kernels of the "lean" scan variant: the forward summary and
// output passes and the backward's reverse chunk summary. Same work split, math, inputs
// and outputs as the pipelined kernels (scan_fwd_fast.cuh: one thread per channel, its 16
// states in registers, the chunk's B / C staged in double-buffered 64-step tiles), with:
// - the thread's own rows (u, delta, z or dout) copied 8 steps at a time into a
//   two-slot ring in shared memory by cp.async, one slice ahead of their use;
// - one test per 8-step slice for document starts and the sequence end: a slice with
//   neither (nearly all) runs as straight-line code, no branch per step;
// - branch-free softplus / SiLU (scan_lean_common.cuh);
// - B / C tiles kept as loaded (bf16 stays bf16: half the shared-memory loads of f32
//   tiles on the MIO queue these kernels wait on, for two integer ops per value);
// - kPoly of the 16 exponentials per step on the FMA pipe (0: none).
// Reset flags are staged as bit masks (one bit per step of the tile).
#pragma once

#include "mamba/cuda/scan_fwd.cuh"
#include "mamba/cuda/scan_fwd_fast.cuh"
#include "mamba/cuda/scan_lean_common.cuh"

namespace gm::cuda::scan::lean {

using fast::Raw8;

// 8 steps of one row as stored: 16 bytes of bf16, 32 of f32.
template <class T>
struct RowSlot {
  uint4 v[sizeof(T) / 2];
};

// Each thread's slices of kRows rows, two slots per row (the one being computed, the next).
template <class T, int kRows>
struct RowRing {
  RowSlot<T> slot[kRows][2][kFwdThreads];
};

// Start copying row[t .. t+8) (0 past lim) into dst. Rows that are not 16-byte aligned
// are loaded synchronously instead.
template <class T>
__device__ __forceinline__ void issue_slice(RowSlot<T>& dst, const T* row, int64_t t, int64_t lim, bool aligned) {
  if (aligned) {
    constexpr int kPer = 16 / static_cast<int>(sizeof(T));  // elements per 16-byte copy
    const int64_t left = lim - t;
#pragma unroll
    for (int c = 0; c < static_cast<int>(sizeof(T)) / 2; ++c) {
      const int64_t n = left - c * kPer;
      const int bytes = n <= 0 ? 0 : static_cast<int>((n < kPer ? n : kPer) * static_cast<int64_t>(sizeof(T)));
      cp_async16(&dst.v[c], bytes > 0 ? static_cast<const void*>(row + t + c * kPer) : static_cast<const void*>(row),
                 bytes);
    }
  } else {
    Raw8<T> r;
    r.load(row, t, lim, false);
    static_assert(sizeof(Raw8<T>) == sizeof(RowSlot<T>), "a slot holds one Raw8");
    memcpy(&dst, &r, sizeof r);
  }
}

template <class T>
__device__ __forceinline__ Raw8<T> read_slice(const RowSlot<T>& src) {
  Raw8<T> r;
  memcpy(&r, &src, sizeof r);
  return r;
}

template <class T>
struct FwdTile {
  T B[2][kFwdTile][kMaxState];  // [buffer][step][state], as stored
  T C[2][kFwdTile][kMaxState];
  uint32_t resets[2][kFwdTile / 32];  // bit i of word w: step 32 w + i of the tile starts a document
};

// Each thread stages one 8-step piece of one state's row of B (and C): state tid % 16,
// steps (tid / 16) * 8 .. + 7 of the tile; the threads of the first two warps one reset flag.
template <class T, bool kB, bool kC>
struct FwdTileStager {
  static_assert(kFwdThreads == kMaxState * (kFwdTile / 8) && kFwdTile == 64, "one 8-wide load per thread");
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
  __device__ __forceinline__ void store(FwdTile<T>& s, int buf) const {
    const int n = threadIdx.x % kMaxState, g = threadIdx.x / kMaxState;
#pragma unroll
    for (int j = 0; j < 8; ++j) {  // get() is exact, so converting back is too
      if constexpr (kB) s.B[buf][g * 8 + j][n] = from_f<T>(b.get(j));
      if constexpr (kC) s.C[buf][g * 8 + j][n] = from_f<T>(c.get(j));
    }
    if (threadIdx.x < kFwdTile) {  // warps 0 and 1, whole warps
      const uint32_t m = __ballot_sync(0xffffffffu, reset);
      if (threadIdx.x % 32 == 0) s.resets[buf][threadIdx.x / 32] = m;
    }
  }
};

template <class T>
__device__ __forceinline__ uint32_t slice_resets(const FwdTile<T>& s, int buf, int sub) {
  return (s.resets[buf][sub / 32] >> (sub % 32)) & 0xffu;
}

// One recurrence step of 16 states; returns sum_n C h when kWithC (four partial sums).
template <bool kWithC, int kPoly, class T>
__device__ __forceinline__ float step16(float (&h)[kMaxState], const float (&A2)[kMaxState], float dt, float x,
                                        const T* Bs, const T* Cs) {
  float bv[kMaxState], cv[kMaxState];
  row16(Bs, bv);
  if constexpr (kWithC) row16(Cs, cv);
  float yq[kMaxState / 4];
#pragma unroll
  for (int q = 0; q < kMaxState / 4; ++q) {
    float y = 0.f;
#pragma unroll
    for (int r = 0; r < 4; ++r) {
      const int n = 4 * q + r;
      h[n] = fmaf(exp2_state<kPoly>(dt * A2[n], n), h[n], x * bv[n]);
      if constexpr (kWithC) y = fmaf(cv[n], h[n], y);
    }
    yq[q] = y;
  }
  return (yq[0] + yq[1]) + (yq[2] + yq[3]);
}

// 8 forward steps. kCheck: some step of the slice is past the chunk end (valid < 8) or
// starts a document (bit i of resets); otherwise straight-line code.
template <bool kCheck, bool kOutput, bool kHasZ, int kPoly, class T>
__device__ __forceinline__ void fwd_slice(float (&h)[kMaxState], const float (&A2)[kMaxState], float bias,
                                          float dskip, bool sp, const Raw8<T>& ru, const Raw8<T>& rd,
                                          const Raw8<T>& rz, const T (*Bs)[kMaxState], const T (*Cs)[kMaxState],
                                          uint32_t resets, int valid, float (&ov)[8], float& dtsum,
                                          bool& reset_seen) {
#pragma unroll
  for (int i = 0; i < 8; ++i) {
    ov[i] = 0.f;
    if (kCheck && i >= valid) break;
    const float dt = dt_of(rd.get(i) + bias, sp);
    const float uu = ru.get(i);
    const float x = dt * uu;
    if (kCheck && ((resets >> i) & 1u)) {
      reset_seen = true;
#pragma unroll
      for (int n = 0; n < kMaxState; ++n) h[n] = 0.f;
    }
    if constexpr (kOutput) {
      float y = step16<true, kPoly>(h, A2, dt, x, Bs[i], Cs[i]);
      y = fmaf(dskip, uu, y);
      if constexpr (kHasZ) {
        const float zz = rz.get(i);
        y *= zz * sigmoid(zz);
      }
      ov[i] = y;
    } else {
      dtsum += dt;
      step16<false, kPoly, T>(h, A2, dt, x, Bs[i], nullptr);
    }
  }
}

// Forward over one chunk for one channel per thread. kOutput: write y (needs C, z);
// otherwise the chunk summary (E, P), as scan_fwd_summary_kernel.
// Blocks per SM the register budget is sized for: the output pass keeps C, z and y live
// as well (128 registers without spills), the summaries need fewer (96).
template <class T, bool kOutput, bool kHasZ, int kPoly>
__global__ void __launch_bounds__(kFwdThreads, kOutput ? 4 : 5) fwd_chunk_kernel(Params p, const float* __restrict__ starts,
                                                                T* __restrict__ out, int64_t out_bs, int64_t out_cs,
                                                                float* __restrict__ h_last, float* __restrict__ E,
                                                                float* __restrict__ P) {
  constexpr int kRows = kHasZ ? 3 : 2;  // u, delta (, z)
  __shared__ __align__(16) FwdTile<T> s;
  __shared__ __align__(16) RowRing<T, kRows> ring;
  const int tid = threadIdx.x;
  const int64_t k = blockIdx.x, b = blockIdx.z;
  const int64_t c = static_cast<int64_t>(blockIdx.y) * kFwdThreads + tid;
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
  const bool sp = p.softplus;
  const T* urow = static_cast<const T*>(p.u) + b * p.u_bs + cc * p.u_cs;
  const T* drow = static_cast<const T*>(p.delta) + b * p.delta_bs + cc * p.delta_cs;
  const T* zrow = kHasZ ? static_cast<const T*>(p.z) + b * p.z_bs + cc * p.z_cs : nullptr;
  T* orow = kOutput ? out + b * out_bs + cc * out_cs : nullptr;
  const int64_t lim = active ? p.length : 0;
  float dtsum = 0.f;
  bool reset_seen = false;

  auto issue = [&](int slot, int64_t t) {
    issue_slice(ring.slot[0][slot][tid], urow, t, lim, p.aligned);
    issue_slice(ring.slot[1][slot][tid], drow, t, lim, p.aligned);
    if constexpr (kHasZ) issue_slice(ring.slot[2][slot][tid], zrow, t, lim, p.aligned);
    cp_async_commit();
  };
  FwdTileStager<T, true, kOutput> stager;
  stager.load(p, b, t0, tend);
  stager.store(s, 0);
  issue(0, t0);
  __syncthreads();
  int buf = 0, slot = 0;
  for (int64_t tt = t0; tt < tend; tt += kFwdTile, buf ^= 1) {
    const bool more_tiles = tt + kFwdTile < tend;
    if (more_tiles) stager.load(p, b, tt + kFwdTile, tend);
    for (int sub = 0; sub < kFwdTile && tt + sub < tend; sub += 8, slot ^= 1) {
      cp_async_wait<0>();  // this slice's rows have landed (each thread reads only its own)
      const Raw8<T> ru = read_slice(ring.slot[0][slot][tid]);
      const Raw8<T> rd = read_slice(ring.slot[1][slot][tid]);
      Raw8<T> rz;
      if constexpr (kHasZ) rz = read_slice(ring.slot[2][slot][tid]);
      if (tt + sub + 8 < tend) issue(slot ^ 1, tt + sub + 8);
      const uint32_t resets = slice_resets(s, buf, sub);
      const int valid = static_cast<int>(tend - tt - sub < 8 ? tend - tt - sub : 8);
      float ov[8];
      if (resets == 0 && valid == 8)
        fwd_slice<false, kOutput, kHasZ, kPoly>(h, A2, bias, dskip, sp, ru, rd, rz, s.B[buf] + sub, s.C[buf] + sub,
                                                resets, valid, ov, dtsum, reset_seen);
      else
        fwd_slice<true, kOutput, kHasZ, kPoly>(h, A2, bias, dskip, sp, ru, rd, rz, s.B[buf] + sub, s.C[buf] + sub,
                                               resets, valid, ov, dtsum, reset_seen);
      if constexpr (kOutput) store_row8(orow, tt + sub, lim, p.aligned, ov);
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

// 8 reverse steps of the backward chunk summary (last step first); kCheck as fwd_slice.
template <bool kCheck, bool kHasZ, int kPoly, class T>
__device__ __forceinline__ void bwd_summary_slice(float (&g)[kMaxState], const float (&A2)[kMaxState], float bias,
                                                  bool sp, const Raw8<T>& rd, const Raw8<T>& rg, const Raw8<T>& rz,
                                                  const T (*Cs)[kMaxState], uint32_t resets, int valid,
                                                  float& dtsum, bool& reset_seen) {
#pragma unroll
  for (int i = 7; i >= 0; --i) {
    if (kCheck && i >= valid) continue;
    const float dt = dt_of(rd.get(i) + bias, sp);
    float dy = rg.get(i);
    if constexpr (kHasZ) {
      const float zz = rz.get(i);
      dy *= zz * sigmoid(zz);
    }
    dtsum += dt;
    const bool reset = kCheck && ((resets >> i) & 1u);
    reset_seen |= reset;
    float cv[kMaxState];
    row16(Cs[i], cv);
#pragma unroll
    for (int n = 0; n < kMaxState; ++n) {
      float a = exp2_state<kPoly>(dt * A2[n], n);
      if (kCheck) a = reset ? 0.f : a;
      g[n] = a * fmaf(dy, cv[n], g[n]);
    }
  }
}

// Backward reverse chunk summary of the chunks f.k0 .. f.k0 + f.window - 1 (Q, P as
// scan_bwd_summary_kernel), leaving the flows of every 8-step sub-chunk in f on the way.
template <class T, bool kHasZ, int kPoly>
__global__ void __launch_bounds__(kFwdThreads, 5) bwd_summary_kernel(Params p, const void* dout, int64_t g_bs,
                                                                  int64_t g_cs, float* __restrict__ Q,
                                                                  float* __restrict__ P, FlowArgs f) {
  constexpr int kRows = kHasZ ? 3 : 2;  // delta, dout (, z)
  __shared__ __align__(16) FwdTile<T> s;
  __shared__ __align__(16) RowRing<T, kRows> ring;
  const int tid = threadIdx.x;
  const int64_t k = f.k0 + blockIdx.x, b = blockIdx.z;
  const int64_t c = static_cast<int64_t>(blockIdx.y) * kFwdThreads + tid;
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
  const bool sp = p.softplus;
  const T* drow = static_cast<const T*>(p.delta) + b * p.delta_bs + cc * p.delta_cs;
  const T* zrow = kHasZ ? static_cast<const T*>(p.z) + b * p.z_bs + cc * p.z_cs : nullptr;
  const T* grow = static_cast<const T*>(dout) + b * g_bs + cc * g_cs;
  const int64_t lim = active ? p.length : 0;
  float dtsum = 0.f;
  bool reset_seen = false;

  auto issue = [&](int slot, int64_t t) {
    issue_slice(ring.slot[0][slot][tid], drow, t, lim, p.aligned);
    issue_slice(ring.slot[1][slot][tid], grow, t, lim, p.aligned);
    if constexpr (kHasZ) issue_slice(ring.slot[2][slot][tid], zrow, t, lim, p.aligned);
    cp_async_commit();
  };
  const int64_t tlast = t0 + (tend - 1 - t0) / kFwdTile * kFwdTile;  // start of the last tile
  FwdTileStager<T, false, true> stager;
  stager.load(p, b, tlast, tend);
  stager.store(s, 0);
  int64_t ts = t0 + (tend - 1 - t0) / 8 * 8;  // the last 8-step slice that holds a valid step
  issue(0, ts);
  __syncthreads();
  int buf = 0, slot = 0;
  for (int64_t tt = tlast; tt >= t0; tt -= kFwdTile, buf ^= 1) {
    const bool more_tiles = tt > t0;
    if (more_tiles) stager.load(p, b, tt - kFwdTile, tend);
    for (; ts >= tt; ts -= 8, slot ^= 1) {
      cp_async_wait<0>();
      const Raw8<T> rd = read_slice(ring.slot[0][slot][tid]);
      const Raw8<T> rg = read_slice(ring.slot[1][slot][tid]);
      Raw8<T> rz;
      if constexpr (kHasZ) rz = read_slice(ring.slot[2][slot][tid]);
      if (ts - 8 >= t0) issue(slot ^ 1, ts - 8);
      if (active) {  // g and dtsum: what the steps after this sub-chunk give its last state
        static_assert(kFlowStep == 8, "one flow per slice");
        const int64_t slot = f.slot(p, b, k, static_cast<int>((ts - t0) / kFlowStep), c);
#pragma unroll
        for (int q = 0; q < 4; ++q) f.flows[slot * 4 + q] = make_float4(g[4 * q], g[4 * q + 1], g[4 * q + 2], g[4 * q + 3]);
        f.dt_after[slot] = reset_seen ? __uint_as_float(kNoCarry) : dtsum;
      }
      const int sub = static_cast<int>(ts - tt);
      const uint32_t resets = slice_resets(s, buf, sub);
      const int valid = static_cast<int>(tend - ts < 8 ? tend - ts : 8);
      if (resets == 0 && valid == 8)
        bwd_summary_slice<false, kHasZ, kPoly>(g, A2, bias, sp, rd, rg, rz, s.C[buf] + sub, resets, valid, dtsum,
                                               reset_seen);
      else
        bwd_summary_slice<true, kHasZ, kPoly>(g, A2, bias, sp, rd, rg, rz, s.C[buf] + sub, resets, valid, dtsum,
                                              reset_seen);
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

}  // namespace gm::cuda::scan::lean
