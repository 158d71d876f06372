// The fused LM head + cross-entropy of lm_head_loss.cu on the tensor cores, for bf16 h and
// weight with V <= 16 and d a multiple of 16 (up to 1,024): the model's case. Same inputs,
// outputs, loss weights and block partials of dweight as lm_head_ce_kernel.
//
// A block walks tiles of 128 rows, a warp 16 of them. Phase 1 (per warp): logits = h W^T
// by mma.m16n8k16 (two 8-wide vocabulary tiles, d / 16 steps; h's fragments straight from
// global memory, W's from shared memory), the row's softmax and loss across the 4 lanes that
// hold it, g = grad_scale * w * (softmax - onehot), and dh = g W by mma with g as the A
// fragment where the logits' accumulators left it (as bf16 g_hi + g_lo, so that dh keeps
// the f32 kernel's accuracy: g_hi + g_lo holds g to ~2^-17). Phase 2 (per block, as the f32
// kernel): dweight partials += g^T h over the tile's rows in order, one thread per column.
//
// Why: the warp-per-row kernel took 3.05 ms for 1,048,576 rows of d = 256 (H200, training
// profile at 8 x 131,072), against ~0.25 ms for its bytes: 16 unvectorised shared loads per
// 16 multiply-adds and 80 shuffles per row. This one: 0.89 ms (same profile, 64 registers).
#pragma once

#include "mamba/cuda/device_util.cuh"
#include "mamba/cuda/loss_weight.cuh"
#include "mamba/cuda/mma.cuh"

namespace gm::cuda::lm_head {

constexpr int kMmaThreads = 256;
constexpr int kMmaTileRows = 128;  // 16 per warp
constexpr int kMmaMaxD = 1024;
constexpr int kVocabTile = 16;

// Shared memory of the kernel for width d (bytes): W as [16][d + 8] and as W^T [d][24] (bf16;
// the pads make the fragment loads conflict-free), g of the tile [128][16] (f32).
inline size_t mma_smem_bytes(int d) {
  return sizeof(bf16_t) * (static_cast<size_t>(kVocabTile) * (d + 8) + static_cast<size_t>(d) * 24) +
         sizeof(float) * kMmaTileRows * kVocabTile;
}

// Phase 2 of both LM head kernels: this thread's dweight partials acc[c][v] += g[r][v] *
// h[m0 + r][j] for its columns j = threadIdx.x + c * kThreadsT, over the tile's rows in order
// (g of the tile in shared memory, [row][16]).
template <int kCols, int kThreadsT, class T>
__device__ __forceinline__ void add_tile_dweight(const T* __restrict__ h, const float* gs, int64_t m0, int rows, int d,
                                                 float (&acc)[kCols][kVocabTile]) {
#pragma unroll
  for (int c = 0; c < kCols; ++c) {
    const int j = threadIdx.x + c * kThreadsT;
    if (j < d) {
      for (int r = 0; r < rows; ++r) {
        const float hv = to_f(h[(m0 + r) * d + j]);
        const float4* gq = reinterpret_cast<const float4*>(gs + r * kVocabTile);
#pragma unroll
        for (int v4 = 0; v4 < kVocabTile / 4; ++v4) {
          const float4 gg = gq[v4];
          acc[c][4 * v4] = fmaf(gg.x, hv, acc[c][4 * v4]);
          acc[c][4 * v4 + 1] = fmaf(gg.y, hv, acc[c][4 * v4 + 1]);
          acc[c][4 * v4 + 2] = fmaf(gg.z, hv, acc[c][4 * v4 + 2]);
          acc[c][4 * v4 + 3] = fmaf(gg.w, hv, acc[c][4 * v4 + 3]);
        }
      }
    }
  }
}

// The block's dweight partials ([V][d] of partial's row blockIdx.x).
template <int kCols, int kThreadsT>
__device__ __forceinline__ void store_block_dweight(float* __restrict__ partial, const float (&acc)[kCols][kVocabTile],
                                                    int d, int V) {
  float* out = partial + static_cast<int64_t>(blockIdx.x) * V * d;
#pragma unroll
  for (int c = 0; c < kCols; ++c) {
    const int j = threadIdx.x + c * kThreadsT;
    if (j < d) {
#pragma unroll
      for (int v = 0; v < kVocabTile; ++v)
        if (v < V) out[static_cast<int64_t>(v) * d + j] = acc[c][v];
    }
  }
}

template <int kCols>
__global__ void __launch_bounds__(kMmaThreads)
    lm_head_ce_mma_kernel(const bf16_t* __restrict__ h, const bf16_t* __restrict__ weight,
                          const uint8_t* __restrict__ targets, const uint8_t* __restrict__ flags, float soft_weight,
                          float grad_scale, int64_t M, int d, int V, float* __restrict__ losses,
                          bf16_t* __restrict__ dh, float* __restrict__ partial) {
  extern __shared__ __align__(16) unsigned char smem_raw[];
  const int pw = d + 8, pt = 24;  // pitches (bf16) of W and W^T
  bf16_t* ws = reinterpret_cast<bf16_t*>(smem_raw);
  bf16_t* wt = ws + kVocabTile * pw;
  float* gs = reinterpret_cast<float*>(wt + static_cast<int64_t>(d) * pt);  // [kMmaTileRows][16]
  for (int i = threadIdx.x; i < kVocabTile * d; i += kMmaThreads) {
    const int v = i / d, j = i % d;
    const bf16_t x = v < V ? weight[static_cast<int64_t>(v) * d + j] : __float2bfloat16_rn(0.f);
    ws[v * pw + j] = x;
    wt[j * pt + v] = x;
  }
  __syncthreads();
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane / 4, q = lane % 4;
  float acc[kCols][kVocabTile];
#pragma unroll
  for (int c = 0; c < kCols; ++c)
#pragma unroll
    for (int v = 0; v < kVocabTile; ++v) acc[c][v] = 0.f;

  const int64_t tiles = (M + kMmaTileRows - 1) / kMmaTileRows;
  for (int64_t tile = blockIdx.x; tile < tiles; tile += gridDim.x) {
    const int64_t m0 = tile * kMmaTileRows;
    const int64_t r0 = m0 + 16 * warp + g, r1 = r0 + 8;  // this lane's two rows
    const bool in0 = r0 < M, in1 = r1 < M;
    const uint32_t* h0 = reinterpret_cast<const uint32_t*>(h + (in0 ? r0 : 0) * d);
    const uint32_t* h1 = reinterpret_cast<const uint32_t*>(h + (in1 ? r1 : 0) * d);
    // ---- logits: [16 rows] x [16 vocabulary], two 8-wide tiles ----
    float lg[2][4] = {{0.f, 0.f, 0.f, 0.f}, {0.f, 0.f, 0.f, 0.f}};
    for (int k0 = 0; k0 < d; k0 += 16) {
      const int w0 = k0 / 2 + q, w1 = w0 + 4;  // 32-bit words of columns k0 + 2q, k0 + 8 + 2q
      const uint32_t a[4] = {in0 ? h0[w0] : 0u, in1 ? h1[w0] : 0u, in0 ? h0[w1] : 0u, in1 ? h1[w1] : 0u};
#pragma unroll
      for (int nt = 0; nt < 2; ++nt) {
        const uint32_t* wr = reinterpret_cast<const uint32_t*>(ws + (8 * nt + g) * pw);
        mma_bf16(lg[nt], a, wr[w0], wr[w1]);
      }
    }
    // ---- softmax, loss and g for rows r0 (lg[.][0..1]) and r1 (lg[.][2..3]) ----
    float gv[2][4];  // g in the accumulators' layout
#pragma unroll
    for (int half = 0; half < 2; ++half) {
      const int64_t r = half ? r1 : r0;
      const bool in = half ? in1 : in0;
      const uint8_t target = in ? targets[r] : 0;
      const float w = in ? loss_weight(target, flags, r, soft_weight) : 0.f;
      float x[4];
      int vid[4];
#pragma unroll
      for (int i = 0; i < 4; ++i) {
        vid[i] = 8 * (i / 2) + 2 * q + i % 2;
        x[i] = lg[i / 2][2 * half + i % 2];
      }
      float mx = -INFINITY;
#pragma unroll
      for (int i = 0; i < 4; ++i)
        if (vid[i] < V) mx = fmaxf(mx, x[i]);
      mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
      mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
      float s = 0.f, xt = 0.f;
#pragma unroll
      for (int i = 0; i < 4; ++i) {
        if (vid[i] < V) s += expf(x[i] - mx);
        if (vid[i] == target) xt = x[i];
      }
      s += __shfl_xor_sync(0xffffffffu, s, 1);
      s += __shfl_xor_sync(0xffffffffu, s, 2);
      xt += __shfl_xor_sync(0xffffffffu, xt, 1);
      xt += __shfl_xor_sync(0xffffffffu, xt, 2);
      const float lse = mx + logf(s);
      const float scale = grad_scale * w;
#pragma unroll
      for (int i = 0; i < 4; ++i)
        gv[i / 2][2 * half + i % 2] =
            w != 0.f && vid[i] < V ? scale * (expf(x[i] - lse) - (vid[i] == target ? 1.f : 0.f)) : 0.f;
      if (in && q == 0) losses[r] = w != 0.f ? w * (lse - xt) : 0.f;
      // g of the tile for phase 2, [row][vocabulary].
      float* gr = gs + (16 * warp + g + 8 * half) * kVocabTile;
      gr[2 * q] = gv[0][2 * half];
      gr[2 * q + 1] = gv[0][2 * half + 1];
      gr[8 + 2 * q] = gv[1][2 * half];
      gr[9 + 2 * q] = gv[1][2 * half + 1];
    }
    // ---- dh = g W: g (16 x 16) as the A fragment, split into bf16 hi + lo ----
    uint32_t ahi[4], alo[4];
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      // a0 = (g, 2q..) = tile 0 rows g; a1 = tile 0 rows g + 8; a2 = tile 1 rows g; a3 = tile 1 rows g + 8.
      const float* v = &gv[i / 2][2 * (i % 2)];
      ahi[i] = pack_bf16(v[0], v[1]);
      alo[i] = pack_bf16(v[0] - bf16_lo(ahi[i]), v[1] - bf16_hi(ahi[i]));
    }
    uint32_t* d0 = reinterpret_cast<uint32_t*>(dh + (in0 ? r0 : 0) * d);
    uint32_t* d1 = reinterpret_cast<uint32_t*>(dh + (in1 ? r1 : 0) * d);
    for (int n0 = 0; n0 < d; n0 += 8) {
      const uint32_t* wc = reinterpret_cast<const uint32_t*>(wt + (n0 + g) * pt);
      float o[4] = {0.f, 0.f, 0.f, 0.f};
      mma_bf16(o, ahi, wc[q], wc[4 + q]);
      mma_bf16(o, alo, wc[q], wc[4 + q]);
      if (in0) d0[n0 / 2 + q] = pack_bf16(o[0], o[1]);
      if (in1) d1[n0 / 2 + q] = pack_bf16(o[2], o[3]);
    }
    __syncthreads();
    // ---- phase 2: dweight partials, one thread per column, the tile's rows in order ----
    add_tile_dweight<kCols, kMmaThreads>(h, gs, m0, static_cast<int>(min(static_cast<int64_t>(kMmaTileRows), M - m0)),
                                         d, acc);
    __syncthreads();  // gs is rewritten by the next tile
  }
  store_block_dweight<kCols, kMmaThreads>(partial, acc, d, V);
}

}  // namespace gm::cuda::lm_head
