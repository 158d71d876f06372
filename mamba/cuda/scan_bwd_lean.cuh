// Main backward kernel of the "lean" scan variants: four lanes per channel, four states
// per lane, sixteen steps of decays and states in registers.
//
// Same inputs, outputs and reduction order contract as scan_bwd_main_kernel (scan_bwd.cuh:
// the chunk's states recomputed from `saved`, the reverse recurrence from `carry`, dB / dC
// summed over a block's 32 channels into part_bc, dA / dDskip / ddelta_bias per
// (batch, chunk)), organised so that most sums need no other lane:
// - lane q of a channel holds states 4q .. 4q+3: the sums over states (dx = sum dh B,
//   ddelta's sum A dh a h, y's sum C h) are three multiply-adds per state in the lane,
//   then one transposed butterfly over the 4 lanes per 4 steps;
// - phase 1 walks the chunk forwards and keeps the state before each 16-step sub-chunk
//   in shared memory; phase 2 walks the sub-chunks backwards, recomputes the 16 decays
//   and states of one into registers (one exponential per element per pass) and runs
//   the reverse recurrence over them;
// - the per-step values of a channel (dt, dt u, dy, ...) are computed once, each lane
//   doing 4 of the 16 steps, and shared through shared memory; the lane's 4 steps of
//   u, delta, dout, z are copied by cp.async into a two-slot ring one sub-chunk ahead
//   (loads into registers were delayed by the compiler to their use: Nsight Compute
//   showed long-scoreboard stalls);
// - dB / dC: every 4 steps the block's 32 channels x 32 values per step are summed in
//   channel order by one thread per (value, step): fixed order, no atomics.
// B, C (and the reset flags, as a bit mask) of the next sub-chunk are staged into
// double-buffered shared memory while the current one is worked on.
#pragma once

#include "mamba/cuda/scan_bwd.cuh"
#include "mamba/cuda/scan_fwd_lean.cuh"

namespace gm::cuda::scan::lean {

constexpr int kLanes = 4;                                  // lanes per channel
constexpr int kMainChannels = kBwdChannels;                // channels per block: part_bc's group size
constexpr int kMainThreads = kMainChannels * kLanes;       // 128
constexpr int kStep = 16;                                  // steps per sub-chunk
constexpr int kSubsPerChunk = kChunk / kStep;              // 32
constexpr int kGroup = 4;                                  // steps per dB / dC reduction
constexpr int kStagePitch = kStep + 4;                     // padded: 8 channels' rows hit distinct banks
constexpr int kRedPitch = kMainChannels * 2 * kMaxState + 8;  // padded: 4 steps hit distinct banks
static_assert(kMaxState == 4 * kLanes && kMainThreads == 2 * kMaxState * kGroup, "thread layouts below");

// Per-step values of a channel, staged in shared memory.
enum StageQuantity { kQdt = 0, kQx, kQdy, kQu, kQdtg, kQgz, kStageQuantities };

// 4 steps of one row as stored: 8 bytes of bf16, 16 of f32.
template <class T>
struct Slot4 {
  uint32_t w[sizeof(T)];
};
enum RingRow { kRu = 0, kRd, kRg, kRz, kRingRows };

template <class T>
struct MainSmem {
  float4 ckpt[kSubsPerChunk][kMainThreads];               // state before each sub-chunk (a lane's 4)
  float tile[2][2][kStep][kMaxState];                     // [buffer][B or C][step][state]
  float stage[kStageQuantities][kMainChannels][kStagePitch];
  float red[kGroup][kRedPitch];                           // [step][channel * 32 + (value ^ swizzle)]
  Slot4<T> ring[kRingRows][2][kMainThreads];              // [row][slot][thread]
  uint32_t resets[2];                                     // reset bits of the staged sub-chunk
};

// Start copying row[t .. t+4) (0 past lim) into dst; rows that are not 16-byte aligned
// are loaded synchronously instead.
template <class T>
__device__ __forceinline__ void issue_slice4(Slot4<T>& dst, const T* row, int64_t t, int64_t lim, bool aligned) {
  if (aligned) {
    const int64_t n = lim - t;
    const int bytes = n <= 0 ? 0 : static_cast<int>((n < 4 ? n : 4) * static_cast<int64_t>(sizeof(T)));
    const void* src = bytes > 0 ? static_cast<const void*>(row + t) : static_cast<const void*>(row);
    const unsigned d = static_cast<unsigned>(__cvta_generic_to_shared(&dst));
    if constexpr (sizeof(T) == 2)
      asm volatile("cp.async.ca.shared.global [%0], [%1], 8, %2;\n" ::"r"(d), "l"(src), "r"(bytes) : "memory");
    else
      asm volatile("cp.async.ca.shared.global [%0], [%1], 16, %2;\n" ::"r"(d), "l"(src), "r"(bytes) : "memory");
  } else {
    Raw4<T> r;
    r.load(row, t, lim, false);
    static_assert(sizeof(Raw4<T>) == sizeof(Slot4<T>), "a slot holds one Raw4");
    memcpy(&dst, &r, sizeof r);
  }
}

template <class T>
__device__ __forceinline__ Raw4<T> read_slice4(const Slot4<T>& src) {
  Raw4<T> r;
  memcpy(&r, &src, sizeof r);
  return r;
}

// Threads 0..63 each stage 8 steps of one row of B (0..31) or C (32..63); warp 0 the
// reset mask.
template <class T>
struct MainStager {
  Raw8<T> v;
  bool reset = false;
  __device__ __forceinline__ void load(const Params& p, int64_t b, int64_t ts, int64_t tend, bool with_c) {
    const int tid = threadIdx.x;
    if (tid < 4 * kMaxState) {
      const int m = tid / (2 * kMaxState), n = (tid / 2) % kMaxState, half = tid % 2;
      if (n < p.state && (m == 0 || with_c)) {
        const T* row = m == 0 ? static_cast<const T*>(p.Bm) + b * p.B_bs + n * p.B_ns
                              : static_cast<const T*>(p.Cm) + b * p.C_bs + n * p.C_ns;
        v.load(row, ts + half * 8, p.length, p.aligned);
      } else {
        v.zero();
      }
    }
    if (tid < kStep) {
      const int64_t t = ts + tid;
      reset = p.starts && t < tend && p.starts[b * p.starts_bs + t];
    }
  }
  __device__ __forceinline__ void store(MainSmem<T>& s, int buf) const {
    const int tid = threadIdx.x;
    if (tid < 4 * kMaxState) {
      const int m = tid / (2 * kMaxState), n = (tid / 2) % kMaxState, half = tid % 2;
#pragma unroll
      for (int j = 0; j < 8; ++j) s.tile[buf][m][half * 8 + j][n] = v.get(j);
    }
    if (tid < 32) {
      const uint32_t mask = __ballot_sync(0xffffffffu, reset);
      if (tid == 0) s.resets[buf] = mask;
    }
  }
};

// 16 forward steps of a lane's 4 states (phase 1: only the end state is kept).
template <bool kResets>
__device__ __forceinline__ void forward16(float (&h)[4], const float (&A2)[4], const float* dts, const float* xs,
                                          const float (*Bt)[kMaxState], int q, uint32_t resets) {
#pragma unroll
  for (int i4 = 0; i4 < kStep / 4; ++i4) {
    const float4 d4 = ld4(dts + 4 * i4), x4 = ld4(xs + 4 * i4);
#pragma unroll
    for (int ii = 0; ii < 4; ++ii) {
      const int i = 4 * i4 + ii;
      const float dt = get4(d4, ii), x = get4(x4, ii);
      const float4 bq = ld4(Bt[i] + 4 * q);
#pragma unroll
      for (int r = 0; r < 4; ++r) {
        float a = ex2_approx(dt * A2[r]);
        if (kResets) a = (resets >> i) & 1u ? 0.f : a;
        h[r] = fmaf(a, h[r], x * get4(bq, r));
      }
    }
  }
}

// 16 forward steps from hs, keeping every decay a[i] and state hb[i] (= h after step i).
template <bool kResets>
__device__ __forceinline__ void recompute16(const float (&hs)[4], const float (&A2)[4], const float* dts,
                                            const float* xs, const float (*Bt)[kMaxState], int q, uint32_t resets,
                                            float (&a)[kStep][4], float (&hb)[kStep][4]) {
  float h[4] = {hs[0], hs[1], hs[2], hs[3]};
#pragma unroll
  for (int i4 = 0; i4 < kStep / 4; ++i4) {
    const float4 d4 = ld4(dts + 4 * i4), x4 = ld4(xs + 4 * i4);
#pragma unroll
    for (int ii = 0; ii < 4; ++ii) {
      const int i = 4 * i4 + ii;
      const float dt = get4(d4, ii), x = get4(x4, ii);
      const float4 bq = ld4(Bt[i] + 4 * q);
#pragma unroll
      for (int r = 0; r < 4; ++r) {
        float ai = ex2_approx(dt * A2[r]);
        if (kResets) ai = (resets >> i) & 1u ? 0.f : ai;
        a[i][r] = ai;
        h[r] = fmaf(ai, h[r], x * get4(bq, r));
        hb[i][r] = h[r];
      }
    }
  }
}

template <class T, bool kHasZ>
__global__ void __launch_bounds__(kMainThreads, 2) bwd_main_kernel(Params p, BwdArgs o) {
  extern __shared__ __align__(16) unsigned char smem_raw[];
  MainSmem<T>& s = *reinterpret_cast<MainSmem<T>*>(smem_raw);
  const int tid = threadIdx.x, lane = tid % 32, warp = tid / 32;
  const int q = lane % kLanes;
  const int chl = warp * (32 / kLanes) + lane / kLanes;
  const int own = kLanes * q;  // the first of this lane's 4 steps (per sub-chunk) and states
  const int64_t c = static_cast<int64_t>(blockIdx.y) * kMainChannels + chl;
  const bool active = c < p.channels;
  const int64_t cc = active ? c : 0;
  const int64_t k = blockIdx.x, b = blockIdx.z;
  const int64_t t0 = k * kChunk, tend = min(p.length, t0 + kChunk);
  const int subs = static_cast<int>((tend - t0 + kStep - 1) / kStep);
  float An[4], A2[4];
#pragma unroll
  for (int r = 0; r < 4; ++r) {
    const int n = own + r;
    An[r] = active && n < p.state ? p.A[c * p.state + n] : 0.f;
    A2[r] = An[r] * kLog2e;
  }
  const float bias = active && p.delta_bias ? p.delta_bias[c] : 0.f;
  const float dskip = active && p.Dskip ? p.Dskip[c] : 0.f;
  const bool sp = p.softplus;
  const T* urow = static_cast<const T*>(p.u) + b * p.u_bs + cc * p.u_cs;
  const T* drow = static_cast<const T*>(p.delta) + b * p.delta_bs + cc * p.delta_cs;
  const T* zrow = kHasZ ? static_cast<const T*>(p.z) + b * p.z_bs + cc * p.z_cs : nullptr;
  const T* grow = static_cast<const T*>(o.dout) + b * o.g_bs + cc * o.g_cs;
  const int64_t lim = active ? p.length : 0;
  float* st_dt = s.stage[kQdt][chl];
  float* st_x = s.stage[kQx][chl];
  float* st_dy = s.stage[kQdy][chl];

  // ---- Phase 1: the state before every sub-chunk, forwards from the saved chunk start.
  // The lane's 4 steps of sub-chunk ts into ring slot `slot`: u, delta (and dout, z).
  auto issue = [&](int slot, int64_t ts, bool backward) {
    issue_slice4(s.ring[kRu][slot][tid], urow, ts + own, lim, p.aligned);
    issue_slice4(s.ring[kRd][slot][tid], drow, ts + own, lim, p.aligned);
    if (backward) {
      issue_slice4(s.ring[kRg][slot][tid], grow, ts + own, lim, p.aligned);
      if constexpr (kHasZ) issue_slice4(s.ring[kRz][slot][tid], zrow, ts + own, lim, p.aligned);
    }
    cp_async_commit();
  };
  MainStager<T> stager;
  stager.load(p, b, t0, tend, false);
  stager.store(s, 0);
  issue(0, t0, false);
  float h[4];
  {
    const float4 h4 = active ? ld4(o.starts + chunk_index(p, b, k, c, own)) : make_float4(0.f, 0.f, 0.f, 0.f);
    h[0] = h4.x; h[1] = h4.y; h[2] = h4.z; h[3] = h4.w;
  }
  __syncthreads();
  for (int j = 0; j < subs; ++j) {
    const int64_t ts = t0 + static_cast<int64_t>(j) * kStep;
    const int buf = j & 1;
    s.ckpt[j][tid] = make_float4(h[0], h[1], h[2], h[3]);
    if (j + 1 < subs) stager.load(p, b, ts + kStep, tend, false);
    cp_async_wait<0>();
    const Raw4<T> ru = read_slice4(s.ring[kRu][j & 1][tid]), rd = read_slice4(s.ring[kRd][j & 1][tid]);
    if (j + 1 < subs) issue((j + 1) & 1, ts + kStep, false);
    {
      float dt4[4], x4[4];
#pragma unroll
      for (int i = 0; i < 4; ++i) {
        const bool valid = active && ts + own + i < tend;
        const float dt = valid ? dt_of(rd.get(i) + bias, sp) : 0.f;
        dt4[i] = dt;
        x4[i] = dt * ru.get(i);
      }
      st4(st_dt + own, make_float4(dt4[0], dt4[1], dt4[2], dt4[3]));
      st4(st_x + own, make_float4(x4[0], x4[1], x4[2], x4[3]));
    }
    __syncwarp();
    const uint32_t resets = s.resets[buf];
    if (resets == 0)
      forward16<false>(h, A2, st_dt, st_x, s.tile[buf][0], q, resets);
    else
      forward16<true>(h, A2, st_dt, st_x, s.tile[buf][0], q, resets);
    if (j + 1 < subs) stager.store(s, buf ^ 1);
    __syncthreads();
  }

  // ---- Phase 2: sub-chunks backwards.
  {
    const int64_t tl = t0 + static_cast<int64_t>(subs - 1) * kStep;
    stager.load(p, b, tl, tend, true);
    stager.store(s, (subs - 1) & 1);
    issue((subs - 1) & 1, tl, true);  // phase 1's copies have all completed
  }
  float g[4];
  {
    const float4 g4 = active ? ld4(o.carry + chunk_index(p, b, k, c, own)) : make_float4(0.f, 0.f, 0.f, 0.f);
    g[0] = g4.x; g[1] = g4.y; g[2] = g4.z; g[3] = g4.w;
  }
  float dA[4] = {0.f, 0.f, 0.f, 0.f};
  float dD_acc = 0.f, ddb_acc = 0.f;
  T* du_row = o.du ? static_cast<T*>(o.du) + b * o.du_bs + cc * o.du_cs : nullptr;
  T* dd_row = o.ddelta ? static_cast<T*>(o.ddelta) + b * o.dd_bs + cc * o.dd_cs : nullptr;
  T* dz_row = kHasZ && o.dz ? static_cast<T*>(o.dz) + b * o.dz_bs + cc * o.dz_cs : nullptr;
  const bool want_bc = o.part_bc != nullptr;
  const int swz = (chl & 1) << 4;  // odd channels swap their dB / dC halves: conflict-free stores
  __syncthreads();
  for (int j = subs - 1; j >= 0; --j) {
    const int64_t ts = t0 + static_cast<int64_t>(j) * kStep;
    const int buf = j & 1;
    if (j > 0) stager.load(p, b, ts - kStep, tend, true);
    cp_async_wait<0>();
    const Raw4<T> ru = read_slice4(s.ring[kRu][buf][tid]), rd = read_slice4(s.ring[kRd][buf][tid]);
    const Raw4<T> rg = read_slice4(s.ring[kRg][buf][tid]);
    Raw4<T> rz;
    if constexpr (kHasZ) rz = read_slice4(s.ring[kRz][buf][tid]);
    if (j > 0) issue(buf ^ 1, ts - kStep, true);
    {
      float v[kStageQuantities][4];
#pragma unroll
      for (int i = 0; i < 4; ++i) {
        const bool valid = active && ts + own + i < tend;
        const float raw = rd.get(i) + bias;
        const float dt = valid ? dt_of(raw, sp) : 0.f;
        const float uu = ru.get(i), gg = rg.get(i);
        float dy = gg, gz = 0.f;
        if constexpr (kHasZ) {
          const float zz = rz.get(i);
          const float sg = sigmoid(zz);
          dy = gg * (zz * sg);
          gz = gg * (sg * (1.f + zz * (1.f - sg)));
        }
        v[kQdt][i] = dt;
        v[kQx][i] = dt * uu;
        v[kQdy][i] = dy;
        v[kQu][i] = uu;
        v[kQdtg][i] = dt_grad(raw, sp);
        v[kQgz][i] = gz;
      }
#pragma unroll
      for (int m = 0; m < kStageQuantities; ++m)
        st4(s.stage[m][chl] + own, make_float4(v[m][0], v[m][1], v[m][2], v[m][3]));
    }
    __syncwarp();
    const uint32_t resets = s.resets[buf];
    float hs[4];
    {
      const float4 h4 = s.ckpt[j][tid];
      hs[0] = h4.x; hs[1] = h4.y; hs[2] = h4.z; hs[3] = h4.w;
    }
    float a[kStep][4], hb[kStep][4];
    if (resets == 0)
      recompute16<false>(hs, A2, st_dt, st_x, s.tile[buf][0], q, resets, a, hb);
    else
      recompute16<true>(hs, A2, st_dt, st_x, s.tile[buf][0], q, resets, a, hb);

#pragma unroll
    for (int grp = kStep / kGroup - 1; grp >= 0; --grp) {
      // Reverse recurrence over the group's 4 steps; per step this lane's partial sums
      // over its 4 states: ps[.][0] = sum A dh a h_{t-1}, [1] = sum dh B, [2] = sum C h.
      float ps[kGroup][3];
      const float4 dt4 = ld4(st_dt + kGroup * grp), x4 = ld4(st_x + kGroup * grp), dy4 = ld4(st_dy + kGroup * grp);
#pragma unroll
      for (int ii = kGroup - 1; ii >= 0; --ii) {
        const int i = kGroup * grp + ii;
        const float dt = get4(dt4, ii), x = get4(x4, ii), dy = get4(dy4, ii);
        const float4 bq = ld4(s.tile[buf][0][i] + own), cq = ld4(s.tile[buf][1][i] + own);
        float sq = 0.f, sb = 0.f, sc = 0.f, dBv[4], dCv[4];
#pragma unroll
        for (int r = 0; r < 4; ++r) {
          const float dh = fmaf(dy, get4(cq, r), g[r]);
          const float hp = i > 0 ? hb[i - 1][r] : hs[r];
          const float gn = dh * a[i][r];
          const float qv = gn * hp;
          dA[r] = fmaf(qv, dt, dA[r]);
          sq = fmaf(qv, An[r], sq);
          sb = fmaf(dh, get4(bq, r), sb);
          sc = fmaf(get4(cq, r), hb[i][r], sc);
          dBv[r] = dh * x;
          dCv[r] = dy * hb[i][r];
          g[r] = gn;
        }
        ps[ii][0] = sq;
        ps[ii][1] = sb;
        ps[ii][2] = sc;
        if (want_bc) {
          st4(s.red[ii] + chl * 2 * kMaxState + (own ^ swz), make_float4(dBv[0], dBv[1], dBv[2], dBv[3]));
          st4(s.red[ii] + chl * 2 * kMaxState + ((kMaxState + own) ^ swz), make_float4(dCv[0], dCv[1], dCv[2], dCv[3]));
        }
      }
      // Sums over the channel's 4 lanes, transposed: lane q ends with step 4 grp + q.
      const bool hi2 = q & 2, hi1 = q & 1;
      float w[2][3], tot[3];
#pragma unroll
      for (int s2 = 0; s2 < 2; ++s2) {
#pragma unroll
        for (int x = 0; x < 3; ++x) {
          const float keep = hi2 ? ps[s2 + 2][x] : ps[s2][x];
          const float send = hi2 ? ps[s2][x] : ps[s2 + 2][x];
          w[s2][x] = keep + __shfl_xor_sync(0xffffffffu, send, 2);
        }
      }
#pragma unroll
      for (int x = 0; x < 3; ++x) {
        const float keep = hi1 ? w[1][x] : w[0][x];
        const float send = hi1 ? w[0][x] : w[1][x];
        tot[x] = keep + __shfl_xor_sync(0xffffffffu, send, 1);
      }
      {
        const int io = kGroup * grp + q;
        const int64_t t = ts + io;
        if (active && t < tend) {
          const float dt = st_dt[io], dy = st_dy[io];
          const float uu = s.stage[kQu][chl][io], dtg = s.stage[kQdtg][chl][io], gz = s.stage[kQgz][chl][io];
          const float R2 = tot[0], R1 = tot[1], yc = tot[2];
          const float ddelta = fmaf(uu, R1, R2) * dtg;
          if (du_row) du_row[t] = from_f<T>(fmaf(dy, dskip, dt * R1));
          if (dd_row) dd_row[t] = from_f<T>(ddelta);
          if (dz_row) dz_row[t] = from_f<T>(gz * fmaf(dskip, uu, yc));
          dD_acc = fmaf(dy, uu, dD_acc);
          ddb_acc += ddelta;
        }
      }
      __syncthreads();
      if (want_bc) {
        // Thread -> (value v, step sidx): the sum over the block's channels in a fixed order
        // (four interleaved partial sums, so that the adds are not one dependent chain).
        const int v = tid / kGroup, sidx = tid % kGroup;
        const float* col = s.red[sidx];
        float part[4] = {0.f, 0.f, 0.f, 0.f};
#pragma unroll
        for (int ch = 0; ch < kMainChannels; ++ch) part[ch % 4] += col[ch * 2 * kMaxState + (v ^ ((ch & 1) << 4))];
        const float acc = (part[0] + part[1]) + (part[2] + part[3]);
        const int64_t t = ts + kGroup * grp + sidx;
        const int which = v / kMaxState, n = v % kMaxState;
        if (t < tend && n < p.state)
          o.part_bc[(((which * p.batch + b) * o.groups + blockIdx.y) * kMaxState + n) * p.length + t] = acc;
      }
      if (grp == 0 && j > 0) stager.store(s, buf ^ 1);
      __syncthreads();
    }
  }

  if (active) st4(o.part_dA + chunk_index(p, b, k, c, own), make_float4(dA[0], dA[1], dA[2], dA[3]));
  dD_acc += __shfl_xor_sync(0xffffffffu, dD_acc, 1);
  ddb_acc += __shfl_xor_sync(0xffffffffu, ddb_acc, 1);
  dD_acc += __shfl_xor_sync(0xffffffffu, dD_acc, 2);
  ddb_acc += __shfl_xor_sync(0xffffffffu, ddb_acc, 2);
  if (active && q == 0) {
    o.part_dD[(b * p.chunks + k) * p.channels + c] = dD_acc;
    o.part_ddb[(b * p.chunks + k) * p.channels + c] = ddb_acc;
  }
  if (k == 0 && o.dh0 && active) {
#pragma unroll
    for (int r = 0; r < 4; ++r)
      if (own + r < p.state) o.dh0[(b * p.channels + c) * p.state + own + r] = g[r];
  }
}

}  // namespace gm::cuda::scan::lean
