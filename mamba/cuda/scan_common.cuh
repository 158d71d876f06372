// Shared pieces of the CUDA selective scan: the kernel parameter block, the chunking
// constants, row loaders and the discretisation math. Include only from scan .cu/.cuh.
//
// Layout (as op_list.inc): u, delta, z, out, dout, du, ddelta, dz: [B, D, L]; B, C,
// dB, dC: [B, N, L]; unit inner stride, free batch / row strides (elements).
// A [D, N], Dskip, delta_bias [D], h0, h_last, dh0 [B, D, N]: dense f32.
// Chunking: the sequence is cut into chunks of kScanChunk steps. Chunk-level summaries
// and states live in f32 buffers laid out [B, K, D, N] (K = number of chunks), so that
// for one chunk the (channel, state) pairs are contiguous. `saved` is exactly the
// state before each chunk in that layout.
#pragma once

#include <cstdint>

#include "mamba/cuda/device_util.cuh"
#include "mamba/cuda/scan_segments.h"

namespace gm::cuda::scan {

constexpr int kMaxState = 16;

struct Params {
  int64_t batch, channels, length, state;  // B, D, L, N
  int64_t chunks;                          // K = ceil(L / kChunk)
  const void* u;
  int64_t u_bs, u_cs;
  const void* delta;
  int64_t delta_bs, delta_cs;
  const void* z;  // may be null
  int64_t z_bs, z_cs;
  const void* Bm;
  int64_t B_bs, B_ns;
  const void* Cm;
  int64_t C_bs, C_ns;
  const float* A;           // [D, N]
  const float* Dskip;       // may be null
  const float* delta_bias;  // may be null
  const uint8_t* starts;    // may be null
  int64_t starts_bs;
  bool softplus;
  bool aligned;  // every row start is 16-byte aligned: 8-wide vector loads are allowed
  // The segmented forward's rows (wide single-pass kernel only; seg_chunks = 0 otherwise):
  // row b is the steps of one sequence of p.length from chunk b q + min(b, r) on (q =
  // seg_chunks, r = seg_extra), q + 1 chunks long for b < r and q otherwise, the last row
  // running on to p.length; every tensor is addressed as that one sequence (batch strides
  // unused), `saved` at the sequence's own chunk indices.
  int64_t seg_chunks = 0, seg_extra = 0;
};

// Where row b of the wide single-pass kernel lies: its first step in the (batch) row of
// every input and the output, its length and the index of its first chunk in `saved`.
struct RowSpan {
  int64_t first_step;  // -1: an ordinary batch row (first element at b times each batch stride)
  int64_t length;
  int64_t first_chunk;
};
__host__ __device__ inline RowSpan row_span(const Params& p, int64_t b) {
  if (p.seg_chunks == 0) return {-1, p.length, b * p.chunks};
  const Segments seg{p.batch, p.seg_chunks, p.seg_extra};
  const int64_t chunk0 = segment_first_chunk(seg, b);
  const int64_t first = chunk0 * kChunk;
  const int64_t len = b == p.batch - 1 ? p.length - first : (segment_first_chunk(seg, b + 1) - chunk0) * kChunk;
  return {first, len, chunk0};
}

// Index of (b, k, c, n) in a [B, K, D, N] chunk buffer.
__device__ __forceinline__ int64_t chunk_index(const Params& p, int64_t b, int64_t k, int64_t c, int64_t n) {
  return ((b * p.chunks + k) * p.channels + c) * kMaxState + n;
}

// dt from the raw delta (delta + bias), and d dt / d raw.
__device__ __forceinline__ float scan_dt(float raw, bool softplus) { return softplus ? softplus_f(raw) : raw; }
__device__ __forceinline__ float scan_dt_grad(float raw, bool softplus) {
  return softplus ? (raw > 20.f ? 1.f : sigmoid_f(raw)) : 1.f;
}

// ---- 8-wide row loads / stores (vector when aligned and in range) ----------------------
__device__ __forceinline__ void load8_vec(const float* p, float (&v)[8]) {
  const float4 a = reinterpret_cast<const float4*>(p)[0];
  const float4 b = reinterpret_cast<const float4*>(p)[1];
  v[0] = a.x; v[1] = a.y; v[2] = a.z; v[3] = a.w;
  v[4] = b.x; v[5] = b.y; v[6] = b.z; v[7] = b.w;
}
__device__ __forceinline__ void load8_vec(const bf16_t* p, float (&v)[8]) {
  const uint4 r = *reinterpret_cast<const uint4*>(p);
  const uint32_t w[4] = {r.x, r.y, r.z, r.w};
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    __nv_bfloat162 h2;
    memcpy(&h2, &w[i], 4);
    const float2 f = __bfloat1622float2(h2);
    v[2 * i] = f.x;
    v[2 * i + 1] = f.y;
  }
}
__device__ __forceinline__ void store8_vec(float* p, const float (&v)[8]) {
  reinterpret_cast<float4*>(p)[0] = make_float4(v[0], v[1], v[2], v[3]);
  reinterpret_cast<float4*>(p)[1] = make_float4(v[4], v[5], v[6], v[7]);
}
__device__ __forceinline__ void store8_vec(bf16_t* p, const float (&v)[8]) {
  uint32_t w[4];
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const __nv_bfloat162 h2 = __floats2bfloat162_rn(v[2 * i], v[2 * i + 1]);
    memcpy(&w[i], &h2, 4);
  }
  *reinterpret_cast<uint4*>(p) = make_uint4(w[0], w[1], w[2], w[3]);
}

// v[i] = row[t + i] for t + i < L, else 0.
template <class T>
__device__ __forceinline__ void load_row8(const T* row, int64_t t, int64_t L, bool aligned, float (&v)[8]) {
  if (aligned && t + 8 <= L) {
    load8_vec(row + t, v);
  } else {
#pragma unroll
    for (int i = 0; i < 8; ++i) v[i] = t + i < L ? to_f(row[t + i]) : 0.f;
  }
}
template <class T>
__device__ __forceinline__ void store_row8(T* row, int64_t t, int64_t L, bool aligned, const float (&v)[8]) {
  if (aligned && t + 8 <= L) {
    store8_vec(row + t, v);
  } else {
#pragma unroll
    for (int i = 0; i < 8; ++i)
      if (t + i < L) row[t + i] = from_f<T>(v[i]);
  }
}

}  // namespace gm::cuda::scan
