// Main backward kernel of the "pipelined" scan variant: the same work split and math as
// scan_bwd_main_kernel (scan_bwd.cuh: one thread per (channel, state), checkpoints every
// kSub steps, sub-chunks walked backwards, transposed butterflies over states, dB / dC
// summed over the block's channels in warp order), with the latency taken off the
// critical path:
// - each lane loads the per-step inputs of its next sub-chunk (u, delta, dout, z) while
//   it works on the current one;
// - B and C rows of a sub-chunk are loaded once per block (not per lane) by 64 threads,
//   one sub-chunk ahead, into double-buffered shared memory;
// - the dB / dC staging area is double-buffered, so one barrier per sub-chunk suffices;
// - sub-chunks without a document start skip the reset test in the recurrence;
// - fast softplus / SiLU (scan_fwd_fast.cuh).
#pragma once

#include "mamba/cuda/scan_bwd.cuh"
#include "mamba/cuda/scan_fwd_fast.cuh"

namespace gm::cuda::scan::fast {

template <class T>
struct BwdFastSmem {
  float ckpt[kSubs][kBwdThreads];                    // state before each sub-chunk, per thread
  float stage[kBwdChannels][3][kSub];                // per channel and step: dt, dt*u, dy
  float red[2][kBwdWarps][kSub][2 * kMaxState + 1];  // dB (lanes 0-15) / dC (16-31) per warp, padded
  T rows[2][2][kMaxState][kSub];                     // [buffer][B or C][state][step], as stored
};

// Per-step inputs of one lane's step, loaded one sub-chunk ahead.
struct StepInputs {
  float u, delta, g, z;
  bool reset;
};

template <class T, bool kHasZ>
__device__ __forceinline__ StepInputs load_step(const Params& p, const T* urow, const T* drow, const T* grow,
                                                const T* zrow, const uint8_t* srow, int64_t t, int64_t tend,
                                                bool active) {
  StepInputs s{0.f, 0.f, 0.f, 0.f, false};
  if (t < tend) {
    s.reset = srow && srow[t];
    if (active) {
      s.u = to_f(urow[t]);
      s.delta = to_f(drow[t]);
      if (grow) s.g = to_f(grow[t]);
      if constexpr (kHasZ) {
        if (grow) s.z = to_f(zrow[t]);
      }
    }
  }
  return s;
}

// Threads 0..63 each carry 8 steps of one row of B (threads 0-31) or C (32-63).
template <class T>
struct RowStager {
  Raw8<T> v;
  __device__ __forceinline__ void load(const Params& p, int64_t b, int64_t ts) {
    const int tid = threadIdx.x;
    if (tid >= 4 * kMaxState) return;
    const int m = tid / (2 * kMaxState), n = (tid / 2) % kMaxState, half = tid % 2;
    if (n < p.state) {
      const T* row = m == 0 ? static_cast<const T*>(p.Bm) + b * p.B_bs + n * p.B_ns
                            : static_cast<const T*>(p.Cm) + b * p.C_bs + n * p.C_ns;
      v.load(row, ts + half * 8, p.length, p.aligned);
    } else {
      v.zero();
    }
  }
  __device__ __forceinline__ void store(BwdFastSmem<T>& s, int buf) const {
    const int tid = threadIdx.x;
    if (tid >= 4 * kMaxState) return;
    const int m = tid / (2 * kMaxState), n = (tid / 2) % kMaxState, half = tid % 2;
#pragma unroll
    for (int j = 0; j < 8; ++j) s.rows[buf][m][n][half * 8 + j] = from_f<T>(v.get(j));
  }
};

// 16 values of one row staged in shared memory, kept as stored (bf16 stays packed).
template <class T>
__device__ __forceinline__ void load_row16(const T* src, Row16<T>& dst);
template <>
__device__ __forceinline__ void load_row16<bf16_t>(const bf16_t* src, Row16<bf16_t>& dst) {
  const uint4 a = reinterpret_cast<const uint4*>(src)[0];
  const uint4 b = reinterpret_cast<const uint4*>(src)[1];
  dst.w[0] = a.x; dst.w[1] = a.y; dst.w[2] = a.z; dst.w[3] = a.w;
  dst.w[4] = b.x; dst.w[5] = b.y; dst.w[6] = b.z; dst.w[7] = b.w;
}
template <>
__device__ __forceinline__ void load_row16<float>(const float* src, Row16<float>& dst) {
#pragma unroll
  for (int q = 0; q < 4; ++q) {
    const float4 v = reinterpret_cast<const float4*>(src)[q];
    dst.v[4 * q] = v.x; dst.v[4 * q + 1] = v.y; dst.v[4 * q + 2] = v.z; dst.v[4 * q + 3] = v.w;
  }
}

// Recompute the kSub states of a sub-chunk from hs; a[i] the decays, hb[i] = h_t, v[i] = C h_t.
template <class T, bool kResets>
__device__ __forceinline__ void recompute_sub(float hs, float A2, unsigned resets, const float (&st)[3][kSub],
                                              const Row16<T>& bv, const Row16<T>& cv, float (&a)[kSub],
                                              float (&hb)[kSub], float (&v)[kSub]) {
  float hh = hs;
#pragma unroll
  for (int i = 0; i < kSub; ++i) {
    float ai = ex2_approx(st[0][i] * A2);
    if constexpr (kResets) ai = (resets >> i) & 1u ? 0.f : ai;
    a[i] = ai;
    hh = fmaf(ai, hh, st[1][i] * bv.get(i));
    hb[i] = hh;
    v[i] = cv.get(i) * hh;
  }
}

template <class T, bool kHasZ>
__global__ void __launch_bounds__(kBwdThreads, 1) bwd_main_kernel(Params p, BwdArgs o) {
  extern __shared__ __align__(16) unsigned char smem_raw[];
  BwdFastSmem<T>& s = *reinterpret_cast<BwdFastSmem<T>*>(smem_raw);
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
  const uint8_t* srow = p.starts ? p.starts + b * p.starts_bs : nullptr;
  float(&st)[3][kSub] = s.stage[chl];

  // Phase 1: states before each sub-chunk, from the saved chunk start (forward order;
  // each lane prefetches its own next step and B row).
  {
    float h = active ? o.starts[chunk_index(p, b, k, c, n)] : 0.f;
    StepInputs cur = load_step<T, false>(p, urow, drow, nullptr, nullptr, srow, t0 + n, tend, active);
    Row16<T> bv;
    if (has_n) bv.load(brow, t0, p.length, p.aligned); else bv.zero();
    for (int j = 0; j < subs; ++j) {
      const int64_t ts = t0 + static_cast<int64_t>(j) * kSub;
      s.ckpt[j][tid] = h;
      const float dt = dt_of(cur.delta + bias, p.softplus);
      st[0][n] = dt;
      st[1][n] = dt * cur.u;
      const unsigned resets = __ballot_sync(0xffffffffu, cur.reset) & 0xffffu;
      const Row16<T> bcur = bv;
      if (j + 1 < subs) {
        cur = load_step<T, false>(p, urow, drow, nullptr, nullptr, srow, ts + kSub + n, tend, active);
        if (has_n) bv.load(brow, ts + kSub, p.length, p.aligned);
      }
      __syncwarp();
#pragma unroll
      for (int i = 0; i < kSub; ++i) {
        float a = ex2_approx(st[0][i] * A2);
        a = (resets >> i) & 1u ? 0.f : a;
        h = fmaf(a, h, st[1][i] * bcur.get(i));
      }
      __syncwarp();
    }
  }

  // Phase 2: sub-chunks backwards.
  RowStager<T> rs;
  rs.load(p, b, t0 + static_cast<int64_t>(subs - 1) * kSub);
  rs.store(s, (subs - 1) & 1);
  StepInputs cur = load_step<T, kHasZ>(p, urow, drow, grow, zrow, srow, t0 + (subs - 1) * kSub + n, tend, active);
  __syncthreads();
  float g = active ? o.carry[chunk_index(p, b, k, c, n)] : 0.f;
  float dA_acc = 0.f, dD_acc = 0.f, ddb_acc = 0.f;
  for (int j = subs - 1; j >= 0; --j) {
    const int64_t ts = t0 + static_cast<int64_t>(j) * kSub;
    const int buf = j & 1;
    const float hs = s.ckpt[j][tid];
    // This lane's own step t = ts + n.
    const int64_t t = ts + n;
    const bool valid = active && t < tend;
    const float raw = cur.delta + bias;
    const float dt = valid ? dt_of(raw, p.softplus) : 0.f;
    const float uu = cur.u, gg = cur.g, zz = cur.z;
    const float dy_my = kHasZ ? gg * silu(zz) : gg;
    st[0][n] = dt;
    st[1][n] = dt * uu;
    st[2][n] = dy_my;
    const unsigned resets = __ballot_sync(0xffffffffu, cur.reset) & 0xffffu;
    if (j > 0) {
      cur = load_step<T, kHasZ>(p, urow, drow, grow, zrow, srow, ts - kSub + n, tend, active);
      rs.load(p, b, ts - kSub);
    }
    __syncwarp();
    Row16<T> bv, cv;
    load_row16<T>(s.rows[buf][0][n], bv);
    load_row16<T>(s.rows[buf][1][n], cv);
    float a[kSub], hb[kSub], v[kSub];
    if (resets)
      recompute_sub<T, true>(hs, A2, resets, st, bv, cv, a, hb, v);
    else
      recompute_sub<T, false>(hs, A2, resets, st, bv, cv, a, hb, v);
    const float yc = half_warp_transpose_sum(v, n);  // sum_n C h_t for t = ts + n
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
        s.red[buf][warp][i][lane] = keep + __shfl_xor_sync(0xffffffffu, send, 16);
      }
    }
    const float R1 = half_warp_transpose_sum(r1, n);  // sum_n dh B
    const float R2 = half_warp_transpose_sum(r2, n);  // sum_n A dh a h_{t-1}
    if (valid) {
      const float ddelta = fmaf(uu, R1, R2) * dt_grad(raw, p.softplus);
      if (o.du) static_cast<T*>(o.du)[b * o.du_bs + c * o.du_cs + t] = from_f<T>(fmaf(dy_my, dskip, dt * R1));
      if (o.ddelta) static_cast<T*>(o.ddelta)[b * o.dd_bs + c * o.dd_cs + t] = from_f<T>(ddelta);
      if (kHasZ && o.dz)
        static_cast<T*>(o.dz)[b * o.dz_bs + c * o.dz_cs + t] = from_f<T>(gg * fmaf(dskip, uu, yc) * dsilu(zz));
      dD_acc = fmaf(dy_my, uu, dD_acc);
      ddb_acc += ddelta;
    }
    if (j > 0) rs.store(s, buf ^ 1);
    __syncthreads();
    if (o.part_bc) {
      const int qm = tid / (kMaxState * kSub), nn = (tid / kSub) % kMaxState, i = tid % kSub;
      const int64_t tt = ts + i;
      if (tt < tend && nn < p.state) {
        float acc = 0.f;
#pragma unroll
        for (int w = 0; w < kBwdWarps; ++w) acc += s.red[buf][w][i][qm * kMaxState + nn];
        o.part_bc[(((qm * p.batch + b) * o.groups + blockIdx.y) * kMaxState + nn) * p.length + tt] = acc;
      }
    }
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

}  // namespace gm::cuda::scan::fast
