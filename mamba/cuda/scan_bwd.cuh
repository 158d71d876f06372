// Backward kernels of the chunked selective scan (variant "chunked").
//
// With dh_t = dloss/dh_t (all later uses of h_t), the reverse recurrence is
//   dh_t = dy_t C_t + a_{t+1} dh_{t+1},  a_t = exp(dt_t A) (0 at a document start),
// and every gradient is a sum of per-(c, t, n) terms built from dh_t, h_{t-1}, a_t.
// Chunk-parallel in both directions:
//   1. summary (chunks 1..K-1, one thread per channel, reverse time): each chunk's
//      gradient w.r.t. the state before it with nothing flowing in from later chunks, Q,
//      and its decay P (as in the forward);
//   2. combine: the gradient flowing into each chunk's end from later chunks,
//      carry[k] = Q[k+1] + P[k+1] carry[k+1], carry[K-1] = 0 (no gradient for h_last);
//   3. main: one thread per (channel, state); 32 channels x 16 states = 512 threads per
//      block and chunk. It recomputes the chunk's states from `saved`, keeping one state
//      every kSub steps in shared memory, then walks the sub-chunks backwards: recompute
//      the kSub states in registers, run the reverse recurrence over them, and reduce:
//      over states (16 lanes of a half-warp) with a transposed butterfly, over the block's
//      channels (dB, dC) through shared memory in warp order. Per-(c, t) quantities (dt,
//      dt*u, dy) are computed once per step by one lane and shared through shared memory.
//   4. fixed-order reductions: dB, dC over the channel groups, dA / dDskip / ddelta_bias
//      over (batch, chunk) with column_sum. No floating-point atomics anywhere.
#pragma once

#include "mamba/cuda/scan_fwd.cuh"

namespace gm::cuda::scan {

constexpr int kSub = 16;                     // steps per sub-chunk in the main kernel
constexpr int kSubs = kChunk / kSub;         // sub-chunks per chunk
constexpr int kBwdChannels = 32;             // channels per main block
constexpr int kBwdThreads = kBwdChannels * kMaxState;
constexpr int kBwdWarps = kBwdThreads / 32;
static_assert(kMaxState == 16 && kSub == 16, "a half-warp holds the 16 states of one channel");

struct BwdArgs {
  const void* dout;
  int64_t g_bs, g_cs;
  void* du;
  int64_t du_bs, du_cs;
  void* ddelta;
  int64_t dd_bs, dd_cs;
  void* dz;
  int64_t dz_bs, dz_cs;
  const float* starts;  // [B, K, D, 16] state before each chunk
  const float* carry;   // [B, K, D, 16] gradient into each chunk's end state
  float* part_bc;       // [2][B][G][16][L] channel-group sums of dB, dC terms (null: neither wanted)
  int64_t groups;       // G = ceil(D / kBwdChannels)
  float* part_dA;       // [B, K, D, 16]
  float* part_dD;       // [B, K, D]
  float* part_ddb;      // [B, K, D]
  float* dh0;           // [B, D, N] or null
};

// ---- 1. reverse chunk summaries ---------------------------------------------------
template <class T, bool kHasZ>
__global__ void __launch_bounds__(kFwdThreads) scan_bwd_summary_kernel(Params p, BwdArgs o, float* __restrict__ Q,
                                                                       float* __restrict__ P) {
  __shared__ __align__(16) FwdSmem s;
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
  const T* grow = static_cast<const T*>(o.dout) + b * o.g_bs + cc * o.g_cs;
  const int64_t lim = active ? p.length : 0;
  float dtsum = 0.f;
  bool reset_seen = false;
  for (int64_t tt = t0 + (tend - 1 - t0) / kFwdTile * kFwdTile; tt >= t0; tt -= kFwdTile) {
    __syncthreads();
    stage_tile<T, false, true>(p, b, tt, tend, s);
    __syncthreads();
    for (int sub = kFwdTile - 8; sub >= 0; sub -= 8) {
      if (tt + sub >= tend) continue;
      float dv[8], gv[8], zv[8];
      load_row8(drow, tt + sub, lim, p.aligned, dv);
      load_row8(grow, tt + sub, lim, p.aligned, gv);
      if constexpr (kHasZ) load_row8(zrow, tt + sub, lim, p.aligned, zv);
#pragma unroll
      for (int i = 7; i >= 0; --i) {
        if (tt + sub + i >= tend) continue;
        const float dt = scan_dt(dv[i] + bias, p.softplus);
        const float dy = kHasZ ? gv[i] * silu_f(zv[i]) : gv[i];
        dtsum += dt;
        const float4* Cs = reinterpret_cast<const float4*>(s.C[sub + i]);
        const bool reset = s.reset[sub + i] != 0;
        reset_seen |= reset;
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
    }
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

// ---- 2. carries along the chunks, last to first --------------------------------------
// The carries of chunks k0 .. k1 - 1; those of chunks k1 .. K - 1 are already in `carry`
// (the lean backward runs windows of chunks from the last; the others pass 0, K). The chain
// is the same, bitwise, however it is cut.
__global__ void scan_bwd_combine_kernel(Params p, const float* __restrict__ Q, const float* __restrict__ P,
                                        float* __restrict__ carry, int64_t k0, int64_t k1) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= p.batch * p.channels * kMaxState) return;
  const int64_t n = i % kMaxState, c = (i / kMaxState) % p.channels, b = i / (kMaxState * p.channels);
  float q = 0.f;
  if (k1 < p.chunks) {
    const int64_t j = chunk_index(p, b, k1, c, n);
    q = fmaf(P[j], carry[j], Q[j]);
  }
  for (int64_t k = k1 - 1; k >= k0; --k) {
    const int64_t j = chunk_index(p, b, k, c, n);
    carry[j] = q;
    if (k > k0) q = fmaf(P[j], q, Q[j]);
  }
}

// ---- 3. the main backward kernel -----------------------------------------------------
// 16 consecutive values of one row (one state's B or C), masked to [0, L).
template <class T> struct Row16;
template <> struct Row16<float> {
  float v[16];
  __device__ __forceinline__ void load(const float* row, int64_t t, int64_t L, bool aligned) {
    float a[8], b[8];
    load_row8(row, t, L, aligned, a);
    load_row8(row, t + 8, L, aligned, b);
#pragma unroll
    for (int i = 0; i < 8; ++i) {
      v[i] = a[i];
      v[i + 8] = b[i];
    }
  }
  __device__ __forceinline__ void zero() {
#pragma unroll
    for (int i = 0; i < 16; ++i) v[i] = 0.f;
  }
  __device__ __forceinline__ float get(int i) const { return v[i]; }
};
// bf16 rows stay packed, two per register; unpacking is exact (a shift or a mask).
template <> struct Row16<bf16_t> {
  uint32_t w[8];
  __device__ __forceinline__ void load(const bf16_t* row, int64_t t, int64_t L, bool aligned) {
    if (aligned && t + 16 <= L) {
      const uint4 a = reinterpret_cast<const uint4*>(row + t)[0];
      const uint4 b = reinterpret_cast<const uint4*>(row + t)[1];
      w[0] = a.x; w[1] = a.y; w[2] = a.z; w[3] = a.w;
      w[4] = b.x; w[5] = b.y; w[6] = b.z; w[7] = b.w;
    } else {
      const uint16_t* r = reinterpret_cast<const uint16_t*>(row);
#pragma unroll
      for (int i = 0; i < 8; ++i) {
        const uint32_t lo = t + 2 * i < L ? r[t + 2 * i] : 0u;
        const uint32_t hi = t + 2 * i + 1 < L ? r[t + 2 * i + 1] : 0u;
        w[i] = lo | (hi << 16);
      }
    }
  }
  __device__ __forceinline__ void zero() {
#pragma unroll
    for (int i = 0; i < 8; ++i) w[i] = 0u;
  }
  __device__ __forceinline__ float get(int i) const {
    return bf16_of(w[i / 2], i);
  }
};

// Sum over the 16 lanes of a half-warp of v[s], delivered to lane s (s = lane % 16):
// a transposed butterfly, 15 shuffles for 16 sums. Fixed order: deterministic.
__device__ __forceinline__ float half_warp_transpose_sum(const float (&v)[16], int n) {
  float w8[8], w4[4], w2[2];
  const bool u8 = n & 8, u4 = n & 4, u2 = n & 2, u1 = n & 1;
#pragma unroll
  for (int i = 0; i < 8; ++i) {
    const float send = u8 ? v[i] : v[i + 8];
    const float keep = u8 ? v[i + 8] : v[i];
    w8[i] = keep + __shfl_xor_sync(0xffffffffu, send, 8);
  }
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const float send = u4 ? w8[i] : w8[i + 4];
    const float keep = u4 ? w8[i + 4] : w8[i];
    w4[i] = keep + __shfl_xor_sync(0xffffffffu, send, 4);
  }
#pragma unroll
  for (int i = 0; i < 2; ++i) {
    const float send = u2 ? w4[i] : w4[i + 2];
    const float keep = u2 ? w4[i + 2] : w4[i];
    w2[i] = keep + __shfl_xor_sync(0xffffffffu, send, 2);
  }
  const float send = u1 ? w2[0] : w2[1];
  const float keep = u1 ? w2[1] : w2[0];
  return keep + __shfl_xor_sync(0xffffffffu, send, 1);
}

struct BwdSmem {
  float ckpt[kSubs][kBwdThreads];          // state before each sub-chunk, per thread
  float stage[kBwdChannels][3][kSub];      // per channel and step: dt, dt*u, dy
  float red[kBwdWarps][kSub][2 * kMaxState + 1];  // per warp: dB (lanes 0-15), dC (16-31), padded
};

template <class T, bool kHasZ>
__global__ void __launch_bounds__(kBwdThreads, 1) scan_bwd_main_kernel(Params p, BwdArgs o) {
  extern __shared__ __align__(16) unsigned char smem_raw[];
  BwdSmem& s = *reinterpret_cast<BwdSmem*>(smem_raw);
  const int tid = threadIdx.x, lane = tid % 32, warp = tid / 32;
  const int n = lane % kMaxState, half = lane / kMaxState;
  const int chl = warp * 2 + half;
  const int64_t c = static_cast<int64_t>(blockIdx.y) * kBwdChannels + chl;
  const bool active = c < p.channels;
  const int64_t cc = active ? c : 0;
  const int64_t k = blockIdx.x, b = blockIdx.z;
  const int64_t t0 = k * kChunk, tend = min(p.length, t0 + kChunk);
  const int subs = static_cast<int>((tend - t0 + kSub - 1) / kSub);
  const bool has_n = active && n < p.state;
  const float An = has_n ? p.A[c * p.state + n] : 0.f;
  const float A2 = An * kLog2e;
  const float bias = active && p.delta_bias ? p.delta_bias[c] : 0.f;
  const float dskip = active && p.Dskip ? p.Dskip[c] : 0.f;
  const T* urow = static_cast<const T*>(p.u) + b * p.u_bs + cc * p.u_cs;
  const T* drow = static_cast<const T*>(p.delta) + b * p.delta_bs + cc * p.delta_cs;
  const T* zrow = kHasZ ? static_cast<const T*>(p.z) + b * p.z_bs + cc * p.z_cs : nullptr;
  const T* grow = static_cast<const T*>(o.dout) + b * o.g_bs + cc * o.g_cs;
  const T* brow = static_cast<const T*>(p.Bm) + b * p.B_bs + (has_n ? n : 0) * p.B_ns;
  const T* crow = static_cast<const T*>(p.Cm) + b * p.C_bs + (has_n ? n : 0) * p.C_ns;
  const uint8_t* srow = p.starts ? p.starts + b * p.starts_bs : nullptr;
  float(&st)[3][kSub] = s.stage[chl];

  // Phase 1: states before each sub-chunk, from the saved chunk start.
  float h = active ? o.starts[chunk_index(p, b, k, c, n)] : 0.f;
  for (int j = 0; j < subs; ++j) {
    const int64_t ts = t0 + static_cast<int64_t>(j) * kSub;
    s.ckpt[j][tid] = h;
    {
      const int64_t t = ts + n;
      const bool valid = active && t < tend;
      const float dt = valid ? scan_dt(to_f(drow[t]) + bias, p.softplus) : 0.f;
      st[0][n] = dt;
      st[1][n] = valid ? dt * to_f(urow[t]) : 0.f;
    }
    const bool my_reset = srow && ts + n < tend && srow[ts + n];
    const unsigned resets = __ballot_sync(0xffffffffu, my_reset) & 0xffffu;
    __syncwarp();
    Row16<T> bv;
    if (has_n) bv.load(brow, ts, p.length, p.aligned); else bv.zero();
#pragma unroll
    for (int i = 0; i < kSub; ++i) {
      const float a = (resets >> i) & 1u ? 0.f : ex2_approx(st[0][i] * A2);
      h = fmaf(a, h, st[1][i] * bv.get(i));
    }
    __syncwarp();
  }

  // Phase 2: sub-chunks backwards.
  float g = active ? o.carry[chunk_index(p, b, k, c, n)] : 0.f;
  float dA_acc = 0.f, dD_acc = 0.f, ddb_acc = 0.f;
  for (int j = subs - 1; j >= 0; --j) {
    const int64_t ts = t0 + static_cast<int64_t>(j) * kSub;
    const float hs = s.ckpt[j][tid];
    // This lane's own step t = ts + n of channel c.
    const int64_t t = ts + n;
    const bool valid = active && t < tend;
    const float raw = valid ? to_f(drow[t]) + bias : 0.f;
    const float dt = valid ? scan_dt(raw, p.softplus) : 0.f;
    const float uu = valid ? to_f(urow[t]) : 0.f;
    const float gg = valid ? to_f(grow[t]) : 0.f;
    const float zz = kHasZ && valid ? to_f(zrow[t]) : 0.f;
    const float dy_my = kHasZ ? gg * silu_f(zz) : gg;
    st[0][n] = dt;
    st[1][n] = dt * uu;
    st[2][n] = dy_my;
    const bool my_reset = srow && t < tend && srow[t];
    const unsigned resets = __ballot_sync(0xffffffffu, my_reset) & 0xffffu;
    __syncwarp();
    Row16<T> bv, cv;
    if (has_n) {
      bv.load(brow, ts, p.length, p.aligned);
      cv.load(crow, ts, p.length, p.aligned);
    } else {
      bv.zero();
      cv.zero();
    }
    // Recompute the sub-chunk's states.
    float a[kSub], hb[kSub], v[kSub];
    float hh = hs;
#pragma unroll
    for (int i = 0; i < kSub; ++i) {
      a[i] = (resets >> i) & 1u ? 0.f : ex2_approx(st[0][i] * A2);
      hh = fmaf(a[i], hh, st[1][i] * bv.get(i));
      hb[i] = hh;
      v[i] = cv.get(i) * hh;
    }
    const float yc = half_warp_transpose_sum(v, n);  // sum_n C h_t for t = ts + n
    // Reverse recurrence over the sub-chunk.
    float r1[kSub], r2[kSub];
#pragma unroll
    for (int i = kSub - 1; i >= 0; --i) {
      const float dys = st[2][i];
      const float dh = fmaf(dys, cv.get(i), g);
      const float hp = i > 0 ? hb[i - 1] : hs;
      const float q = dh * a[i] * hp;
      r1[i] = dh * bv.get(i);
      r2[i] = q * An;
      dA_acc = fmaf(q, st[0][i], dA_acc);
      g = a[i] * dh;
      if (o.part_bc) {
        const float dBc = dh * st[1][i];
        const float dCc = dys * hb[i];
        const float send = half ? dBc : dCc;
        const float keep = half ? dCc : dBc;
        s.red[warp][i][lane] = keep + __shfl_xor_sync(0xffffffffu, send, 16);
      }
    }
    const float R1 = half_warp_transpose_sum(r1, n);  // sum_n dh B
    const float R2 = half_warp_transpose_sum(r2, n);  // sum_n A dh a h_{t-1}
    if (valid) {
      const float ddelta = fmaf(uu, R1, R2) * scan_dt_grad(raw, p.softplus);
      if (o.du) {
        T* row = static_cast<T*>(o.du) + b * o.du_bs + c * o.du_cs;
        row[t] = from_f<T>(fmaf(dy_my, dskip, dt * R1));
      }
      if (o.ddelta) {
        T* row = static_cast<T*>(o.ddelta) + b * o.dd_bs + c * o.dd_cs;
        row[t] = from_f<T>(ddelta);
      }
      if (kHasZ && o.dz) {
        T* row = static_cast<T*>(o.dz) + b * o.dz_bs + c * o.dz_cs;
        row[t] = from_f<T>(gg * fmaf(dskip, uu, yc) * dsilu_f(zz));
      }
      dD_acc = fmaf(dy_my, uu, dD_acc);
      ddb_acc += ddelta;
    }
    if (o.part_bc) {
      __syncthreads();
      // Thread -> (matrix q, state nn, step i); sum the 16 warps (2 channels each) in order.
      const int qm = tid / (kMaxState * kSub), nn = (tid / kSub) % kMaxState, i = tid % kSub;
      const int64_t tt = ts + i;
      if (tt < tend && nn < p.state) {
        float acc = 0.f;
#pragma unroll
        for (int w = 0; w < kBwdWarps; ++w) acc += s.red[w][i][qm * kMaxState + nn];
        o.part_bc[(((qm * p.batch + b) * o.groups + blockIdx.y) * kMaxState + nn) * p.length + tt] = acc;
      }
      __syncthreads();
    }
    __syncwarp();
  }

  if (active) o.part_dA[chunk_index(p, b, k, c, n)] = dA_acc;
#pragma unroll
  for (int m = 8; m > 0; m >>= 1) {
    dD_acc += __shfl_xor_sync(0xffffffffu, dD_acc, m);
    ddb_acc += __shfl_xor_sync(0xffffffffu, ddb_acc, m);
  }
  if (active && n == 0) {
    o.part_dD[(b * p.chunks + k) * p.channels + c] = dD_acc;
    o.part_ddb[(b * p.chunks + k) * p.channels + c] = ddb_acc;
  }
  if (k == 0 && o.dh0 && has_n) o.dh0[(b * p.channels + c) * p.state + n] = g;
}

// ---- 4. dB, dC: sum of the channel-group partials, in group order -------------------
template <class T>
__global__ void scan_bc_reduce_kernel(const float* __restrict__ part, int64_t B, int64_t G, int64_t N, int64_t L,
                                      T* __restrict__ dB, int64_t dB_bs, int64_t dB_ns, T* __restrict__ dC,
                                      int64_t dC_bs, int64_t dC_ns) {
  const int64_t total = 2 * B * N * L;
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < total;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t t = i % L, n = (i / L) % N, b = (i / (L * N)) % B, q = i / (L * N * B);
    T* dst = q == 0 ? dB : dC;
    if (!dst) continue;
    float acc = 0.f;
    for (int64_t g = 0; g < G; ++g) acc += part[(((q * B + b) * G + g) * kMaxState + n) * L + t];
    dst[b * (q == 0 ? dB_bs : dC_bs) + n * (q == 0 ? dB_ns : dC_ns) + t] = from_f<T>(acc);
  }
}

// dA [D, N] from the column sums over [D, 16].
__global__ void scan_compact_state_kernel(const float* __restrict__ in, int64_t D, int64_t N, float* __restrict__ out) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i < D * N) out[i] = in[(i / N) * kMaxState + i % N];
}

}  // namespace gm::cuda::scan
