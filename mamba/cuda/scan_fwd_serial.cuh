// Single-pass ("serial") selective-scan forward: each channel's whole sequence is walked
// once, so every exponential of the recurrence is computed exactly once (the chunked
// forwards run two passes: chunk summaries, then outputs from the chained chunk-start
// states). It needs batch x channels large enough to fill the GPU without splitting L;
// selective_scan.cu decides when (default_fwd_is_serial, with its measurement).
//
// Work split: a block is kSerialThreads threads of one batch row; G lanes (consecutive,
// one warp) per channel, lane g of a channel holds states g*S .. g*S+S-1 (S = 16 / G) in
// registers; a block covers kSerialThreads / G consecutive channels. The sequence is cut
// into tiles of kSerialTile = 32 steps. Per tile:
// - phase A: each lane turns 8-step pieces of its own channel's delta, u into
//   (dt = softplus(delta + bias), x = dt u) in shared memory, so that softplus runs once
//   per (channel, step), not once per lane; steps past L get dt = x = 0, which leaves the
//   states unchanged (2^0 = 1 exactly), so the last tile needs no separate path;
// - phase B: the recurrence over the tile's 32 steps; each lane sums C h over its states,
//   and every G steps a reduce-scatter over the G lanes (log2 G shuffle rounds, 3 shuffles
//   per 4 steps for G = 4, instead of 2 per step for a full butterfly) leaves lane g with
//   y of step g of the group, written into the x slot of that step (every lane of the
//   channel has read it: the values it shuffled depend on it);
// - phase C: each lane finishes its pieces, y = (y + D u) silu(z), with 16-byte stores.
// Feeding: each lane copies its own pieces of u, delta (, z) for the next tile into a
// two-stage ring in shared memory with cp.async (no barrier needed: it reads only what it
// copied); B and C of the next tile are copied as stored ([state][step]) by the whole
// block and transposed at the tile's end into [step][state]{B, C} pairs, bf16 kept as
// bf16, so that a lane reads its S pairs of a step with one 16-byte load (G = 4). One
// block barrier per tile.
// `saved` (the state before every kChunk-step chunk, as the chunked forwards write it)
// is written at chunk starts (the state before the chunk's first step, before any reset
// there), h_last after the last step. kOutput = false: states only (saved, h_last), for
// a backward without `saved`, bitwise the same states as the forward's.
#pragma once

#include "mamba/cuda/scan_common.cuh"
#include "mamba/cuda/scan_fwd_lean.cuh"
#include "mamba/cuda/scan_lean_common.cuh"

namespace gm::cuda::scan::serial {

constexpr int kSerialThreads = 128;
constexpr int kSerialTile = 32;                // steps per tile: one 32-bit reset mask
constexpr int kPiecesPerTile = kSerialTile / 8;  // 8-step pieces of a channel per tile
static_assert(kChunk % kSerialTile == 0, "chunk starts must fall on tile starts");
static_assert(kSerialThreads == 2 * kMaxState * kPiecesPerTile, "one B/C piece per thread");

using fast::Raw8;
using lean::RowSlot;

template <class T, int G>
struct SerialSmem {
  static constexpr int kChannels = kSerialThreads / G;
  static constexpr int kPieces = kPiecesPerTile / G;  // pieces per lane
  T bc[2][kSerialTile][kMaxState][2];                  // [buffer][step][state]{B, C}
  RowSlot<T> raw[kSerialThreads];                      // next tile's B, C pieces as stored
  RowSlot<T> rows[2][3][kPieces][kSerialThreads];      // [stage][u, delta, z][piece][thread]
  float2 act[kSerialTile][kChannels];                  // (dt, x), then (dt, y)
  uint32_t resets[2];                                  // bit t: step t of the tile starts a document
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
      b[4 * i + k] = __uint_as_float(w[k] << 16);
      c[4 * i + k] = __uint_as_float(w[k] & 0xffff0000u);
    }
  }
}
template <int S>
__device__ __forceinline__ void load_bc(const float* p, float (&b)[S], float (&c)[S]) {
#pragma unroll
  for (int i = 0; i < S / 2; ++i) {
    const float4 r = reinterpret_cast<const float4*>(p)[i];
    b[2 * i] = r.x;
    c[2 * i] = r.y;
    b[2 * i + 1] = r.z;
    c[2 * i + 1] = r.w;
  }
}

// Lane g (of G consecutive lanes) gets the sum over the G lanes of yp[g].
template <int G>
__device__ __forceinline__ float reduce_scatter(const float (&yp)[G], int g) {
  if constexpr (G == 1) {
    return yp[0];
  } else if constexpr (G == 2) {
    const float keep = g ? yp[1] : yp[0], send = g ? yp[0] : yp[1];
    return keep + __shfl_xor_sync(0xffffffffu, send, 1);
  } else {
    static_assert(G == 4, "G is 1, 2 or 4");
    const bool hi = g & 2;
    const float a0 = (hi ? yp[2] : yp[0]) + __shfl_xor_sync(0xffffffffu, hi ? yp[0] : yp[2], 2);
    const float a1 = (hi ? yp[3] : yp[1]) + __shfl_xor_sync(0xffffffffu, hi ? yp[1] : yp[3], 2);
    const bool lo = g & 1;
    return (lo ? a1 : a0) + __shfl_xor_sync(0xffffffffu, lo ? a0 : a1, 1);
  }
}

// Phase B over 8 steps (sub .. sub + 7 of the tile) for lane g of channel column `ch` of
// `act` (row stride kChannels). kCheck: some step starts a document (bit t of resets).
template <int G, int kChannels, bool kCheck, bool kOutput, class T>
__device__ __forceinline__ void recur8(float (&h)[kMaxState / G], const float (&A2)[kMaxState / G], float2* act,
                                       int ch, int g, const T (*bc)[kMaxState][2], int sub, uint32_t resets) {
  constexpr int S = kMaxState / G;
#pragma unroll
  for (int t0 = sub; t0 < sub + 8; t0 += G) {
    float yp[G];
#pragma unroll
    for (int k = 0; k < G; ++k) {
      const int t = t0 + k;
      const float2 a = act[t * kChannels + ch];  // (dt, x)
      float bv[S], cv[S];
      load_bc<S>(&bc[t][g * S][0], bv, cv);
      if (kCheck && ((resets >> t) & 1u)) {
#pragma unroll
        for (int s = 0; s < S; ++s) h[s] = 0.f;
      }
      // S / 4 independent partial sums of C h: no chain deeper than 4 FMAs, and no extra
      // adds for S = 4.
      constexpr int kParts = S / 4;
      float yq[kParts];
#pragma unroll
      for (int q = 0; q < kParts; ++q) yq[q] = 0.f;
#pragma unroll
      for (int s = 0; s < S; ++s) {
        h[s] = fmaf(ex2_approx(a.x * A2[s]), h[s], a.y * bv[s]);
        if constexpr (kOutput) yq[s / 4] = fmaf(cv[s], h[s], yq[s / 4]);
      }
      float y = yq[0];
#pragma unroll
      for (int q = 1; q < kParts; ++q) y += yq[q];
      yp[k] = y;
    }
    if constexpr (kOutput) act[(t0 + g) * kChannels + ch].y = reduce_scatter<G>(yp, g);
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
  constexpr int kChannels = Smem::kChannels;
  constexpr int kPieces = Smem::kPieces;
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

  // This thread's piece of the next tile's B / C: matrix tid / 64, state (tid / 4) % 16,
  // steps (tid % 4) * 8 .. + 7.
  const int bc_mat = tid / (kSerialThreads / 2), bc_n = (tid / kPiecesPerTile) % kMaxState,
            bc_piece = tid % kPiecesPerTile;
  // States past N read nothing (limit 0: zero-filled), from a row that exists.
  const int64_t bc_row_n = bc_n < p.state ? bc_n : 0;
  const T* bc_row = bc_mat == 0 ? static_cast<const T*>(p.Bm) + b * p.B_bs + bc_row_n * p.B_ns
                                : static_cast<const T*>(p.Cm) + b * p.C_bs + bc_row_n * p.C_ns;
  const int64_t bc_lim = bc_n < p.state ? L : 0;

  bool reset_flag = false;  // warp 0: lane's step of the next tile starts a document
  auto issue = [&](int stage, int64_t tt) {
#pragma unroll
    for (int r = 0; r < kRows; ++r)
#pragma unroll
      for (int j = 0; j < kPieces; ++j)
        lean::issue_slice(sm.rows[stage][r][j][tid], rows[r], tt + (g * kPieces + j) * 8, lim, p.aligned);
    lean::issue_slice(sm.raw[tid], bc_row, tt + bc_piece * 8, bc_lim, p.aligned);
    lean::cp_async_commit();
    if (tid < 32) {
      const int64_t t = tt + tid;
      reset_flag = p.starts && t < L && p.starts[b * p.starts_bs + t];
    }
  };
  // After the copies of `issue` landed: B / C into [step][state]{B, C}, resets into a mask.
  auto finish_tile = [&](int buf) {
    lean::cp_async_wait<0>();
    const Raw8<T> r = lean::read_slice(sm.raw[tid]);
#pragma unroll
    for (int j = 0; j < 8; ++j) sm.bc[buf][bc_piece * 8 + j][bc_n][bc_mat] = from_f<T>(r.get(j));  // exact
    if (tid < 32) {
      const uint32_t m = __ballot_sync(0xffffffffu, reset_flag);
      if (tid == 0) sm.resets[buf] = m;
    }
  };

  issue(0, 0);
  finish_tile(0);
  __syncthreads();
  int buf = 0;
  for (int64_t tt = 0; tt < L; tt += kSerialTile, buf ^= 1) {
    const bool more = tt + kSerialTile < L;
    if (more) issue(buf ^ 1, tt + kSerialTile);
    if (saved && active && tt % kChunk == 0) {
#pragma unroll
      for (int s = 0; s < S; ++s) saved[chunk_index(p, b, tt / kChunk, c, g * S + s)] = h[s];
    }
    // Phase A: (dt, x) of this lane's pieces; 0 past L.
#pragma unroll
    for (int j = 0; j < kPieces; ++j) {
      const int q = g * kPieces + j;
      const Raw8<T> ru = lean::read_slice(sm.rows[buf][0][j][tid]);
      const Raw8<T> rd = lean::read_slice(sm.rows[buf][1][j][tid]);
#pragma unroll
      for (int i = 0; i < 8; ++i) {
        const int t = q * 8 + i;
        const float dt = tt + t < lim ? lean::dt_of(rd.get(i) + bias, sp) : 0.f;
        sm.act[t][chb] = make_float2(dt, dt * ru.get(i));
      }
    }
    __syncwarp();
    // Phase B: the recurrence.
    const uint32_t resets = sm.resets[buf];
#pragma unroll
    for (int sub = 0; sub < kSerialTile; sub += 8) {
      if ((resets >> sub) & 0xffu)
        recur8<G, kChannels, true, kOutput>(h, A2, &sm.act[0][0], chb, g, sm.bc[buf], sub, resets);
      else
        recur8<G, kChannels, false, kOutput>(h, A2, &sm.act[0][0], chb, g, sm.bc[buf], sub, resets);
    }
    // Phase C: y = (y + D u) silu(z) of this lane's pieces.
    if constexpr (kOutput) {
      __syncwarp();
#pragma unroll
      for (int j = 0; j < kPieces; ++j) {
        const int q = g * kPieces + j;
        const Raw8<T> ru = lean::read_slice(sm.rows[buf][0][j][tid]);
        Raw8<T> rz;
        if constexpr (kHasZ) rz = lean::read_slice(sm.rows[buf][2][j][tid]);
        float ov[8];
#pragma unroll
        for (int i = 0; i < 8; ++i) {
          float y = fmaf(dskip, ru.get(i), sm.act[q * 8 + i][chb].y);
          if constexpr (kHasZ) {
            const float zz = rz.get(i);
            y *= zz * lean::sigmoid(zz);
          }
          ov[i] = y;
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

}  // namespace gm::cuda::scan::serial
