// Single-pass ("serial") selective-scan forward: each channel's whole sequence is walked
// once, so every exponential of the recurrence is computed exactly once (the chunked
// forwards run two passes: chunk summaries, then outputs from the chained chunk-start
// states). It needs batch x channels large enough to fill the GPU without splitting L;
// selective_scan.cu decides when and with how many lanes per channel
// (default_fwd_serial_lanes, with its measurement).
//
// Work split: a block is kSerialThreads threads of one batch row; G lanes (consecutive,
// one warp) per channel, lane g of a channel holds states g*S .. g*S+S-1 (S = 16 / G) in
// registers; a block covers kSerialThreads / G consecutive channels. More lanes per
// channel give more warps at the same rows: below ~8,000 rows one warp per SM partition
// is latency-bound, so the few-row shapes want G = 8 or 16. The sequence is cut into
// tiles of kTile = max(32, 8 G) steps (every lane owns at least one 8-step piece of its
// channel's rows). Per tile:
// - phase A: each lane turns its 8-step pieces of delta, u into (dt = softplus(delta +
//   bias), x = dt u) in shared memory, so that softplus runs once per (channel, step), not
//   once per lane; steps past L get dt = x = 0, which leaves the states unchanged (2^0 = 1
//   exactly), so the last tile needs no separate path;
// - phase B: the recurrence over the tile's steps, straight-line code for the whole tile
//   (document starts, when the tile has any, zero the step's decay without a branch); each
//   lane sums C h over its states, and every G steps a reduce-scatter over the G lanes
//   (G - 1 shuffles per G steps instead of 2 log2 G per step for a butterfly) leaves lane g
//   with y of step g of the group. Those y stay in registers until the tile's recurrence
//   is done: a store into the shared memory the steps read would keep the compiler from
//   issuing later steps' loads and exponentials early (the first version stored each
//   group's y at once and a warp alone on its partition took ~200 cycles per step);
// - then y goes into the x slot of each step, and phase C finishes each lane's pieces,
//   y = (y + D u) silu(z), with 16-byte stores.
// Feeding: each lane copies its own pieces of u, delta (, z) for the next tile into a
// two-stage ring in shared memory with cp.async (no barrier needed: it reads only what it
// copied); B and C of the next tile are copied as stored ([state][step]) by the whole
// block and transposed at the tile's end into {B, C} pairs by step and state (bf16 kept as
// bf16; SerialSmem::bc_index), so that a lane reads its S states' pairs of one step with
// 16-byte loads. (dt, x) is stored [channel][step]: phases A and C move two steps per
// 16-byte access. One block barrier per tile.
// That is fwd_serial_kernel, for G = 1, 2, 4. G = 8 and 16 run fwd_serial_wide_kernel
// (below): the same walk and phases with other shared-memory layouts (no B / C transpose,
// no bank conflicts) and plain copies for whole tiles.
// `saved` (the state before every kChunk-step chunk, as the chunked forwards write it)
// is written at chunk starts (the state before the chunk's first step, before any reset
// there), h_last after the last step. kOutput = false: states only (saved, h_last), for
// a backward without `saved`, bitwise the same states as the forward's, and (wide kernel)
// for the segmented forward's first pass, with each row's sum of dt and whether a document
// starts in it.
#pragma once

#include "mamba/cuda/scan_common.cuh"
#include "mamba/cuda/scan_fwd_lean.cuh"
#include "mamba/cuda/scan_lean_common.cuh"

namespace gm::cuda::scan::serial {

constexpr int kSerialThreads = 128;

// Steps per tile with G lanes per channel: one 8-step piece per lane at least, and whole
// 32-bit reset words.
constexpr int tile_steps(int G) { return 8 * G > 32 ? 8 * G : 32; }

using fast::Raw8;
using lean::RowSlot;
using lean::copy16_bounded;

template <class T, int G>
struct SerialSmem {
  static_assert(G <= 4, "G = 8, 16: WideSmem / fwd_serial_wide_kernel");
  static constexpr int kTile = tile_steps(G);
  static constexpr int kChannels = kSerialThreads / G;
  static constexpr int kPieces = kTile / 8 / G;  // 8-step pieces of its channel per lane
  // A channel's (dt, x) row is padded by 16 bytes, so that the channels of a warp, each
  // reading 16 bytes (two steps) at the same step, fall into different banks.
  static constexpr int kActStride = kTile + 2;
  static constexpr int kBcPieces = 2 * kMaxState * (kTile / 8) / kSerialThreads;  // per thread
  static constexpr int kWords = kTile / 32;
  static_assert(kChunk % kTile == 0, "chunk starts must fall on tile starts");
  static_assert(kBcPieces * kSerialThreads == 2 * kMaxState * (kTile / 8), "whole B / C pieces per thread");
  static_assert(kTile <= kSerialThreads, "one reset flag per thread");
  // B / C of a tile by buffer, at bc_index: [step][state]{B, C}, one step per load (16
  // bytes or more already; two steps per load raised G = 4's spills at its 64 registers,
  // for no gain measured).
  static constexpr int bc_index(int t, int n, int mat) { return (t * kMaxState + n) * 2 + mat; }
  T bc[2][kTile * kMaxState * 2];
  RowSlot<T> raw[kBcPieces][kSerialThreads];       // next tile's B, C pieces as stored
  RowSlot<T> rows[2][3][kPieces][kSerialThreads];  // [stage][u, delta, z][piece][thread]
  alignas(16) float2 act[kChannels][kActStride];   // [channel][step]: (dt, x), then (dt, y)
  uint32_t resets[2][kWords];                      // bit t of word w: step 32 w + t starts a document
};

// One step's B and C for S states from [state]{B, C} pairs.
template <int S>
__device__ __forceinline__ void load_bc(const bf16_t* p, float (&b)[S], float (&c)[S]) {
  static_assert(S % 4 == 0, "16-byte loads");
#pragma unroll
  for (int i = 0; i < S / 4; ++i) {
    const uint4 r = reinterpret_cast<const uint4*>(p)[i];
    const uint32_t w[4] = {r.x, r.y, r.z, r.w};
#pragma unroll
    for (int k = 0; k < 4; ++k) {
      b[4 * i + k] = bf16_lo(w[k]);
      c[4 * i + k] = bf16_hi(w[k]);
    }
  }
}
template <int S>
__device__ __forceinline__ void load_bc(const float* p, float (&b)[S], float (&c)[S]) {
  static_assert(S % 2 == 0, "16-byte loads");
#pragma unroll
  for (int i = 0; i < S / 2; ++i) {
    const float4 r = reinterpret_cast<const float4*>(p)[i];
    b[2 * i] = r.x;
    c[2 * i] = r.y;
    b[2 * i + 1] = r.z;
    c[2 * i + 1] = r.w;
  }
}

// One round of reduce_scatter: lanes with bit kHalf of g set keep the upper half of
// cur[0 .. 2 kHalf), the others the lower half, each adding its partner's.
template <int G, int kHalf>
__device__ __forceinline__ void reduce_scatter_round(float (&cur)[G], int g) {
  if constexpr (kHalf >= 1) {
    const bool hi = g & kHalf;
#pragma unroll
    for (int i = 0; i < kHalf; ++i) {
      const float keep = hi ? cur[i + kHalf] : cur[i];
      const float send = hi ? cur[i] : cur[i + kHalf];
      cur[i] = keep + __shfl_xor_sync(0xffffffffu, send, kHalf);
    }
    reduce_scatter_round<G, kHalf / 2>(cur, g);
  }
}

// Lane g (of G consecutive lanes) gets the sum over the G lanes of yp[g]: log2 G rounds,
// each halving the values a lane carries (G - 1 shuffles in all). The rounds are unrolled
// by recursion: a loop halving its counter was left rolled for G = 16, and its array
// went to local memory.
template <int G>
__device__ __forceinline__ float reduce_scatter(const float (&yp)[G], int g) {
  float cur[G];
#pragma unroll
  for (int i = 0; i < G; ++i) cur[i] = yp[i];
  reduce_scatter_round<G, G / 2>(cur, g);
  return cur[0];
}

// Phase B over a whole tile for lane g of channel `ch`: yl[k] = y of step k G + g. act_row:
// the channel's (dt, x) by step; bc: the tile's B / C at SerialSmem::bc_index. kCheck: some step of the tile starts a document (bit t % 32 of
// rw[t / 32]); its decay is then 0, the state before it dropped.
template <int G, int kTile, bool kCheck, bool kOutput, class T>
__device__ __forceinline__ void recur_tile(float (&h)[kMaxState / G], const float (&A2)[kMaxState / G],
                                           const float2* act_row, int g, const T* bc,
                                           const uint32_t (&rw)[kTile / 32], float (&yl)[kTile / G]) {
  constexpr int S = kMaxState / G;
  // S / 4 independent partial sums of C h: no chain deeper than 4 FMAs.
  constexpr int kParts = S >= 4 ? S / 4 : 1;
  constexpr int kLoad = 1;  // steps per load
  constexpr int kGroup = G;  // steps per group: one reduce-scatter
#pragma unroll
  for (int t0 = 0; t0 < kTile; t0 += kGroup) {
    float yp[kGroup];
#pragma unroll
    for (int k = 0; k < kGroup; k += kLoad) {
      const int t = t0 + k;
      float dtv[kLoad], xv[kLoad], bv[kLoad][S], cv[kLoad][S];
      const float2 a = act_row[t];
      dtv[0] = a.x;
      xv[0] = a.y;
      load_bc<S>(bc + (t * kMaxState + g * S) * 2, bv[0], cv[0]);
#pragma unroll
      for (int e = 0; e < kLoad; ++e) {
        const bool reset = kCheck && ((rw[(t + e) / 32] >> ((t + e) % 32)) & 1u);
        float yq[kParts];
#pragma unroll
        for (int q = 0; q < kParts; ++q) yq[q] = 0.f;
#pragma unroll
        for (int s = 0; s < S; ++s) {
          float decay = ex2_approx(dtv[e] * A2[s]);
          if constexpr (kCheck) decay = reset ? 0.f : decay;
          h[s] = fmaf(decay, h[s], xv[e] * bv[e][s]);
          if constexpr (kOutput) yq[s / 4] = fmaf(cv[e][s], h[s], yq[s / 4]);
        }
        float y = yq[0];
#pragma unroll
        for (int q = 1; q < kParts; ++q) y += yq[q];
        yp[k + e] = y;
      }
    }
    if constexpr (kOutput) {
#pragma unroll
      for (int r = 0; r < kGroup / G; ++r) {
        float part[G];
#pragma unroll
        for (int i = 0; i < G; ++i) part[i] = yp[r * G + i];
        yl[(t0 + r * G) / G] = reduce_scatter<G>(part, g);
      }
    }
  }
}

// The serial forward (see the top of this file). Grid: (ceil(D / (kSerialThreads / G)), B).
// Dynamic shared memory: sizeof(SerialSmem<T, G>). kMinBlocks: blocks per SM the register
// budget is sized for.
template <class T, int G, bool kOutput, bool kHasZ, int kMinBlocks>
__global__ void __launch_bounds__(kSerialThreads, kMinBlocks)
    fwd_serial_kernel(Params p, const float* __restrict__ h0, T* __restrict__ out, int64_t out_bs, int64_t out_cs,
                      float* __restrict__ h_last, float* __restrict__ saved) {
  using Smem = SerialSmem<T, G>;
  constexpr int S = kMaxState / G;
  constexpr int kTile = Smem::kTile;
  constexpr int kChannels = Smem::kChannels;
  constexpr int kPieces = Smem::kPieces;
  constexpr int kBcPieces = Smem::kBcPieces;
  constexpr int kWords = Smem::kWords;
  constexpr int kRowPieces = kTile / 8;            // 8-step pieces of one B / C row per tile
  constexpr int kRows = kOutput && kHasZ ? 3 : 2;  // u, delta (, z)
  extern __shared__ __align__(16) unsigned char smem_raw[];
  Smem& sm = *reinterpret_cast<Smem*>(smem_raw);

  const int tid = threadIdx.x;
  const int chb = tid / G, g = tid % G;
  const int64_t b = blockIdx.y;
  const int64_t c = static_cast<int64_t>(blockIdx.x) * kChannels + chb;
  const bool active = c < p.channels;
  const int64_t cc = active ? c : 0;
  const int64_t L = p.length;
  const int64_t lim = active ? L : 0;

  float A2[S], h[S];
#pragma unroll
  for (int s = 0; s < S; ++s) {
    const int n = g * S + s;
    A2[s] = active && n < p.state ? p.A[c * p.state + n] * kLog2e : 0.f;
    h[s] = active && h0 && n < p.state ? h0[(b * p.channels + c) * p.state + n] : 0.f;
  }
  const float bias = active && p.delta_bias ? p.delta_bias[c] : 0.f;
  const float dskip = active && p.Dskip ? p.Dskip[c] : 0.f;
  const bool sp = p.softplus;
  const T* rows[3] = {static_cast<const T*>(p.u) + b * p.u_bs + cc * p.u_cs,
                      static_cast<const T*>(p.delta) + b * p.delta_bs + cc * p.delta_cs,
                      kHasZ ? static_cast<const T*>(p.z) + b * p.z_bs + cc * p.z_cs : nullptr};
  T* orow = kOutput ? out + b * out_bs + cc * out_cs : nullptr;

  // This thread's pieces of the next tile's B / C: piece P = tid + k kSerialThreads of
  // [piece of the row][matrix][state], the state fastest, so that a warp's transposing
  // stores of one step fill 64 (bf16) or 128 (f32) consecutive bytes: no bank conflicts.
  auto bc_state = [&](int k) { return (tid + k * kSerialThreads) % kMaxState; };
  auto bc_mat = [&](int k) { return (tid + k * kSerialThreads) / kMaxState % 2; };
  auto bc_piece = [&](int k) { return (tid + k * kSerialThreads) / (2 * kMaxState); };
  static_assert(kBcPieces * kSerialThreads / (2 * kMaxState) == kRowPieces, "every piece of every row");

  bool reset_flag = false;  // threads < kTile: thread's step of the next tile starts a document
  auto issue = [&](int stage, int64_t tt) {
#pragma unroll
    for (int r = 0; r < kRows; ++r)
#pragma unroll
      for (int j = 0; j < kPieces; ++j)
        lean::issue_slice(sm.rows[stage][r][j][tid], rows[r], tt + (g * kPieces + j) * 8, lim, p.aligned);
#pragma unroll
    for (int k = 0; k < kBcPieces; ++k) {
      const int n = bc_state(k);
      // States past N read nothing (limit 0: zero-filled), from a row that exists.
      const int64_t row_n = n < p.state ? n : 0;
      const T* row = bc_mat(k) == 0 ? static_cast<const T*>(p.Bm) + b * p.B_bs + row_n * p.B_ns
                                    : static_cast<const T*>(p.Cm) + b * p.C_bs + row_n * p.C_ns;
      lean::issue_slice(sm.raw[k][tid], row, tt + bc_piece(k) * 8, n < p.state ? L : 0, p.aligned);
    }
    lean::cp_async_commit();
    if (tid < kTile) {
      const int64_t t = tt + tid;
      reset_flag = p.starts && t < L && p.starts[b * p.starts_bs + t];
    }
  };
  // After the copies of `issue` landed: B / C into [step][state]{B, C}, resets into masks.
  auto finish_tile = [&](int buf) {
    lean::cp_async_wait<0>();
#pragma unroll
    for (int k = 0; k < kBcPieces; ++k) {
      const Raw8<T> r = lean::read_slice(sm.raw[k][tid]);
      const int n = bc_state(k), mat = bc_mat(k), q = bc_piece(k);
#pragma unroll
      for (int j = 0; j < 8; ++j) sm.bc[buf][Smem::bc_index(q * 8 + j, n, mat)] = from_f<T>(r.get(j));  // exact
    }
    if (tid < kTile) {
      const uint32_t m = __ballot_sync(0xffffffffu, reset_flag);
      if (tid % 32 == 0) sm.resets[buf][tid / 32] = m;
    }
  };

  issue(0, 0);
  finish_tile(0);
  __syncthreads();
  int buf = 0;
  for (int64_t tt = 0; tt < L; tt += kTile, buf ^= 1) {
    const bool more = tt + kTile < L;
    if (more) issue(buf ^ 1, tt + kTile);
    if (saved && active && tt % kChunk == 0) {
#pragma unroll
      for (int s = 0; s < S; ++s) saved[chunk_index(p, b, tt / kChunk, c, g * S + s)] = h[s];
    }
    // Phase A: (dt, x) of this lane's pieces; 0 past L.
    float2* act_row = sm.act[chb];
#pragma unroll
    for (int j = 0; j < kPieces; ++j) {
      const int q = g * kPieces + j;
      const Raw8<T> ru = lean::read_slice(sm.rows[buf][0][j][tid]);
      const Raw8<T> rd = lean::read_slice(sm.rows[buf][1][j][tid]);
#pragma unroll
      for (int i = 0; i < 8; i += 2) {
        const int t = q * 8 + i;
        const float dt0 = tt + t < lim ? lean::dt_of(rd.get(i) + bias, sp) : 0.f;
        const float dt1 = tt + t + 1 < lim ? lean::dt_of(rd.get(i + 1) + bias, sp) : 0.f;
        *reinterpret_cast<float4*>(act_row + t) = make_float4(dt0, dt0 * ru.get(i), dt1, dt1 * ru.get(i + 1));
      }
    }
    __syncwarp();
    // Phase B: the recurrence, y of step k G + g into yl[k].
    uint32_t rw[kWords];
    uint32_t any_reset = 0;
#pragma unroll
    for (int w = 0; w < kWords; ++w) {
      rw[w] = sm.resets[buf][w];
      any_reset |= rw[w];
    }
    float yl[kTile / G];
    if (any_reset)
      recur_tile<G, kTile, true, kOutput>(h, A2, act_row, g, sm.bc[buf], rw, yl);
    else
      recur_tile<G, kTile, false, kOutput>(h, A2, act_row, g, sm.bc[buf], rw, yl);
    if constexpr (kOutput) {
      // Every lane of the channel has read its steps' x before y goes over them.
      __syncwarp();
#pragma unroll
      for (int k = 0; k < kTile / G; ++k) act_row[k * G + g].y = yl[k];
      __syncwarp();
      // Phase C: y = (y + D u) silu(z) of this lane's pieces.
#pragma unroll
      for (int j = 0; j < kPieces; ++j) {
        const int q = g * kPieces + j;
        const Raw8<T> ru = lean::read_slice(sm.rows[buf][0][j][tid]);
        Raw8<T> rz;
        if constexpr (kHasZ) rz = lean::read_slice(sm.rows[buf][2][j][tid]);
        float ov[8];
#pragma unroll
        for (int i = 0; i < 8; i += 2) {
          const float4 dy = *reinterpret_cast<const float4*>(act_row + q * 8 + i);  // (dt, y) of 2 steps
#pragma unroll
          for (int e = 0; e < 2; ++e) {
            float y = fmaf(dskip, ru.get(i + e), e ? dy.w : dy.y);
            if constexpr (kHasZ) {
              const float zz = rz.get(i + e);
              y *= zz * lean::sigmoid(zz);
            }
            ov[i + e] = y;
          }
        }
        store_row8(orow, tt + q * 8, lim, p.aligned, ov);
      }
    }
    if (more) finish_tile(buf ^ 1);
    __syncthreads();
  }
  if (h_last && active) {
#pragma unroll
    for (int s = 0; s < S; ++s)
      if (g * S + s < p.state) h_last[(b * p.channels + c) * p.state + g * S + s] = h[s];
  }
}

// ---- G = 8 and 16: the wide kernel -------------------------------------------------------
//
// Same walk and phases as fwd_serial_kernel, with the shared-memory traffic cut. Nsight
// Compute on the first G = 8 kernel (the layouts of fwd_serial_kernel with two steps per
// load; H200, 8 x 512 x 131,072, 2026-11-29): 7.48 ms, 2 warps per scheduler issuing every
// 3.9 cycles (stalls per issue: 0.96 short scoreboard, 0.96 fixed-latency wait), the L1 /
// shared pipe 56% busy, 35% of its wavefronts (319 M of 917 M) excess from bank
// conflicts, and only 64% of the 1,850 instructions per warp and tile in the recurrence.
// Where the conflicts and the rest came from, and what replaces them here:
// - B / C: copied as stored, 16 bytes per thread with the state fastest across a warp (32
//   rows per copy instruction: 32 L1 wavefronts instead of 4), then transposed into
//   {B, C} pairs (a load, 8 two-byte stores and 8 conversions per piece). Here the copies
//   land in place: rows [mat][s][g] ([B, C][state of the lane][lane]) of kTile + 16 bytes,
//   a warp's copies covering whole 128-byte runs of 2-4 rows, and phase B reads each of its
//   2 S rows 8 steps at a time (one 16-byte load per row and 8 steps, as many loads as the
//   pairs gave); the G lanes of a channel read G consecutive rows, 16 bytes each, whose
//   row stride of kTile + 16 bytes puts them in G different bank groups. No transpose.
// - (dt, x): each lane's four 16-byte stores of phase A went to one channel row at 64-byte
//   steps (two bank groups for 8 lanes: 16 wavefronts per store instead of 4). A row now
//   has a 16-byte gap after every 8 pairs (act_slot: pair p at p + p / 8), so that the 8 or
//   16 lanes of a channel store to all 8 bank groups; phase B reads fixed slots.
// - y: stored into the (dt, x) row by step and read back one word at a time in phase C (4
//   wavefronts per instruction each way). Here y has its own rows, with a 16-byte gap after
//   every 32 steps (y_word), so that a lane's 8 steps are two 16-byte loads that the lanes
//   of a channel spread over all bank groups, and a row length that puts the G words each
//   channel stores at once into banks of their own.
// Both layouts are gaps, not permutations: every address is a lane's base plus a constant
// (a first version with XOR permutations had ptxas keep 8 store addresses per lane across
// the loop, spilled).
// - copies: the bounds-checked 64-bit address arithmetic of every copy (about 230
//   instructions per warp and tile) runs only for a tile that reaches past L or rows that
//   are not 16-byte aligned; other tiles issue plain 16-byte copies.
// - kTileMul = 2 doubles the tile (G = 8: 128 steps, 2 pieces per lane in phases A and C),
//   halving the per-tile work (copies, barrier, reset masks); 67 KB of shared memory per
//   block in bf16, so for grids of at most 3 blocks per SM (selective_scan.cu).
// Measured (same GPU and shape, same run, against the first kernel): G = 8 7.57 -> 6.80 ms
// (128-step tiles), G = 16 7.90 -> 5.75 ms; Nsight Compute on G = 8: instructions -12.7%
// (3.87 G -> 3.38 G), shared wavefronts -37% (918 M -> 574 M, excess 319 M -> 25 M), the
// L1 / shared pipe 56% -> 42% busy, but still 3.9 cycles between a warp's issues: 11% of
// the stall samples now wait on reloads of values ptxas spilled at 128 registers (the B / C
// copies' shared offsets, the lane's step offsets of phase A's bounds tests, the y row's
// address), reloaded once per tile just before their use. Hence, second: phase A as
// straight-line code (wide_phase_a) and the per-tile offsets derived from an opaque thread
// index (opaque_index), 10-11% fewer instructions per warp and tile (ptxas); measured (same
// GPU, `bench_scan 10 N default`, old and new library in the same run): 8 x 512 x 131,072
// (G = 16) 5.76 -> 5.36 ms, 64 x 512 x 16,384 (G = 8) 4.66 -> 4.25, 8 x 1,536 x 32,768 (G = 8)
// 3.83 -> 3.37.
template <class T, int G, int kTile>
struct WideSmem {
  static_assert(G == 8 || G == 16, "the wide kernel has 1 or 2 states per lane");
  using Elem = T;
  static constexpr int kLanes = G;
  static constexpr int S = kMaxState / G;                             // states per lane
  static constexpr int kChannels = kSerialThreads / G;
  static constexpr int kPieces = kTile / 8 / G;                       // 8-step pieces per lane
  static constexpr int kPer = 16 / static_cast<int>(sizeof(T));       // elements per 16-byte copy
  static constexpr int kRowCopies = kTile / kPer;                     // copies per B / C row and tile
  static constexpr int kBcStride = kTile + kPer;                      // elements: row + 16 bytes
  static constexpr int kBcCopies = 2 * kMaxState * kRowCopies / kSerialThreads;  // per thread
  // (dt, x) row: kTile / 2 pair slots, a gap slot after every 8, and one more slot so
  // that the channels of a warp reading one pair hit different bank groups.
  static constexpr int kActSlots = kTile / 2 + kTile / 16 + 1;
  // y row: kTile words, a 4-word gap after every 32, then padding to G modulo 32 words.
  static constexpr int kYLen = kTile + kTile / 8;
  static constexpr int kYStride = kYLen + ((G - kYLen % 32) % 32 + 32) % 32;
  static constexpr int kWords = kTile / 32;
  static_assert(kPieces >= 1 && kTile % 64 == 0, "whole pieces per lane, whole permuted blocks");
  static_assert(kChunk % kTile == 0, "chunk starts must fall on tile starts");
  static_assert(kBcCopies * kSerialThreads == 2 * kMaxState * kRowCopies, "whole copies per thread");
  static_assert(kTile <= kSerialThreads, "one reset flag per thread");
  static constexpr int bc_row(int mat, int s, int g) { return (mat * S + s) * G + g; }
  // Slot (16 bytes) of the (dt, x) pair of steps 2p, 2p + 1 in a channel row.
  static constexpr int act_slot(int p) { return p + (p >> 3); }
  // Word of y of step t in a channel's y row.
  static constexpr int y_word(int t) { return t + 4 * (t >> 5); }
  alignas(16) T bc[2][2 * kMaxState * kBcStride];   // [buffer][row bc_row][step]
  RowSlot<T> rows[2][3][kPieces][kSerialThreads];    // [stage][u, delta, z][piece][thread]
  alignas(16) float4 act[kChannels][kActSlots];      // [channel][act_slot]: (dt, x) of 2 steps
  alignas(16) float y[kChannels][kYStride];          // [channel][y_word]
  uint32_t resets[2][kWords];                        // bit t of word w: step 32 w + t starts a document
};

constexpr int wide_tile(int G, int mul) { return 8 * G * mul; }

// 8 steps of one B or C row, as f32.
__device__ __forceinline__ void load_row8(const bf16_t* p, float (&v)[8]) {
  const uint4 r = *reinterpret_cast<const uint4*>(p);
  const uint32_t w[4] = {r.x, r.y, r.z, r.w};
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    v[2 * i] = bf16_lo(w[i]);
    v[2 * i + 1] = bf16_hi(w[i]);
  }
}
__device__ __forceinline__ void load_row8(const float* p, float (&v)[8]) {
  const float4 a = reinterpret_cast<const float4*>(p)[0];
  const float4 b = reinterpret_cast<const float4*>(p)[1];
  v[0] = a.x; v[1] = a.y; v[2] = a.z; v[3] = a.w;
  v[4] = b.x; v[5] = b.y; v[6] = b.z; v[7] = b.w;
}


// Phase B of the wide kernel over a whole tile for lane g: yl[r] = y of step r G + g. bcl:
// the tile's B / C rows at this lane's first row (bc_row(0, 0, g)).
template <class Smem, int G, int kTile, bool kCheck, bool kOutput, class T>
__device__ __forceinline__ void recur_wide(float (&h)[kMaxState / G], const float (&A2)[kMaxState / G],
                                           const float4* act_row, int g, const T* bcl,
                                           const uint32_t (&rw)[kTile / 32], float (&yl)[kTile / G]) {
  constexpr int S = kMaxState / G;
#pragma unroll
  for (int t0 = 0; t0 < kTile; t0 += G) {  // one reduce-scatter per G steps
    float yp[G];
#pragma unroll
    for (int u0 = 0; u0 < G; u0 += 8) {  // one load per B / C row and 8 steps
      const int tb = t0 + u0;
      float bv[S][8], cv[S][8];
#pragma unroll
      for (int s = 0; s < S; ++s) {
        load_row8(bcl + (Smem::bc_row(0, s, 0) * Smem::kBcStride + tb), bv[s]);
        load_row8(bcl + (Smem::bc_row(1, s, 0) * Smem::kBcStride + tb), cv[s]);
      }
#pragma unroll
      for (int k = 0; k < 4; ++k) {
        const float4 a = act_row[Smem::act_slot(tb / 2 + k)];
#pragma unroll
        for (int e = 0; e < 2; ++e) {
          const int t = tb + 2 * k + e;
          const float dt = e ? a.z : a.x, x = e ? a.w : a.y;
          const bool reset = kCheck && ((rw[t / 32] >> (t % 32)) & 1u);
          float y = 0.f;
#pragma unroll
          for (int s = 0; s < S; ++s) {
            float decay = ex2_approx(dt * A2[s]);
            if constexpr (kCheck) decay = reset ? 0.f : decay;
            h[s] = fmaf(decay, h[s], x * bv[s][2 * k + e]);
            if constexpr (kOutput) y = fmaf(cv[s][2 * k + e], h[s], y);
          }
          yp[u0 + 2 * k + e] = y;
        }
      }
    }
    if constexpr (kOutput) yl[t0 / G] = reduce_scatter<G>(yp, g);
  }
}

// The thread index as a value the compiler cannot treat as loop-invariant (an empty
// volatile asm "changes" it where it is read): what the tile loop derives from it (channel,
// lane, row addresses, shared-memory offsets) is recomputed where used, a few integer
// instructions per tile, instead of being held across the recurrence. Held, ptxas spilled
// those values at 128 registers and reloaded them from local memory right before their use
// once per tile: 11% of the stall samples of the G = 8 kernel (Nsight Compute, row 2).
// (The range is restated for the compiler: a signed index of unknown sign turned every
// division by G and by the copy counts into a shift with sign corrections.)
__device__ __forceinline__ int opaque_index(int v) {
  asm volatile("" : "+r"(v));
  __builtin_assume(v >= 0 && v < kSerialThreads);
  return v;
}

// Phase A of the wide kernel for thread t: (dt, x) of its kPieces 8-step pieces (steps
// 8 q .. 8 q + 7, pairs 4 q .. 4 q + 3) into its channel's (dt, x) row. Straight-line code:
// softplus on or off and the bounds are decided once per tile by the caller. Before, a
// bounds test per step on the 64-bit step index (and the softplus flag tested per step)
// cut the 8 steps into 8 branches (ptxas: ~270 instructions per lane and tile for phase A
// with its bounds tests, ~175 now), each waiting out its own two exponentials' latency. kBounded: steps of the tile from rem on get dt = x = 0 (the states stay as
// they are, 2^0 = 1 exactly); the same operations as fwd_serial_kernel otherwise, so the
// states stay bitwise those of the narrow kernel.
template <bool kSp, bool kBounded, class Smem>
__device__ __forceinline__ float wide_phase_a(Smem& sm, int buf, int t, float bias, int rem) {
  using T = typename Smem::Elem;
  constexpr int G = Smem::kLanes;
  constexpr int kPieces = Smem::kPieces;
  const int ch = t / G, g = t % G;
  float4* act_row = sm.act[ch];
  float dt_total = 0.f;  // this lane's dt of the tile (unused, and compiled out, by most callers)
#pragma unroll
  for (int j = 0; j < kPieces; ++j) {
    const int q = g * kPieces + j;
    float4* slot = act_row + (4 * q + (q >> 1));  // act_slot(4 q + i) = 4 q + q / 2 + i for i < 4
    const Raw8<T> ru = lean::read_slice(sm.rows[buf][0][j][t]);
    const Raw8<T> rd = lean::read_slice(sm.rows[buf][1][j][t]);
#pragma unroll
    for (int i = 0; i < 8; i += 2) {
      const int s = q * 8 + i;
      float dt0 = rd.get(i) + bias, dt1 = rd.get(i + 1) + bias;
      if constexpr (kSp) {
        dt0 = lean::softplus(dt0);
        dt1 = lean::softplus(dt1);
      }
      if constexpr (kBounded) {
        dt0 = s < rem ? dt0 : 0.f;
        dt1 = s + 1 < rem ? dt1 : 0.f;
      }
      slot[i / 2] = make_float4(dt0, dt0 * ru.get(i), dt1, dt1 * ru.get(i + 1));
      dt_total += dt0 + dt1;
    }
  }
  return dt_total;
}

// The serial forward for G = 8, 16 (see the top of this file and WideSmem). Grid:
// (ceil(D / (kSerialThreads / G)), B). Dynamic shared memory: sizeof(WideSmem<T, G,
// wide_tile(G, kTileMul)>). `saved` and h_last: bitwise those of fwd_serial_kernel (the same
// operations per state and step). States only (kOutput = false), two more outputs for the
// segmented forward's first pass (each may be null): dt_sum[b, c] = the row's sum of dt
// (its states' total decay is 2^(A log2(e) dt_sum)) and row_reset[b] = 1 when a document
// starts anywhere in row b (the state before the row is then dropped).
template <class T, int G, int kTileMul, bool kOutput, bool kHasZ, int kMinBlocks>
__global__ void __launch_bounds__(kSerialThreads, kMinBlocks)
    fwd_serial_wide_kernel(Params p, const float* __restrict__ h0, T* __restrict__ out, int64_t out_bs,
                           int64_t out_cs, float* __restrict__ h_last, float* __restrict__ saved,
                           float* __restrict__ dt_sum, uint8_t* __restrict__ row_reset) {
  constexpr int kTile = wide_tile(G, kTileMul);
  using Smem = WideSmem<T, G, kTile>;
  constexpr int S = Smem::S;
  constexpr int kChannels = Smem::kChannels;
  constexpr int kPieces = Smem::kPieces;
  constexpr int kPer = Smem::kPer;
  constexpr int kBcCopies = Smem::kBcCopies;
  constexpr int kWords = Smem::kWords;
  constexpr int kRows = kOutput && kHasZ ? 3 : 2;  // u, delta (, z)
  extern __shared__ __align__(16) unsigned char smem_raw[];
  Smem& sm = *reinterpret_cast<Smem*>(smem_raw);

  const int tid = threadIdx.x;
  const int64_t b = blockIdx.y;
  const int64_t c_first = static_cast<int64_t>(blockIdx.x) * kChannels;  // the block's first channel
  const RowSpan span = row_span(p, b);
  const int L = static_cast<int>(span.length);  // < 2^31 (launch_serial_wide)
  // Offset of the row's first step in a tensor of batch stride bs.
  auto row_at = [&](int64_t bs) { return span.first_step >= 0 ? span.first_step : b * bs; };

  float A2[S], h[S];
  float bias = 0.f, dskip = 0.f;
  {
    const int g = tid % G;
    const int64_t c = c_first + tid / G;
    const bool active = c < p.channels;
#pragma unroll
    for (int s = 0; s < S; ++s) {
      const int n = g * S + s;
      A2[s] = active && n < p.state ? p.A[c * p.state + n] * kLog2e : 0.f;
      h[s] = active && h0 && n < p.state ? h0[(b * p.channels + c) * p.state + n] : 0.f;
    }
    if (active && p.delta_bias) bias = p.delta_bias[c];
    if (active && p.Dskip) dskip = p.Dskip[c];
  }
  // The thread's global rows, held across the loop (64-bit pointers: recomputing them per
  // tile cost ~100 instructions per lane and tile); shared-memory offsets are recomputed.
  const T* rows[3];
  // B / C copy k: its piece's first element at step 0, as an offset from its matrix's row
  // (32 bits; launch_serial_wide checks the range), and the row's steps as 32-bit indices.
  // With a 64-bit pointer per copy and 64-bit step indices ptxas spilled 12 bytes in the
  // G = 8 / 64-step kernel (bf16 with z) and 20 in G = 16; now 4 and 24, and G = 8 runs 2-3%
  // faster (H200, bench_scan 10, alternated with the previous build: 64 x 512 x 16,384 4.13 ->
  // 4.02 ms, 8 x 1,536 x 32,768 3.23 -> 3.14, 1 x 512 x 2^20 6.75 -> 6.65; G = 16 at 8 x 512
  // x 131,072 5.23 -> 5.21).
  const T* bc_b;
  const T* bc_c;
  uint32_t bc_off[kBcCopies];
  T* orow;
  {
    const int64_t c = c_first + tid / G;
    const int64_t cc = c < p.channels ? c : 0;  // a channel past D copies nothing, from a row that exists
    rows[0] = static_cast<const T*>(p.u) + row_at(p.u_bs) + cc * p.u_cs;
    rows[1] = static_cast<const T*>(p.delta) + row_at(p.delta_bs) + cc * p.delta_cs;
    rows[2] = kHasZ ? static_cast<const T*>(p.z) + row_at(p.z_bs) + cc * p.z_cs : nullptr;
    orow = kOutput ? out + row_at(out_bs) + cc * out_cs : nullptr;
#pragma unroll
    for (int k = 0; k < kBcCopies; ++k) {
      const int P = tid + k * kSerialThreads;
      const int row = P / Smem::kRowCopies, piece = P % Smem::kRowCopies;
      const int mat = row / kMaxState, s = row % kMaxState / G, gg = row % G;
      const int64_t n = gg * S + s;
      const int64_t row_n = n < p.state ? n : 0;  // rows of states past N read nothing
      bc_off[k] = static_cast<uint32_t>((mat == 0 ? row_n * p.B_ns : row_n * p.C_ns) + piece * kPer);
    }
    bc_b = static_cast<const T*>(p.Bm) + row_at(p.B_bs);
    bc_c = static_cast<const T*>(p.Cm) + row_at(p.C_bs);
  }

  bool reset_flag = false;  // threads < kTile: thread's step of the next tile starts a document
  auto issue = [&](int stage, int tt) {
    const int t = opaque_index(tid);
    const int g = t % G;
    const bool active = c_first + t / G < p.channels;
    // B / C copy k of thread t: copy P = t + k kSerialThreads is 16-byte piece P %
    // kRowCopies of shared row P / kRowCopies (of state n; none past N).
    auto bc_dst = [&](int k) {
      const int P = t + k * kSerialThreads;
      return P / Smem::kRowCopies * Smem::kBcStride + P % Smem::kRowCopies * kPer;
    };
    auto bc_src = [&](int k) {
      const int P = t + k * kSerialThreads;
      return (P / Smem::kRowCopies / kMaxState == 0 ? bc_b : bc_c) + bc_off[k];
    };
    auto bc_ok = [&](int k) {
      const int row = (t + k * kSerialThreads) / Smem::kRowCopies;
      return row % G * S + row % kMaxState / G < p.state;
    };
    if (p.aligned && tt + kTile <= L) {  // every copy whole: no bounds
#pragma unroll
      for (int r = 0; r < kRows; ++r)
#pragma unroll
        for (int j = 0; j < kPieces; ++j) {
          const T* src = rows[r] + tt + (g * kPieces + j) * 8;
#pragma unroll
          for (int v = 0; v < static_cast<int>(sizeof(T)) / 2; ++v)
            lean::cp_async16(&sm.rows[stage][r][j][t].v[v], src + v * kPer, active ? 16 : 0);
        }
#pragma unroll
      for (int k = 0; k < kBcCopies; ++k)
        lean::cp_async16(&sm.bc[stage][bc_dst(k)], bc_src(k) + tt, bc_ok(k) ? 16 : 0);
    } else {
      const int64_t lim = active ? L : 0;
#pragma unroll
      for (int r = 0; r < kRows; ++r)
#pragma unroll
        for (int j = 0; j < kPieces; ++j)
          lean::issue_slice(sm.rows[stage][r][j][t], rows[r], tt + (g * kPieces + j) * 8, lim, p.aligned);
#pragma unroll
      for (int k = 0; k < kBcCopies; ++k) {
        const int piece = (t + k * kSerialThreads) % Smem::kRowCopies * kPer;
        copy16_bounded(&sm.bc[stage][bc_dst(k)], bc_src(k) - piece, tt + piece, bc_ok(k) ? L : 0, p.aligned);
      }
    }
    lean::cp_async_commit();
    if (t < kTile) {
      const int64_t s = tt + t;
      reset_flag = p.starts && s < L && p.starts[row_at(p.starts_bs) + s];
    }
  };
  // After the copies of `issue` landed (every thread's, once the block barrier follows):
  // the reset flags into masks.
  auto finish_tile = [&](int buf) {
    lean::cp_async_wait<0>();
    if (tid < kTile) {
      const uint32_t m = __ballot_sync(0xffffffffu, reset_flag);
      if (tid % 32 == 0) sm.resets[buf][tid / 32] = m;
    }
  };

  issue(0, 0);
  finish_tile(0);
  __syncthreads();
  const bool sp = p.softplus;
  double dt_acc = 0.0;        // !kOutput: this lane's sum of dt (in double: 10^4-10^6 terms)
  uint32_t seen_reset = 0;    // !kOutput: some step of the row starts a document
  int buf = 0;
  for (int tt = 0; tt < L; tt += kTile, buf ^= 1) {
    const bool more = tt + kTile < L;
    const bool whole = tt + kTile <= L;
    if (more) issue(buf ^ 1, tt + kTile);
    // The reset masks first: their load then waits behind nothing of phase A.
    uint32_t rw[kWords];
    uint32_t any_reset = 0;
#pragma unroll
    for (int w = 0; w < kWords; ++w) {
      rw[w] = sm.resets[buf][w];
      any_reset |= rw[w];
    }
    if constexpr (!kOutput) seen_reset |= any_reset;
    if (saved && tt % kChunk == 0) {
      const int t = opaque_index(tid);
      const int64_t c = c_first + t / G;
      if (c < p.channels) {
#pragma unroll
        for (int s = 0; s < S; ++s)
          saved[((span.first_chunk + tt / kChunk) * p.channels + c) * kMaxState + t % G * S + s] = h[s];
      }
    }
    // Phase A: (dt, x) of this lane's pieces; 0 past L.
    {
      const int t = opaque_index(tid);
      float dt_tile;
      if (whole) {
        if (sp)
          dt_tile = wide_phase_a<true, false>(sm, buf, t, bias, kTile);
        else
          dt_tile = wide_phase_a<false, false>(sm, buf, t, bias, kTile);
      } else {
        const int rem = c_first + t / G < p.channels ? L - tt : 0;  // < kTile here
        if (sp)
          dt_tile = wide_phase_a<true, true>(sm, buf, t, bias, rem);
        else
          dt_tile = wide_phase_a<false, true>(sm, buf, t, bias, rem);
      }
      if constexpr (!kOutput) dt_acc += dt_tile;
    }
    __syncwarp();
    // Phase B: the recurrence, y of step r G + g into yl[r].
    float yl[kTile / G];
    {
      const int t = opaque_index(tid);
      const int g = t % G;
      const float4* act_row = sm.act[t / G];
      const T* bcl = sm.bc[buf] + g * Smem::kBcStride;
      if (any_reset)
        recur_wide<Smem, G, kTile, true, kOutput>(h, A2, act_row, g, bcl, rw, yl);
      else
        recur_wide<Smem, G, kTile, false, kOutput>(h, A2, act_row, g, bcl, rw, yl);
    }
    if constexpr (kOutput) {
      const int t = opaque_index(tid);
      const int ch = t / G, g = t % G;
      const int64_t c = c_first + ch;
      const bool active = c < p.channels;
      float* yrow = sm.y[ch];
      // y_word(r G + g) = y_word(r G) + g: the G lanes store G consecutive words.
#pragma unroll
      for (int r = 0; r < kTile / G; ++r) yrow[Smem::y_word(r * G) + g] = yl[r];
      __syncwarp();
      // Phase C: y = (y + D u) silu(z) of this lane's pieces.
#pragma unroll
      for (int j = 0; j < kPieces; ++j) {
        const int q = g * kPieces + j;
        const float* yq = yrow + Smem::y_word(8 * q);  // steps 8 q .. 8 q + 7: consecutive words
        const float4 y0 = *reinterpret_cast<const float4*>(yq);
        const float4 y1 = *reinterpret_cast<const float4*>(yq + 4);
        const float yv[8] = {y0.x, y0.y, y0.z, y0.w, y1.x, y1.y, y1.z, y1.w};
        const Raw8<T> ru = lean::read_slice(sm.rows[buf][0][j][t]);
        Raw8<T> rz;
        if constexpr (kHasZ) rz = lean::read_slice(sm.rows[buf][2][j][t]);
        float ov[8];
#pragma unroll
        for (int i = 0; i < 8; ++i) {
          float y = fmaf(dskip, ru.get(i), yv[i]);
          if constexpr (kHasZ) {
            const float zz = rz.get(i);
            y *= zz * lean::sigmoid(zz);
          }
          ov[i] = y;
        }
        if (whole && p.aligned) {  // a whole 16-byte-aligned piece: one store, no bounds
          if (active) store8_vec(orow + tt + q * 8, ov);
        } else {
          store_row8(orow, tt + q * 8, active ? L : 0, p.aligned, ov);
        }
      }
    }
    if (more) finish_tile(buf ^ 1);
    __syncthreads();
  }
  const int g = tid % G;
  const int64_t c = c_first + tid / G;
  if (h_last && c < p.channels) {
#pragma unroll
    for (int s = 0; s < S; ++s)
      if (g * S + s < p.state) h_last[(b * p.channels + c) * p.state + g * S + s] = h[s];
  }
  if constexpr (!kOutput) {
    if (dt_sum) {  // the G lanes of a channel are consecutive lanes of one warp
#pragma unroll
      for (int off = G / 2; off >= 1; off /= 2) dt_acc += __shfl_xor_sync(0xffffffffu, dt_acc, off);
      if (g == 0 && c < p.channels) dt_sum[b * p.channels + c] = static_cast<float>(dt_acc);
    }
    if (row_reset && tid == 0 && blockIdx.x == 0) row_reset[b] = seen_reset != 0;
  }
}

}  // namespace gm::cuda::scan::serial
