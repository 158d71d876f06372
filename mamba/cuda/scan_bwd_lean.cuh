// Main backward kernel of the "lean" scan variants: four lanes per channel, four states
// per lane, eight steps of decays and states in registers, 12 warps per SM.
//
// Same inputs, outputs and reduction order contract as scan_bwd_main_kernel (scan_bwd.cuh:
// the chunk's states recomputed from `saved`, the reverse recurrence from `carry`, dB / dC
// summed over a block's 32 channels into part_bc, dA / dDskip / ddelta_bias per
// (batch, chunk)); every sum in a fixed order, no atomics.
//
// The walk: a chunk's 8-step sub-chunks go forwards. Each recomputes its 8 decays and
// states from the state before it (the chunk's saved start for the first, the last state
// of the one before otherwise) and runs the reverse recurrence over them from the gradient
// into its last state, which the reverse chunk summary left for it (FlowArgs: the flow from
// the rest of the chunk, plus the chunk's carry decayed over the steps after the sub-chunk,
// one exponential per state and sub-chunk). So the kernel computes every exponential once.
// Before (to commit d5ea4fa) a first phase walked the chunk forwards to checkpoint every
// sub-chunk's start state in a global scratch slot, and the sub-chunks then went backwards
// with the gradient carried in registers: a second exponential pass over every element, 3.3
// to 4.0 ms of row 2's forward + backward by probe builds (bench/RESULTS.md, "Measured
// bounds, second round"). Without it (H200, same call, new / old): row 2 25.25 / 27.25 ms,
// row 1 27.90 / 29.48, row 3 23.88 / 25.78, row 4 18.22 / 19.43; the flows cost the summary
// pass 8.5 bytes of stores per channel and step, within a budget (windows of chunks).
//
// Why it is laid out this way (row 2, 8 x 512 x 131,072, H200, bench/RESULTS.md "backward
// main kernel, 12 warps per SM"): the previous version (16-step sub-chunks, a[16][4] and
// hb[16][4] in 255 registers, the 32 sub-chunk checkpoints in 64 KB of shared memory) ran
// 8 warps per SM, IPC 1.66, 10.8e9 warp instructions: 25.0 ms. This one's first form: 12
// warps per SM, 9.9e9 instructions, 20.3 ms, held by the shared-memory pipe (L1/TEX
// throughput 82%, 3.9e9 shared wavefronts; a shared load costs one wavefront per 4 bytes
// per thread, a 16-byte load 4, even when 8 lanes share its address, as the per-step B / C
// loads do). Then, with B / C as bf16 in shared memory, conflict-free staging and a lane's
// output values kept in registers: 3.0e9 wavefronts, 10.9e9 instructions, IPC 2.24,
// L1/TEX 71%: 18.7 ms, no longer held by one pipe but by latency at 3 warps per scheduler
// (stalls per issue: wait 1.1, short scoreboard 1.1, not selected 0.7).
// - Occupancy. Sub-chunks of 8 steps halve the decays and states held per lane: ~48 KB of
//   shared memory and 168 registers per 128-thread block. The grid is persistent (one
//   block per resident slot, walking (batch, group, chunk) items).
// - Per-sub-chunk overhead. With 8-step sub-chunks the fixed work per sub-chunk counts
//   twice per element; the first version of this kernel spent ~800 of ~1,185 instructions
//   per lane and sub-chunk outside the recurrence (64-bit bounds and address arithmetic
//   of the row copies, the outputs, the dB / dC sums, the B / C staging) and executed
//   12.75e9 instructions (22.3 ms). Hence: one fixed-size copy per row when both of the
//   lane's steps exist, row pointers looked up in shared-memory tables set once per item,
//   compile-time offsets in the dB / dC sums, one 2-step store per output row.
// - dB / dC. The lanes store dh and h of each step to shared memory as they are computed
//   (one 16-byte store each per step), and the block's 128 threads form the channel sums
//   as multiply-adds with x and dy (thread = dB or dC, 4 states, one step, 16 channels in
//   channel order; the two channel halves joined by one shuffle).
// - The per-step values of a channel (dt, dt u, dy, ...) are computed once, each lane
//   doing 2 of the 8 steps (softplus and its derivative from one exponential); those the
//   other lanes and the dB / dC sums need (dt, dt u, dy) are shared through shared memory,
//   the rest stay in the lane's registers for its outputs (the butterfly below ends with
//   the lane holding the sums of the same 2 steps). The lane's 2 steps of u, delta, dout,
//   z (and its flow) are copied by cp.async into two-slot rings one sub-chunk ahead
//   (loads into registers were delayed by the compiler to their use: Nsight Compute showed
//   long-scoreboard stalls in the thread-per-channel kernels).
// - Sums over a channel's 16 states (dx = sum dh B, ddelta's sum A dh a h, y = sum C h):
//   three multiply-adds per state in the lane, then one transposed butterfly over the 4
//   lanes and 8 steps (lane q ends with steps 2q and 2q + 1, the two it staged).
// B, C (and the reset flags, as a bit mask) of the next sub-chunk are staged into
// double-buffered shared memory while the current one is worked on (as bf16 when the
// inputs are: see BcTile).
#pragma once

#include "mamba/cuda/scan_bwd.cuh"
#include "mamba/cuda/scan_fwd_lean.cuh"

namespace gm::cuda::scan::lean {

constexpr int kLanes = 4;                                  // lanes per channel
constexpr int kMainChannels = kBwdChannels;                // channels per block: part_bc's group size
constexpr int kMainThreads = kMainChannels * kLanes;       // 128
// Blocks per SM the register budget is set for (168 registers). 4 blocks (128 registers,
// 64 / 88 bytes of spill stores / loads) ran slower at every PEERS row: 20.72 against
// 20.31 ms at row 2 (Nsight Compute), fwd+bwd 32.24 against 31.88 ms.
constexpr int kMainBlocksPerSm = 3;
constexpr int kStep = 8;                                   // steps per sub-chunk
constexpr int kSubsPerChunk = kChunk / kStep;              // 64: flows per chunk
// Unpadded: a half-warp's 8-byte staging stores and output loads (4 channels x 4 lanes x
// 2 steps) cover the 32 banks once. The padded pitch of 12 floats put channels c and c + 3
// on 4 common banks (2 of 4 half-warp rows conflicting, ~26 extra wavefronts per warp and
// sub-chunk, by count). Measured alone (row 2, fwd+bwd): 30.03 -> 29.53 ms.
constexpr int kStagePitch = kStep;
// Channels 16..31 of a stage row start 8 floats later, so that the reducers' two channel
// halves read distinct banks.
constexpr int kStageHalf = 16 * kStagePitch + 8;
constexpr int kStageRow = 2 * kStageHalf;
// One step's dh (or h) of the block: 32 channels x 16 states, padded by one 16-byte unit,
// so that step s starts s units (mod 8) later: the lanes' stores (8 channels x 4 state
// groups of one step) and the reducers' loads (8 steps of one channel and state group)
// are both conflict-free.
constexpr int kRedPlane = kMainChannels * kMaxState + 4;
static_assert(kMaxState == 4 * kLanes && kStep == 2 * kLanes, "thread layouts below");
static_assert(kMainThreads == 2 * (kMaxState / 4) * kStep * 2, "reducer: dB/dC x 4 state quads x 8 steps x 2");

__device__ __forceinline__ int stage_row(int ch) { return ch * kStagePitch + (ch >= 16 ? 8 : 0); }

// Per-step values of a channel. kQdl: dt log2(e) (the decay is 2^(dl A); dA is summed with
// dl and scaled by ln 2 once). The first kStaged go to shared memory (read by the channel's
// other lanes and the dB / dC sums); u, d dt / d raw and the z gate factor only feed the
// lane's own outputs and stay in registers: storing and reloading them (and reloading dl,
// dy) cost 16 wavefronts per warp and sub-chunk. Measured (row 2, fwd+bwd): 28.72 -> 28.44
// ms with the bf16 tile; nothing without it (29.53 -> 29.52: that build spilled 8 bytes).
enum StepQuantity { kQdl = 0, kQx, kQdy, kStaged, kQu = kStaged, kQdtg, kQgz, kStepQuantities };

// 2 steps of one row as stored: 4 bytes of bf16, 8 of f32.
template <class T>
struct Slot2 {
  uint32_t w[sizeof(T) / 2];
};
enum RingRow { kRu = 0, kRd, kRg, kRz, kRingRows };

// B and C of a staged sub-chunk, read by every lane each step: lane q loads the 4 states
// 4q .. 4q + 3 of B (recompute) or of B and C (reverse). The 4 lanes of a channel
// share those addresses with the warp's 7 other channels, but a shared-memory load costs one
// wavefront per 4 bytes per thread whatever the broadcast (a 16-byte load 4 wavefronts):
// as f32 these loads were 128 of the ~460 wavefronts per warp and sub-chunk.
template <class T>
struct BcTile;
template <>
struct BcTile<float> {
  float v[2][2][kStep][kMaxState];  // [buffer][B or C][step][state]
  __device__ __forceinline__ float4 b(int buf, int i, int q) const { return ld4(v[buf][0][i] + 4 * q); }
  __device__ __forceinline__ void bc(int buf, int i, int q, float4& bq, float4& cq) const {
    bq = ld4(v[buf][0][i] + 4 * q);
    cq = ld4(v[buf][1][i] + 4 * q);
  }
  // Steps step0 .. step0 + 3 of state n of B (m = 0) or C (m = 1).
  __device__ __forceinline__ void put4(int buf, int m, int n, int step0, const Raw4<float>& r) {
#pragma unroll
    for (int j = 0; j < 4; ++j) v[buf][m][step0 + j][n] = r.get(j);
  }
};
// bf16 inputs stay bf16 here (exact: the f32 values are the same), 16 bytes per step and
// state quad holding its 4 B then its 4 C: B alone is one 8-byte load (2 wavefronts instead
// of 4), B and C one 16-byte load (4 instead of 8): 64 fewer wavefronts per warp and
// sub-chunk, for one integer instruction per value to widen it (instructions +9%).
// Measured (row 2, fwd+bwd, with the unpadded staging): 29.53 -> 28.72 ms.
// Steps 4..7 start one row (64 bytes) later, so that the stager's 2-byte stores of steps j
// and 4 + j (the two lanes of a state) fall on different banks.
template <>
struct BcTile<bf16_t> {
  uint4 v[2][kStep + 1][kLanes];  // [buffer][row(step)][state quad]
  __device__ __forceinline__ static constexpr int row(int i) { return i + (i >= 4 ? 1 : 0); }
  __device__ __forceinline__ float4 b(int buf, int i, int q) const {
    const uint2 w = *reinterpret_cast<const uint2*>(&v[buf][row(i)][q]);
    return make_float4(bf16_lo(w.x), bf16_hi(w.x), bf16_lo(w.y), bf16_hi(w.y));
  }
  __device__ __forceinline__ void bc(int buf, int i, int q, float4& bq, float4& cq) const {
    const uint4 w = v[buf][row(i)][q];
    bq = make_float4(bf16_lo(w.x), bf16_hi(w.x), bf16_lo(w.y), bf16_hi(w.y));
    cq = make_float4(bf16_lo(w.z), bf16_hi(w.z), bf16_lo(w.w), bf16_hi(w.w));
  }
  __device__ __forceinline__ void put4(int buf, int m, int n, int step0, const Raw4<bf16_t>& r) {
    uint16_t* const base = reinterpret_cast<uint16_t*>(&v[buf][0][n / 4]) + 4 * m + n % 4;
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      const uint32_t w = j < 2 ? r.r.x : r.r.y;
      base[row(step0 + j) * (kLanes * 8)] = static_cast<uint16_t>(j % 2 ? w >> 16 : w);
    }
  }
};

template <class T>
struct MainSmem {
  alignas(16) float red[2][kStep][kRedPlane];             // [dh or h][step][channel * 16 + state]
  float stage[kStaged][kStageRow];                        // [quantity][stage_row(channel) + step]
  BcTile<T> tile;                                         // B, C of the staged sub-chunk (2 buffers)
  float4 hstart[2][kMainThreads];                         // state before the sub-chunk: [sub-chunk parity]
  float4 flow[2][kMainThreads];                           // FlowArgs: the lane's 4 states' flow, [ring slot]
  float flow_dt[2][kMainThreads];                         // FlowArgs::dt_after of the lane's channel, [ring slot]
  float4 carry[kMainThreads];                             // gradient into the chunk's end state
  // Row pointers of the item (at its first step), looked up instead of recomputed from
  // 64-bit strides every sub-chunk: B / C rows of the staging threads (null: none), du /
  // ddelta / dz rows of each channel (null: not wanted or no channel), part_bc rows
  // [dB or dC][state].
  const T* bc_row[4 * kMaxState];
  T* out_row[3][kMainChannels];
  float* part_row[2][kMaxState];
  Slot2<T> ring[kRingRows][2][kMainThreads];              // [row][slot][thread]
  uint32_t resets[2];                                     // reset bits of the staged sub-chunk
};

// 2 consecutive elements of a row, 0 past L.
template <class T> struct Raw2;
template <> struct Raw2<bf16_t> {
  uint32_t w;
  __device__ __forceinline__ float get(int i) const { return bf16_of(w, i); }
  __device__ __forceinline__ void load_scalar(const bf16_t* row, int t, int L) {
    const uint16_t* q = reinterpret_cast<const uint16_t*>(row);
    const uint32_t lo = t < L ? q[t] : 0u;
    const uint32_t hi = t + 1 < L ? q[t + 1] : 0u;
    w = lo | (hi << 16);
  }
};
template <> struct Raw2<float> {
  float2 a;
  __device__ __forceinline__ float get(int i) const { return i ? a.y : a.x; }
  __device__ __forceinline__ void load_scalar(const float* row, int t, int L) {
    a.x = t < L ? row[t] : 0.f;
    a.y = t + 1 < L ? row[t + 1] : 0.f;
  }
};
static_assert(sizeof(Raw2<bf16_t>) == sizeof(Slot2<bf16_t>) && sizeof(Raw2<float>) == sizeof(Slot2<float>),
              "a slot holds one Raw2");

// Start copying src[0 .. 2) into dst (both exist; src aligned to the copy's size).
template <class T>
__device__ __forceinline__ void copy_slice2(Slot2<T>& dst, const T* src) {
  const unsigned d = static_cast<unsigned>(__cvta_generic_to_shared(&dst));
  if constexpr (sizeof(T) == 2)
    asm volatile("cp.async.ca.shared.global [%0], [%1], 4;\n" ::"r"(d), "l"(src) : "memory");
  else
    asm volatile("cp.async.ca.shared.global [%0], [%1], 8;\n" ::"r"(d), "l"(src) : "memory");
}

// Start copying row[t .. t+2) (0 past lim; t even) into dst at the end of a row, or
// anywhere in rows that are not 16-byte aligned (loaded synchronously then). The common
// case, both steps present in aligned rows, is copy_slice2: the bounds arithmetic here
// was ~20 instructions per row and sub-chunk in the SASS of the first version.
template <class T>
__device__ __forceinline__ void issue_slice2(Slot2<T>& dst, const T* row, int t, int lim, bool aligned) {
  const unsigned d = static_cast<unsigned>(__cvta_generic_to_shared(&dst));
  if (aligned) {
    const int n = lim - t;
    const int bytes = n <= 0 ? 0 : n * static_cast<int>(sizeof(T));
    const void* src = bytes > 0 ? static_cast<const void*>(row + t) : static_cast<const void*>(row);
    if constexpr (sizeof(T) == 2)
      asm volatile("cp.async.ca.shared.global [%0], [%1], 4, %2;\n" ::"r"(d), "l"(src), "r"(bytes) : "memory");
    else
      asm volatile("cp.async.ca.shared.global [%0], [%1], 8, %2;\n" ::"r"(d), "l"(src), "r"(bytes) : "memory");
  } else {
    Raw2<T> r;
    r.load_scalar(row, t, lim);
    memcpy(&dst, &r, sizeof r);
  }
}

template <class T>
__device__ __forceinline__ Raw2<T> read_slice2(const Slot2<T>& src) {
  Raw2<T> r;
  memcpy(&r, &src, sizeof r);
  return r;
}

// 16 bytes of a flow, global -> shared (through L2 only: each is read once).
__device__ __forceinline__ void cp_async16_cg(void* smem_dst, const void* src) {
  const unsigned dst = static_cast<unsigned>(__cvta_generic_to_shared(smem_dst));
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16;\n" ::"r"(dst), "l"(src) : "memory");
}

// 4 bytes (a lane's flow dt_after), global -> shared.
__device__ __forceinline__ void cp_async4(void* smem_dst, const void* src) {
  const unsigned dst = static_cast<unsigned>(__cvta_generic_to_shared(smem_dst));
  asm volatile("cp.async.ca.shared.global [%0], [%1], 4;\n" ::"r"(dst), "l"(src) : "memory");
}

__device__ __forceinline__ void st2(float* p, float a, float b) { *reinterpret_cast<float2*>(p) = make_float2(a, b); }

// dt = softplus(raw) (as lean::softplus, bitwise) and d dt / d raw = sigmoid(raw) from the
// same exponential: sigmoid = e / (1 + e).
__device__ __forceinline__ void dt_and_grad(float raw, bool sp, float& dt, float& dtg) {
  if (!sp) {
    dt = raw;
    dtg = 1.f;
    return;
  }
  const float e = ex2_approx(raw * kLog2e);
  const float series = e * (1.f - e * (0.5f - e * (0.33333334f - 0.25f * e)));
  const float onep = 1.f + e;
  const float lg = __logf(onep);
  const float r = raw < -3.f ? series : lg;
  dt = raw > 20.f ? raw : r;
  dtg = raw > 20.f ? 1.f : __fdividef(e, onep);
}

__device__ __forceinline__ void load_vec4(Raw4<bf16_t>& v, const bf16_t* p) { v.r = *reinterpret_cast<const uint2*>(p); }
__device__ __forceinline__ void load_vec4(Raw4<float>& v, const float* p) { v.a = *reinterpret_cast<const float4*>(p); }

// 2 consecutive outputs at p (the second only when `both`): one 4- or 8-byte store when
// aligned.
__device__ __forceinline__ void store2(bf16_t* p, bool both, float a, float b) {
  if (both && (reinterpret_cast<uintptr_t>(p) & 3u) == 0) {
    *reinterpret_cast<__nv_bfloat162*>(p) = __floats2bfloat162_rn(a, b);
  } else {
    p[0] = __float2bfloat16_rn(a);
    if (both) p[1] = __float2bfloat16_rn(b);
  }
}
__device__ __forceinline__ void store2(float* p, bool both, float a, float b) {
  if (both && (reinterpret_cast<uintptr_t>(p) & 7u) == 0) {
    *reinterpret_cast<float2*>(p) = make_float2(a, b);
  } else {
    p[0] = a;
    if (both) p[1] = b;
  }
}

// Threads 0..63 each stage 4 steps of one row of B (0..31) or C (32..63); warp 0 the
// reset mask.
template <class T>
struct MainStager {
  Raw4<T> v;
  bool reset = false;
  // The B (threads 0..31) or C (32..63) row of this thread at the item's first step t0.
  __device__ __forceinline__ static void set_row(const Params& p, MainSmem<T>& s, int64_t b, int64_t t0) {
    const int tid = threadIdx.x;
    if (tid < 4 * kMaxState) {
      const int m = tid / (2 * kMaxState), n = (tid / 2) % kMaxState;
      s.bc_row[tid] = n >= p.state ? nullptr
                      : m == 0     ? static_cast<const T*>(p.Bm) + b * p.B_bs + n * p.B_ns + t0
                                   : static_cast<const T*>(p.Cm) + b * p.C_bs + n * p.C_ns + t0;
    }
  }
  // Steps ts .. ts+7 of the chunk starting at t0, of which the first tl exist.
  __device__ __forceinline__ void load(const Params& p, const MainSmem<T>& s, int64_t b, int64_t t0, int ts, int tl) {
    const int tid = threadIdx.x;
    if (tid < 4 * kMaxState) {
      const int half = tid % 2;
      const int t = ts + half * 4;
      const T* row = s.bc_row[tid];
      if (row != nullptr && t < tl) {
        if (p.aligned && t + 4 <= tl)
          load_vec4(v, row + t);
        else
          v.load(row, t, tl, false);
      } else {
        v.zero();
      }
    }
    if (tid < kStep) {
      const int t = ts + tid;
      reset = p.starts && t < tl && p.starts[b * p.starts_bs + t0 + t];
    }
  }
  __device__ __forceinline__ void store(MainSmem<T>& s, int buf) const {
    const int tid = threadIdx.x;
    if (tid < 4 * kMaxState) {
      const int m = tid / (2 * kMaxState), n = (tid / 2) % kMaxState, half = tid % 2;
      s.tile.put4(buf, m, n, half * 4, v);
    }
    if (tid < 32) {
      const uint32_t mask = __ballot_sync(0xffffffffu, reset);
      if (tid == 0) s.resets[buf] = mask;
    }
  }
};

// 8 forward steps from hs, keeping every decay a[i] and state hb[i] (= h after step i).
template <bool kResets, class T>
__device__ __forceinline__ void recompute8(const float* hs, const float (&An)[4], const float* dls,
                                           const float* xs, const BcTile<T>& tile, int buf, int q, uint32_t resets,
                                           float (&a)[kStep][4], float (&hb)[kStep][4]) {
  const float4 h4 = ld4(hs);
  float h[4] = {h4.x, h4.y, h4.z, h4.w};
#pragma unroll
  for (int i4 = 0; i4 < kStep / 4; ++i4) {
    const float4 d4 = ld4(dls + 4 * i4), x4 = ld4(xs + 4 * i4);
#pragma unroll
    for (int ii = 0; ii < 4; ++ii) {
      const int i = 4 * i4 + ii;
      const float dl = get4(d4, ii), x = get4(x4, ii);
      const float4 bq = tile.b(buf, i, q);
#pragma unroll
      for (int r = 0; r < 4; ++r) {
        float ai = ex2_approx(dl * An[r]);
        if (kResets) ai = (resets >> i) & 1u ? 0.f : ai;
        a[i][r] = ai;
        h[r] = fmaf(ai, h[r], x * get4(bq, r));
        hb[i][r] = h[r];
      }
    }
  }
}

constexpr float kLn2 = 0.69314718055994531f;
static_assert(kStep == kFlowStep && kSubsPerChunk == kFlowSubs, "one flow per sub-chunk");

template <class T, bool kHasZ>
__global__ void __launch_bounds__(kMainThreads, kMainBlocksPerSm)
    bwd_main_kernel(Params p, BwdArgs o, FlowArgs f) {
  extern __shared__ __align__(16) unsigned char smem_raw[];
  MainSmem<T>& s = *reinterpret_cast<MainSmem<T>*>(smem_raw);
  const int tid = threadIdx.x, lane = tid % 32, warp = tid / 32;
  const int q = lane % kLanes;
  const int chl = warp * (32 / kLanes) + lane / kLanes;
  const int own = kLanes * q;  // the first of this lane's 4 states
  const int mine = 2 * q;      // the first of this lane's 2 steps of a sub-chunk (loads, staging, outputs)
  const bool want_bc = o.part_bc != nullptr;
  const int64_t items = p.batch * o.groups * f.window;
  const int srow = stage_row(chl);
  float* const st_dl = s.stage[kQdl] + srow;
  float* const st_x = s.stage[kQx] + srow;
  float* const st_dy = s.stage[kQdy] + srow;

  for (int64_t item = blockIdx.x; item < items; item += gridDim.x) {
    const int64_t k = f.k0 + item % f.window;
    const int64_t grp = (item / f.window) % o.groups;
    const int64_t b = item / (f.window * o.groups);
    const int64_t c = grp * kMainChannels + chl;
    const bool active = c < p.channels;
    const int64_t cc = active ? c : 0;
    const int64_t t0 = k * kChunk;
    // Steps are counted from t0 below: the chunk holds tl of them, the rows start at t0.
    const int tl = static_cast<int>(min(p.length - t0, static_cast<int64_t>(kChunk)));
    const int lim = active ? tl : 0;
    const int subs = (tl + kStep - 1) / kStep;
    float An[4];
#pragma unroll
    for (int r = 0; r < 4; ++r) {
      const int n = own + r;
      An[r] = active && n < p.state ? p.A[c * p.state + n] : 0.f;
    }
    const float bias = active && p.delta_bias ? p.delta_bias[c] : 0.f;
    const bool sp = p.softplus;
    const T* urow = static_cast<const T*>(p.u) + b * p.u_bs + cc * p.u_cs + t0;
    const T* drow = static_cast<const T*>(p.delta) + b * p.delta_bs + cc * p.delta_cs + t0;
    const T* zrow = kHasZ ? static_cast<const T*>(p.z) + b * p.z_bs + cc * p.z_cs + t0 : nullptr;
    const T* grow = static_cast<const T*>(o.dout) + b * o.g_bs + cc * o.g_cs + t0;
    // The lane's flows (4 of its channel's 16) and its channel's dt_after, sub-chunk 0; the
    // next sub-chunk's are flow_stride slots on.
    const int64_t flow0 = f.slot(p, b, k, 0, cc);
    const float4* const flow_src = f.flows + flow0 * 4 + q;
    const float* const flow_dt_src = f.dt_after + flow0;
    const int64_t flow_stride = p.channels;
    if (q < 3) {  // lanes 0..2 of a channel: its du, ddelta, dz rows
      void* const base = q == 0 ? o.du : q == 1 ? o.ddelta : (kHasZ ? o.dz : nullptr);
      const int64_t bs = q == 0 ? o.du_bs : q == 1 ? o.dd_bs : o.dz_bs;
      const int64_t cs = q == 0 ? o.du_cs : q == 1 ? o.dd_cs : o.dz_cs;
      s.out_row[q][chl] = active && base ? static_cast<T*>(base) + b * bs + c * cs + t0 : nullptr;
    }
    if (want_bc && tid < 2 * kMaxState) {
      const int kind = tid / kMaxState, n = tid % kMaxState;
      s.part_row[kind][n] = o.part_bc + (((kind * p.batch + b) * o.groups + grp) * kMaxState + n) * p.length + t0;
    }

    // The lane's 2 steps of sub-chunk j (at step ts) into ring slot `slot`: u, delta, dout,
    // z and the sub-chunk's flow.
    auto issue = [&](int slot, int ts, int j) {
      const int t = ts + mine;
      if (p.aligned && t + 2 <= lim) {  // both steps of every row exist: one fixed-size copy each
        copy_slice2(s.ring[kRu][slot][tid], urow + t);
        copy_slice2(s.ring[kRd][slot][tid], drow + t);
        copy_slice2(s.ring[kRg][slot][tid], grow + t);
        if constexpr (kHasZ) copy_slice2(s.ring[kRz][slot][tid], zrow + t);
      } else {
        issue_slice2(s.ring[kRu][slot][tid], urow, t, lim, p.aligned);
        issue_slice2(s.ring[kRd][slot][tid], drow, t, lim, p.aligned);
        issue_slice2(s.ring[kRg][slot][tid], grow, t, lim, p.aligned);
        if constexpr (kHasZ) issue_slice2(s.ring[kRz][slot][tid], zrow, t, lim, p.aligned);
      }
      cp_async16_cg(&s.flow[slot][tid], flow_src + j * flow_stride * 4);
      cp_async4(&s.flow_dt[slot][tid], flow_dt_src + j * flow_stride);
      cp_async_commit();
    };

    // Sub-chunks forwards: the state before each is carried from the one before (from the
    // saved chunk start for the first), the gradient after it is its flow plus the chunk's
    // carry decayed over the steps after it.
    MainStager<T> stager;
    MainStager<T>::set_row(p, s, b, t0);
    stager.load(p, s, b, t0, 0, tl);
    stager.store(s, 0);
    issue(0, 0, 0);
    s.hstart[0][tid] = active ? ld4(o.starts + chunk_index(p, b, k, c, own)) : make_float4(0.f, 0.f, 0.f, 0.f);
    s.carry[tid] = active ? ld4(o.carry + chunk_index(p, b, k, c, own)) : make_float4(0.f, 0.f, 0.f, 0.f);
    float dA[4] = {0.f, 0.f, 0.f, 0.f};  // sum of dh a h_{t-1} dt log2(e): times ln 2 when stored
    float dD_acc = 0.f, ddb_acc = 0.f;
    const float dskip = active && p.Dskip ? p.Dskip[c] : 0.f;
    __syncthreads();
    for (int j = 0; j < subs; ++j) {
      const int ts = j * kStep;
      const int buf = j & 1;
      const bool more = j + 1 < subs;
      if (more) stager.load(p, s, b, t0, ts + kStep, tl);
      cp_async_wait<0>();
      const Raw2<T> ru = read_slice2(s.ring[kRu][buf][tid]), rd = read_slice2(s.ring[kRd][buf][tid]);
      const Raw2<T> rg = read_slice2(s.ring[kRg][buf][tid]);
      Raw2<T> rz;
      if constexpr (kHasZ) rz = read_slice2(s.ring[kRz][buf][tid]);
      const float4 fl = s.flow[buf][tid];
      const float fdt = s.flow_dt[buf][tid];
      if (more) issue(buf ^ 1, ts + kStep, j + 1);
      float v[kStepQuantities][2];  // this lane's 2 steps; the last ones read again by its outputs
      {
#pragma unroll
        for (int i = 0; i < 2; ++i) {
          const bool valid = ts + mine + i < lim;
          float dt, dtg;
          dt_and_grad(rd.get(i) + bias, sp, dt, dtg);
          dt = valid ? dt : 0.f;
          const float uu = ru.get(i), gg = rg.get(i);
          float dy = gg, gz = 0.f;
          if constexpr (kHasZ) {
            const float zz = rz.get(i);
            const float sg = sigmoid(zz);
            dy = gg * (zz * sg);
            gz = gg * (sg * (1.f + zz * (1.f - sg)));
          }
          v[kQdl][i] = dt * kLog2e;
          v[kQx][i] = dt * uu;
          v[kQdy][i] = dy;
          v[kQu][i] = uu;
          v[kQdtg][i] = dtg;
          v[kQgz][i] = gz;
        }
#pragma unroll
        for (int m = 0; m < kStaged; ++m) st2(s.stage[m] + srow + mine, v[m][0], v[m][1]);
      }
      // The gradient into the sub-chunk's last state: its flow from the rest of the chunk,
      // plus the carry times the decays of the steps after it (2^(A dt_after log2(e)); none
      // when one of them starts a document).
      float g[4];
      {
        const float4 cr = s.carry[tid];
        const bool through = __float_as_uint(fdt) != kNoCarry;
        const float dla = through ? fdt * kLog2e : 0.f;
#pragma unroll
        for (int r = 0; r < 4; ++r) {
          const float decayed = through ? get4(cr, r) * ex2_approx(dla * An[r]) : 0.f;
          g[r] = active ? get4(fl, r) + decayed : 0.f;
        }
      }
      __syncwarp();
      const uint32_t resets = s.resets[buf];
      float a[kStep][4], hb[kStep][4];
      // The state before the sub-chunk is read from shared memory again at step 0 rather
      // than held in 4 registers through the reverse walk.
      const float* hs = reinterpret_cast<const float*>(&s.hstart[buf][tid]);
      if (resets == 0)
        recompute8<false>(hs, An, st_dl, st_x, s.tile, buf, q, resets, a, hb);
      else
        recompute8<true>(hs, An, st_dl, st_x, s.tile, buf, q, resets, a, hb);
      if (more) s.hstart[buf ^ 1][tid] = make_float4(hb[kStep - 1][0], hb[kStep - 1][1], hb[kStep - 1][2], hb[kStep - 1][3]);

      // Reverse recurrence; per step this lane's partial sums over its 4 states:
      // ps[.][0] = sum A dh a h_{t-1}, [1] = sum dh B, [2] = sum C h.
      float ps[kStep][3];
#pragma unroll
      for (int half = kStep / 4 - 1; half >= 0; --half) {
        const float4 dl4 = ld4(st_dl + 4 * half), dy4 = ld4(st_dy + 4 * half);
#pragma unroll
        for (int ii = 3; ii >= 0; --ii) {
          const int i = 4 * half + ii;
          const float dl = get4(dl4, ii), dy = get4(dy4, ii);
          float4 bq, cq;
          s.tile.bc(buf, i, q, bq, cq);
          float4 hs4;
          if (i == 0) hs4 = ld4(hs);
          float sq = 0.f, sb = 0.f, sc = 0.f, dh4[4];
#pragma unroll
          for (int r = 0; r < 4; ++r) {
            const float dh = fmaf(dy, get4(cq, r), g[r]);
            const float hp = i > 0 ? hb[i - 1][r] : get4(hs4, r);
            const float gn = dh * a[i][r];
            const float qv = gn * hp;
            dA[r] = fmaf(qv, dl, dA[r]);
            sq = fmaf(qv, An[r], sq);
            sb = fmaf(dh, get4(bq, r), sb);
            sc = fmaf(get4(cq, r), hb[i][r], sc);
            dh4[r] = dh;
            g[r] = gn;
          }
          ps[i][0] = sq;
          ps[i][1] = sb;
          ps[i][2] = sc;
          if (want_bc) {
            st4(s.red[0][i] + chl * kMaxState + own, make_float4(dh4[0], dh4[1], dh4[2], dh4[3]));
            st4(s.red[1][i] + chl * kMaxState + own, make_float4(hb[i][0], hb[i][1], hb[i][2], hb[i][3]));
          }
        }
      }
      if (j == 0 && k == 0 && o.dh0 && active) {  // g: the gradient into the sequence's initial state
#pragma unroll
        for (int r = 0; r < 4; ++r)
          if (own + r < p.state) o.dh0[(b * p.channels + c) * p.state + own + r] = g[r];
      }
      // Sums over the channel's 4 lanes, transposed: lane q ends with steps 2q and 2q + 1,
      // the two it staged, so that its outputs are one 2-step store per row.
      {
        const bool hi2 = q & 2, hi1 = q & 1;
        float w[4][3], tot[2][3];
#pragma unroll
        for (int kk = 0; kk < 4; ++kk) {
#pragma unroll
          for (int x = 0; x < 3; ++x) {
            const float keep = hi2 ? ps[kk + 4][x] : ps[kk][x];
            const float send = hi2 ? ps[kk][x] : ps[kk + 4][x];
            w[kk][x] = keep + __shfl_xor_sync(0xffffffffu, send, 2);
          }
        }
#pragma unroll
        for (int k2 = 0; k2 < 2; ++k2) {
#pragma unroll
          for (int x = 0; x < 3; ++x) {
            const float keep = hi1 ? w[k2 + 2][x] : w[k2][x];
            const float send = hi1 ? w[k2][x] : w[k2 + 2][x];
            tot[k2][x] = keep + __shfl_xor_sync(0xffffffffu, send, 1);
          }
        }
        if (ts + mine < lim) {
          const bool both = ts + mine + 1 < lim;
          const float2 dl2 = make_float2(v[kQdl][0], v[kQdl][1]);
          const float2 dy2 = make_float2(v[kQdy][0], v[kQdy][1]);
          const float2 u2 = make_float2(v[kQu][0], v[kQu][1]);
          const float2 dtg2 = make_float2(v[kQdtg][0], v[kQdtg][1]);
          const float2 gz2 = make_float2(v[kQgz][0], v[kQgz][1]);
          float du2[2], dd2[2], dz2[2];
#pragma unroll
          for (int k2 = 0; k2 < 2; ++k2) {
            const float dt = (k2 ? dl2.y : dl2.x) * kLn2, dy = k2 ? dy2.y : dy2.x, uu = k2 ? u2.y : u2.x;
            const float dtg = k2 ? dtg2.y : dtg2.x, gz = k2 ? gz2.y : gz2.x;
            const float R2 = tot[k2][0], R1 = tot[k2][1], yc = tot[k2][2];
            dd2[k2] = fmaf(uu, R1, R2) * dtg;
            du2[k2] = fmaf(dy, dskip, dt * R1);
            dz2[k2] = gz * fmaf(dskip, uu, yc);
          }
          dD_acc = fmaf(dy2.x, u2.x, dD_acc);
          ddb_acc += dd2[0];
          if (both) {
            dD_acc = fmaf(dy2.y, u2.y, dD_acc);
            ddb_acc += dd2[1];
          }
          const int t = ts + mine;
          T* const du_row = s.out_row[0][chl];
          T* const dd_row = s.out_row[1][chl];
          if (du_row) store2(du_row + t, both, du2[0], du2[1]);
          if (dd_row) store2(dd_row + t, both, dd2[0], dd2[1]);
          if constexpr (kHasZ) {
            T* const dz_row = s.out_row[2][chl];
            if (dz_row) store2(dz_row + t, both, dz2[0], dz2[1]);
          }
        }
      }
      __syncthreads();
      if (want_bc) {
        // Thread -> (dB or dC, 4 states, step, channel half): the sum over the half's 16
        // channels in channel order, then the two halves joined by one shuffle. All
        // offsets below are compile-time but the thread's two bases.
        const int step = tid & 7, chalf = (tid >> 3) & 1, quad = (tid >> 4) & 3, kind = tid >> 6;
        const float* rp = s.red[kind][step] + chalf * 16 * kMaxState + 4 * quad;
        const float* mp = s.stage[kind ? kQdy : kQx] + chalf * kStageHalf + step;
        float acc[4] = {0.f, 0.f, 0.f, 0.f};
#pragma unroll
        for (int jj = 0; jj < kMainChannels / 2; ++jj) {
          const float4 v = ld4(rp + jj * kMaxState);
          const float m = mp[jj * kStagePitch];
          acc[0] = fmaf(v.x, m, acc[0]);
          acc[1] = fmaf(v.y, m, acc[1]);
          acc[2] = fmaf(v.z, m, acc[2]);
          acc[3] = fmaf(v.w, m, acc[3]);
        }
        float tot[2];
#pragma unroll
        for (int kk = 0; kk < 2; ++kk) {
          const float keep = chalf ? acc[2 + kk] : acc[kk];
          const float send = chalf ? acc[kk] : acc[2 + kk];
          tot[kk] = keep + __shfl_xor_sync(0xffffffffu, send, 8);
        }
        if (ts + step < tl) {
          const int n = 4 * quad + 2 * chalf;
          if (n < p.state) s.part_row[kind][n][ts + step] = tot[0];
          if (n + 1 < p.state) s.part_row[kind][n + 1][ts + step] = tot[1];
        }
      }
      if (more) stager.store(s, buf ^ 1);
      __syncthreads();
    }

    if (active)
      st4(o.part_dA + chunk_index(p, b, k, c, own), make_float4(dA[0] * kLn2, dA[1] * kLn2, dA[2] * kLn2, dA[3] * kLn2));
    dD_acc += __shfl_xor_sync(0xffffffffu, dD_acc, 1);
    ddb_acc += __shfl_xor_sync(0xffffffffu, ddb_acc, 1);
    dD_acc += __shfl_xor_sync(0xffffffffu, dD_acc, 2);
    ddb_acc += __shfl_xor_sync(0xffffffffu, ddb_acc, 2);
    if (active && q == 0) {
      o.part_dD[(b * p.chunks + k) * p.channels + c] = dD_acc;
      o.part_ddb[(b * p.chunks + k) * p.channels + c] = ddb_acc;
    }
  }
}

}  // namespace gm::cuda::scan::lean
