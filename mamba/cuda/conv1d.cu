// Causal depthwise conv1d (+ SiLU) on CUDA, channel-major [B, D, L], forward and backward.
//   pre[b,c,t] = bias[c] + sum_k weight[c,k] * in(t-K+1+k | t),  out = silu(pre) or pre
// in(p | t) = x[b,c,p] for p >= 0, state_in[b,c,K-1+p] for p < 0 (0 without state_in),
// and 0 when a document starts in (p, t] (seq_start), so packed documents never mix.
// Only starts inside the window (t-K+1, t] can hide an input, so a thread needs the
// flags of its own window alone.
// Each thread owns kSteps consecutive positions; a block covers kThreads * kSteps
// positions of one (b, c) row. x, out, dout, dx: act (f32 or bf16) with unit inner
// stride and free batch/channel strides; weight f32 [D, K]; bias f32 [D]; state_in /
// state_out f32 [B, D, K-1] dense. The backward recomputes pre (with a K-1 halo) and
// sums dweight / dbias per block in a fixed tree, then over blocks with column_sum:
// deterministic, no atomics. dx is overwritten; dweight, dbias accumulated.
// With L a multiple of 8 and 16-byte aligned rows, vector kernels move each thread's 8
// positions as 16-byte loads and stores and skip the visibility tests where no document
// starts (the backward's only without starts and stream state); they add in the same order
// as the general kernels, so both give bitwise the same values.
#include <cstdint>
#include <initializer_list>

#include "mamba/cuda/check.cuh"
#include "mamba/cuda/context_cuda.h"
#include "mamba/cuda/device_util.cuh"
#include "mamba/cuda/reduce.cuh"
#include "mamba/ops.h"

namespace gm::cuda {

namespace {
constexpr int kThreads = 128;
constexpr int kSteps = 8;
constexpr int kTile = kThreads * kSteps;  // the general forward's positions per block
constexpr int kMaxWidth = 8;
// The vector kernels and the general backward: each warp walks kVecIter slices of 32 x 8
// consecutive positions (lane l owns positions 8 l .. 8 l + 7 of a slice), so a block covers
// kVecTile positions of one row. Neighbouring positions come from the neighbouring lane by
// shuffles, and the backward's parameter sums run once per kVecTile positions.
constexpr int kVecIter = 4;
constexpr int kSlice = 32 * kSteps;
constexpr int kVecTile = kThreads * kSteps * kVecIter;

// First position of lane `lane` of warp `warp` in slice i of block tile `tile`.
__device__ __forceinline__ int64_t vec_pos(int64_t tile, int warp, int i, int lane) {
  return tile * kVecTile + (warp * kVecIter + i) * kSlice + lane * kSteps;
}

struct ConvArgs {
  const void* x;
  int64_t x_bs, x_cs;  // batch / channel strides of x (elements)
  const float* weight;
  const float* bias;
  const uint8_t* starts;
  int64_t starts_bs;
  const float* state_in;
  int64_t B, D, L;
  bool silu;
};

// The inputs and start flags a thread needs, positions [base, base + kSpan).
template <class T, int K, int kSpan>
struct Window {
  float x[kSpan];
  bool start[kSpan];

  __device__ void load(const ConvArgs& a, int64_t b, int64_t c, int64_t base) {
    const T* xr = static_cast<const T*>(a.x) + b * a.x_bs + c * a.x_cs;
    const float* st = a.state_in ? a.state_in + (b * a.D + c) * (K - 1) : nullptr;
    const uint8_t* sr = a.starts ? a.starts + b * a.starts_bs : nullptr;
#pragma unroll
    for (int i = 0; i < kSpan; ++i) {
      const int64_t p = base + i;
      float v = 0.f;
      if (p >= 0 && p < a.L) v = to_f(xr[p]);
      else if (p < 0 && st && p >= -(K - 1)) v = st[K - 1 + p];
      x[i] = v;
      start[i] = sr && p >= 0 && p < a.L && sr[p] != 0;
    }
  }
  // Window index i of input p is visible from output window index j (p = i, t = j) when
  // no document starts in (i, j].
  __device__ bool visible(int i, int j) const {
    bool ok = true;
#pragma unroll
    for (int s = 0; s < kSpan; ++s)
      if (s > i && s <= j && start[s]) ok = false;
    return ok;
  }
  __device__ float pre(const float* w, float bias, int j) const {
    float acc = bias;
#pragma unroll
    for (int k = 0; k < K; ++k) {
      const int i = j - K + 1 + k;
      if (visible(i, j)) acc = fmaf(w[k], x[i], acc);
    }
    return acc;
  }
};

template <class T, int K>
__global__ void __launch_bounds__(kThreads) conv1d_fwd_kernel(ConvArgs a, T* __restrict__ out, int64_t out_bs,
                                                              int64_t out_cs) {
  constexpr int kSpan = kSteps + K - 1;
  const int64_t b = blockIdx.z, c = blockIdx.y;
  const int64_t t0 = static_cast<int64_t>(blockIdx.x) * kTile + threadIdx.x * kSteps;
  if (t0 >= a.L) return;
  float w[K];
#pragma unroll
  for (int k = 0; k < K; ++k) w[k] = a.weight[c * K + k];
  const float bias = a.bias ? a.bias[c] : 0.f;
  Window<T, K, kSpan> win;
  win.load(a, b, c, t0 - (K - 1));
  T* o = out + b * out_bs + c * out_cs;
#pragma unroll
  for (int s = 0; s < kSteps; ++s) {
    const int64_t t = t0 + s;
    if (t < a.L) {
      const float p = win.pre(w, bias, s + K - 1);
      o[t] = from_f<T>(a.silu ? silu_f(p) : p);
    }
  }
}

// state_out[b,c,j] = in(L-K+1+j | L-1); one thread per (b, c).
template <class T, int K>
__global__ void conv1d_state_kernel(ConvArgs a, float* __restrict__ state_out) {
  const int64_t bc = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (bc >= a.B * a.D) return;
  const int64_t b = bc / a.D, c = bc % a.D;
  Window<T, K, K> win;  // positions L-K .. L-1
  win.load(a, b, c, a.L - K);
#pragma unroll
  for (int j = 0; j < K - 1; ++j) state_out[bc * (K - 1) + j] = win.visible(j + 1, K - 1) ? win.x[j + 1] : 0.f;
}

// The block's sums of the K + 1 per-thread partials (dweight taps, then dbias) into this
// block's row of part_w / part_b: a warp tree, then the warps in order (fixed order, so the
// backward is deterministic).
template <int K>
__device__ __forceinline__ void block_weight_sums(const ConvArgs& a, const float (&dw)[K + 1], int64_t b, int64_t c,
                                                  float* __restrict__ part_w, float* __restrict__ part_b) {
  __shared__ float red[kThreads / 32][K + 1];
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
#pragma unroll
  for (int k = 0; k <= K; ++k) {
    float v = dw[k];
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    if (lane == 0) red[warp][k] = v;
  }
  __syncthreads();
  if (threadIdx.x <= K) {
    float s = 0.f;
#pragma unroll
    for (int wi = 0; wi < kThreads / 32; ++wi) s += red[wi][threadIdx.x];
    const int64_t row = b * gridDim.x + blockIdx.x;
    if (threadIdx.x < K)
      part_w[(row * a.D + c) * K + threadIdx.x] = s;
    else
      part_b[row * a.D + c] = s;
  }
}

// Thread positions as in the vector backward (vec_pos, the slices in reverse order), so that
// both sum the parameter gradients in the same order.
template <class T, int K>
__global__ void __launch_bounds__(kThreads) conv1d_bwd_kernel(ConvArgs a, const T* __restrict__ dout, int64_t g_bs,
                                                              int64_t g_cs, T* __restrict__ dx, int64_t dx_bs,
                                                              int64_t dx_cs, float* __restrict__ part_w,
                                                              float* __restrict__ part_b) {
  // Inputs p0-K+1 .. p0+kSteps+K-2; outputs (dpre) p0 .. p0+kSteps+K-2.
  constexpr int kSpan = kSteps + 2 * (K - 1);
  constexpr int kOut = kSteps + K - 1;
  const int64_t b = blockIdx.z, c = blockIdx.y;
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  float w[K];
#pragma unroll
  for (int k = 0; k < K; ++k) w[k] = a.weight[c * K + k];
  const float bias = a.bias ? a.bias[c] : 0.f;
  float dw[K + 1];  // dweight taps, then dbias
#pragma unroll
  for (int k = 0; k <= K; ++k) dw[k] = 0.f;
  const T* g = dout + b * g_bs + c * g_cs;
  T* dxr = dx + b * dx_bs + c * dx_cs;
  for (int i = kVecIter - 1; i >= 0; --i) {
    const int64_t p0 = vec_pos(blockIdx.x, warp, i, lane);
    if (p0 >= a.L) continue;
    Window<T, K, kSpan> win;
    win.load(a, b, c, p0 - (K - 1));
    float dpre[kOut];
#pragma unroll
    for (int s = 0; s < kOut; ++s) {
      const int64_t t = p0 + s;
      float d = 0.f;
      if (t < a.L) {
        d = to_f(g[t]);
        if (a.silu) d *= dsilu_f(win.pre(w, bias, s + K - 1));
      }
      dpre[s] = d;
    }
    // Parameter sums over the outputs this thread owns (p0 .. p0+kSteps-1).
#pragma unroll
    for (int s = 0; s < kSteps; ++s) {
      const int j = s + K - 1;
#pragma unroll
      for (int k = 0; k < K; ++k) {
        const int ii = j - K + 1 + k;
        if (win.visible(ii, j)) dw[k] = fmaf(dpre[s], win.x[ii], dw[k]);
      }
      dw[K] += dpre[s];
    }
#pragma unroll
    for (int s = 0; s < kSteps; ++s) {
      const int64_t p = p0 + s;
      if (p >= a.L) break;
      const int ii = s + K - 1;  // window index of input p
      float acc = 0.f;
#pragma unroll
      for (int k = 0; k < K; ++k) {
        const int so = s + K - 1 - k;  // output p + K-1-k, as an index into dpre
        if (p + K - 1 - k < a.L && win.visible(ii, so + K - 1)) acc = fmaf(w[k], dpre[so], acc);
      }
      dxr[p] = from_f<T>(acc);
    }
  }
  block_weight_sums<K>(a, dw, b, c, part_w, part_b);
}

// ---- vector kernels: no starts, no state_in, L % 8 == 0, 16-byte aligned rows ----
__device__ __forceinline__ void store8(bf16_t* p, const float (&v)[8]) {
  uint4 r;
  __nv_bfloat162* h = reinterpret_cast<__nv_bfloat162*>(&r);
#pragma unroll
  for (int i = 0; i < 4; ++i) h[i] = __floats2bfloat162_rn(v[2 * i], v[2 * i + 1]);
  *reinterpret_cast<uint4*>(p) = r;
}
__device__ __forceinline__ void store8(float* p, const float (&v)[8]) {
  reinterpret_cast<float4*>(p)[0] = make_float4(v[0], v[1], v[2], v[3]);
  reinterpret_cast<float4*>(p)[1] = make_float4(v[4], v[5], v[6], v[7]);
}

// 8 elements as loaded (16 bytes of bf16, 32 of f32), widened later: a load for the next
// slice can be in flight while the current one is computed.
template <class T>
struct Vec8 {
  static constexpr int kWords = static_cast<int>(sizeof(T)) * 8 / 16;
  uint4 v[kWords];
  __device__ __forceinline__ void load(const T* p) {
#pragma unroll
    for (int i = 0; i < kWords; ++i) v[i] = reinterpret_cast<const uint4*>(p)[i];
  }
  __device__ __forceinline__ void zero() {
#pragma unroll
    for (int i = 0; i < kWords; ++i) v[i] = make_uint4(0u, 0u, 0u, 0u);
  }
  __device__ __forceinline__ void get(float (&o)[8]) const {
    if constexpr (sizeof(T) == 2) {
      const uint32_t w[4] = {v[0].x, v[0].y, v[0].z, v[0].w};
#pragma unroll
      for (int i = 0; i < 4; ++i) {
        o[2 * i] = bf16_lo(w[i]);
        o[2 * i + 1] = bf16_hi(w[i]);
      }
    } else {
#pragma unroll
      for (int i = 0; i < 2; ++i) {
        o[4 * i] = __uint_as_float(v[i].x);
        o[4 * i + 1] = __uint_as_float(v[i].y);
        o[4 * i + 2] = __uint_as_float(v[i].z);
        o[4 * i + 3] = __uint_as_float(v[i].w);
      }
    }
  }
};

// Positions [base, base + n) of row r, 0 outside [0, L).
template <class T, int n>
__device__ __forceinline__ void load_edge(const T* r, int64_t base, int64_t L, float* v) {
#pragma unroll
  for (int i = 0; i < n; ++i) {
    const int64_t p = base + i;
    v[i] = p >= 0 && p < L ? to_f(r[p]) : 0.f;
  }
}

// Also for streams (state_in) and packed documents (seq_start): the halo before position 0
// comes from the state, and a thread whose window holds a document start takes the general
// kernel's path for its 8 positions (the same sums in the same order either way). Measured
// before (H200, training profile at 8 x 131,072): the general kernel took 40.3 ms for 16
// calls against 10.7 ms for this one, and streaming inference (score, embed) always ran it.
// kStarts: a.starts is set. A separate instantiation because with the general path's window
// in the same kernel it used 37 registers instead of 32 (-Xptxas -v), i.e. 12 instead of 16
// blocks of 128 per SM in this bandwidth-bound kernel, and conv1d_fwd took 5.89 ms in the
// d256 x 8 inference profile against 5.26 ms before (one synchronised profile each); split,
// the two use 30 and 32.
// The K - 1 inputs before a lane's 8 come from the lane before (a shuffle), and lane 0's from
// lane 31 of the warp's previous slice; only a warp's first lane of its first slice loads
// them. All four vectors are loaded before the first is computed. Measured (Nsight Compute,
// H200, 8 x 512 x 131,072 bf16, one call inside bench_model): one thread per 8 positions,
// the halo loaded by every thread, 1,024 positions a block: 0.657 ms (DRAM 67% of peak); four
// vectors a thread loaded one ahead: 0.660 ms (37 registers, one 16-byte load in flight);
// all four loaded first: 0.589 ms (DRAM 75%, 56 registers).
template <class T, int K, bool kStarts>
__global__ void __launch_bounds__(kThreads) conv1d_fwd_vec_kernel(ConvArgs a, T* __restrict__ out, int64_t out_bs,
                                                                  int64_t out_cs) {
  static_assert(kSteps == 8, "one 8-element vector per thread");
  constexpr int H = K - 1;             // inputs before a position that its output reads
  constexpr int kH = H > 0 ? H : 1;    // (array sizes)
  const int64_t b = blockIdx.z, c = blockIdx.y;
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  float w[K];
#pragma unroll
  for (int k = 0; k < K; ++k) w[k] = a.weight[c * K + k];
  const float bias = a.bias ? a.bias[c] : 0.f;
  const T* xr = static_cast<const T*>(a.x) + b * a.x_bs + c * a.x_cs;
  T* o_row = out + b * out_bs + c * out_cs;
  float carry[kH];  // the last H inputs of lane 31 of the previous slice
#pragma unroll
  for (int j = 0; j < kH; ++j) carry[j] = 0.f;
  // Every slice's inputs are loaded first: four 16-byte loads in flight per thread.
  Vec8<T> xs[kVecIter];
#pragma unroll
  for (int i = 0; i < kVecIter; ++i) {
    const int64_t t0 = vec_pos(blockIdx.x, warp, i, lane);
    if (t0 < a.L) xs[i].load(xr + t0); else xs[i].zero();
  }
  float halo[kH];  // lane 0: the H inputs before the warp's first slice
  if (lane == 0) {
    const int64_t t0 = vec_pos(blockIdx.x, warp, 0, lane);
    if (t0 == 0 && a.state_in) {
      const float* st = a.state_in + (b * a.D + c) * (K - 1);
#pragma unroll
      for (int j = 0; j < H; ++j) halo[j] = st[j];
    } else {
      load_edge<T, H>(xr, t0 - H, a.L, halo);
    }
  }
#pragma unroll
  for (int i = 0; i < kVecIter; ++i) {
    const int64_t t0 = vec_pos(blockIdx.x, warp, i, lane);
    if (t0 - lane * kSteps >= a.L) break;  // the whole slice is past L (the same for the warp)
    const bool in = t0 < a.L;
    float own[kSteps];
    xs[i].get(own);
    float win[kSteps + H];  // positions t0-K+1 .. t0+7
#pragma unroll
    for (int j = 0; j < H; ++j) win[j] = __shfl_up_sync(0xffffffffu, own[kSteps - H + j], 1);
    if (lane == 0) {
#pragma unroll
      for (int j = 0; j < H; ++j) win[j] = i > 0 ? carry[j] : halo[j];
    }
#pragma unroll
    for (int j = 0; j < H; ++j) carry[j] = __shfl_sync(0xffffffffu, own[kSteps - H + j], 31);
    if (!in) continue;
#pragma unroll
    for (int s = 0; s < kSteps; ++s) win[H + s] = own[s];
    if constexpr (kStarts) {
      // Starts at positions (t0 - K + 1, t0 + 7] can hide an input of this thread's outputs.
      const uint8_t* sr = a.starts + b * a.starts_bs;
      bool any = false;
#pragma unroll
      for (int ii = 0; ii < kSteps + K - 1; ++ii) {
        const int64_t p = t0 - (K - 1) + 1 + ii;
        if (p >= 0 && p < t0 + kSteps && sr[p]) any = true;
      }
      if (any) {
        constexpr int kSpan = kSteps + K - 1;
        Window<T, K, kSpan> gw;
        gw.load(a, b, c, t0 - (K - 1));
        float o[kSteps];
#pragma unroll
        for (int s = 0; s < kSteps; ++s) {
          const float p = gw.pre(w, bias, s + K - 1);
          o[s] = a.silu ? silu_f(p) : p;
        }
        store8(o_row + t0, o);
        continue;
      }
    }
    float o[kSteps];
#pragma unroll
    for (int s = 0; s < kSteps; ++s) {
      float acc = bias;
#pragma unroll
      for (int k = 0; k < K; ++k) acc = fmaf(w[k], win[s + k], acc);
      o[s] = a.silu ? silu_f(acc) : acc;
    }
    store8(o_row + t0, o);
  }
}

// The backward walks its slices from the last to the first, so that the K - 1 outputs after a
// lane's 8 (whose gradients reach its inputs) come from the next lane, and lane 31's from lane
// 0 of the slice done before; only lane 31 of a warp's last slice computes them itself. The
// inputs before come from the lane before, lane 0 loading its own. Each output's pre-activation
// and SiLU derivative is computed once (the first version recomputed the K - 1 after its 8 in
// every thread). All four slices' inputs and gradients are loaded first, and lane 0's inputs
// before a slice come from lane 31 of the slice before. Measured (Nsight Compute, H200, 8 x
// 512 x 131,072 bf16): the first version (one thread per 8 positions, a block sum per 1,024
// positions) 1.56 ms (DRAM 43% of peak, 48 registers); four slices loaded one ahead 1.34 ms
// (50%); all loaded first 1.29 ms (52%, 72 registers).
template <class T, int K>
__global__ void __launch_bounds__(kThreads) conv1d_bwd_vec_kernel(ConvArgs a, const T* __restrict__ dout,
                                                                  int64_t g_bs, int64_t g_cs, T* __restrict__ dx,
                                                                  int64_t dx_bs, int64_t dx_cs,
                                                                  float* __restrict__ part_w,
                                                                  float* __restrict__ part_b) {
  constexpr int H = K - 1;
  constexpr int kH = H > 0 ? H : 1;
  const int64_t b = blockIdx.z, c = blockIdx.y;
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  float w[K];
#pragma unroll
  for (int k = 0; k < K; ++k) w[k] = a.weight[c * K + k];
  const float bias = a.bias ? a.bias[c] : 0.f;
  float dw[K + 1];  // dweight taps, then dbias
#pragma unroll
  for (int k = 0; k <= K; ++k) dw[k] = 0.f;
  const T* xr = static_cast<const T*>(a.x) + b * a.x_bs + c * a.x_cs;
  const T* g = dout + b * g_bs + c * g_cs;
  T* dxr = dx + b * dx_bs + c * dx_cs;
  // d pre of the H positions after this lane's 8 when it is lane 31: first those after the
  // warp's last slice, then lane 0's first H of the slice done before.
  float next[kH];
#pragma unroll
  for (int j = 0; j < kH; ++j) next[j] = 0.f;
  if (lane == 31) {
    const int64_t pe = vec_pos(blockIdx.x, warp, kVecIter - 1, lane) + kSteps;
    float xw[2 * kH];  // positions pe - H .. pe + H - 1
    load_edge<T, 2 * H>(xr, pe - H, a.L, xw);
#pragma unroll
    for (int j = 0; j < H; ++j) {
      const int64_t p = pe + j;
      float d = 0.f;
      if (p < a.L) {
        d = to_f(g[p]);
        if (a.silu) {
          float acc = bias;
#pragma unroll
          for (int k = 0; k < K; ++k) acc = fmaf(w[k], xw[j + k], acc);
          d *= dsilu_f(acc);
        }
      }
      next[j] = d;
    }
  }
  // Every slice's inputs and output gradients are loaded first: eight 16-byte loads in
  // flight per thread.
  Vec8<T> xs[kVecIter], gs[kVecIter];
#pragma unroll
  for (int i = 0; i < kVecIter; ++i) {
    const int64_t p0 = vec_pos(blockIdx.x, warp, i, lane);
    if (p0 < a.L) {
      xs[i].load(xr + p0);
      gs[i].load(g + p0);
    } else {
      xs[i].zero();
      gs[i].zero();
    }
  }
  float halo[kH];  // lane 0: the H inputs before the warp's first slice
  if (lane == 0) load_edge<T, H>(xr, vec_pos(blockIdx.x, warp, 0, lane) - H, a.L, halo);
#pragma unroll
  for (int i = kVecIter - 1; i >= 0; --i) {
    const int64_t p0 = vec_pos(blockIdx.x, warp, i, lane);
    const bool in = p0 < a.L;
    float xo[kSteps], go[kSteps];
    xs[i].get(xo);
    gs[i].get(go);
    if (p0 - lane * kSteps >= a.L) continue;  // the whole slice is past L (the same for the warp)
    float win[H + kSteps];  // inputs p0 - K + 1 .. p0 + 7
#pragma unroll
    for (int j = 0; j < H; ++j) win[j] = __shfl_up_sync(0xffffffffu, xo[kSteps - H + j], 1);
    // Lane 0's: lane 31's last H of the slice before (loaded above), or the halo.
    float before[kH];
    if (i > 0) {
      float prev[kSteps];
      xs[i - 1].get(prev);
#pragma unroll
      for (int j = 0; j < H; ++j) before[j] = __shfl_sync(0xffffffffu, prev[kSteps - H + j], 31);
    } else {
#pragma unroll
      for (int j = 0; j < H; ++j) before[j] = halo[j];
    }
    if (lane == 0) {
#pragma unroll
      for (int j = 0; j < H; ++j) win[j] = before[j];
    }
#pragma unroll
    for (int s = 0; s < kSteps; ++s) win[H + s] = xo[s];
    float dpre[kSteps + H];  // d pre of outputs p0 .. p0 + 7 + H
#pragma unroll
    for (int s = 0; s < kSteps; ++s) {
      float d = go[s];
      if (a.silu) {
        float acc = bias;
#pragma unroll
        for (int k = 0; k < K; ++k) acc = fmaf(w[k], win[s + k], acc);
        d *= dsilu_f(acc);
      }
      dpre[s] = in ? d : 0.f;
    }
#pragma unroll
    for (int j = 0; j < H; ++j) {
      const float v = __shfl_down_sync(0xffffffffu, dpre[j], 1);
      dpre[kSteps + j] = lane == 31 ? next[j] : v;
    }
#pragma unroll
    for (int j = 0; j < H; ++j) next[j] = __shfl_sync(0xffffffffu, dpre[j], 0);
    if (!in) continue;
#pragma unroll
    for (int s = 0; s < kSteps; ++s) {
#pragma unroll
      for (int k = 0; k < K; ++k) dw[k] = fmaf(dpre[s], win[s + k], dw[k]);
      dw[K] += dpre[s];
    }
    float o[kSteps];
#pragma unroll
    for (int s = 0; s < kSteps; ++s) {
      float acc = 0.f;
#pragma unroll
      for (int k = 0; k < K; ++k)
        if (p0 + s + K - 1 - k < a.L) acc = fmaf(w[k], dpre[s + K - 1 - k], acc);
      o[s] = acc;
    }
    store8(dxr + p0, o);
  }
  block_weight_sums<K>(a, dw, b, c, part_w, part_b);
}

// The vector kernels apply: whole vectors, aligned rows, and for the backward no starts or
// incoming state (the forward's vector kernel handles both).
bool vector_ok(const ConvArgs& a, std::initializer_list<const Tensor*> rows, bool forward) {
  if (a.L % kSteps != 0 || (!forward && (a.starts || a.state_in))) return false;
  for (const Tensor* t : rows) {
    const int64_t es = static_cast<int64_t>(dtype_size(t->dtype()));
    if (reinterpret_cast<uintptr_t>(t->raw()) % 16 != 0 || (t->stride(0) * es) % 16 != 0 ||
        (t->stride(1) * es) % 16 != 0)
      return false;
  }
  return true;
}

ConvArgs make_args(const char* op, const Tensor& x, const Tensor& weight, const Tensor* bias, const Tensor* seq_start,
                   const Tensor* state_in, bool silu) {
  require_cuda(x, op, "x");
  require(is_act(x.dtype()) && x.ndim() == 3 && x.stride(2) == 1, op,
          "x must be f32 or bf16 [B, D, L] with unit inner stride, got " + x.describe());
  const int64_t B = x.size(0), D = x.size(1), L = x.size(2);
  require_cuda(weight, op, "weight");
  require(weight.dtype() == DType::F32 && weight.ndim() == 2 && weight.size(0) == D && weight.is_contiguous(), op,
          "weight must be dense f32 [D, K], got " + weight.describe());
  const int64_t K = weight.size(1);
  require(K >= 1 && K <= kMaxWidth, op, "d_conv must be 1..8 on CUDA");
  if (bias) {
    require_cuda(*bias, op, "bias");
    require(bias->dtype() == DType::F32 && bias->numel() == D && bias->is_contiguous(), op, "bias must be f32 [D]");
  }
  if (seq_start) {
    require_cuda(*seq_start, op, "seq_start");
    require(seq_start->dtype() == DType::U8 && seq_start->ndim() == 2 && seq_start->size(0) == B &&
                seq_start->size(1) == L && seq_start->stride(1) == 1,
            op, "seq_start must be u8 [B, L], got " + seq_start->describe());
  }
  if (state_in) {
    require_cuda(*state_in, op, "state_in");
    require(state_in->dtype() == DType::F32 && state_in->numel() == B * D * (K - 1) && state_in->is_contiguous(), op,
            "state_in must be dense f32 [B, D, K-1], got " + state_in->describe());
  }
  ConvArgs a{};
  a.x = x.raw();
  a.x_bs = x.stride(0);
  a.x_cs = x.stride(1);
  a.weight = weight.data<float>();
  a.bias = bias ? bias->data<float>() : nullptr;
  a.starts = seq_start ? seq_start->data<uint8_t>() : nullptr;
  a.starts_bs = seq_start ? seq_start->stride(0) : 0;
  a.state_in = state_in ? state_in->data<float>() : nullptr;
  a.B = B;
  a.D = D;
  a.L = L;
  a.silu = silu;
  return a;
}

void require_like_x(const Tensor& t, const Tensor& x, const char* op, const char* name) {
  require_cuda(t, op, name);
  require(t.dtype() == x.dtype() && t.shape() == x.shape() && t.stride(2) == 1, op,
          std::string(name) + " must match x (" + x.describe() + "), got " + t.describe());
}

template <class T, int K>
void fwd_impl(CudaContext& c, const ConvArgs& a, const Tensor& x, Tensor& out, Tensor* state_out) {
  if (a.L > 0) {
    const dim3 grid(static_cast<unsigned>((a.L + kTile - 1) / kTile), static_cast<unsigned>(a.D),
                    static_cast<unsigned>(a.B));
    const dim3 vec_grid(static_cast<unsigned>((a.L + kVecTile - 1) / kVecTile), static_cast<unsigned>(a.D),
                        static_cast<unsigned>(a.B));
    if (vector_ok(a, {&x, &out}, true) && a.starts)
      conv1d_fwd_vec_kernel<T, K, true><<<vec_grid, kThreads, 0, c.stream()>>>(a, static_cast<T*>(out.raw()),
                                                                                out.stride(0), out.stride(1));
    else if (vector_ok(a, {&x, &out}, true))
      conv1d_fwd_vec_kernel<T, K, false><<<vec_grid, kThreads, 0, c.stream()>>>(a, static_cast<T*>(out.raw()),
                                                                                 out.stride(0), out.stride(1));
    else
      conv1d_fwd_kernel<T, K><<<grid, kThreads, 0, c.stream()>>>(a, static_cast<T*>(out.raw()), out.stride(0),
                                                                  out.stride(1));
    GM_CUDA_CHECK_LAUNCH();
  }
  if (state_out && K > 1) {
    conv1d_state_kernel<T, K><<<blocks_for(a.B * a.D, 128), 128, 0, c.stream()>>>(a, state_out->data<float>());
    GM_CUDA_CHECK_LAUNCH();
  }
}

template <class T, int K>
void bwd_impl(CudaContext& c, const ConvArgs& a, const Tensor& x, const Tensor& dout, Tensor& dx, Tensor& dweight,
              Tensor* dbias) {
  if (a.L == 0) return;
  const int64_t tiles = (a.L + kVecTile - 1) / kVecTile;  // both kernels: vec_pos
  const int64_t rows = a.B * tiles;
  Tensor part_w = Tensor::empty(c.allocator(), {rows, a.D * K}, DType::F32);
  Tensor part_b = Tensor::empty(c.allocator(), {rows, a.D}, DType::F32);
  const dim3 grid(static_cast<unsigned>(tiles), static_cast<unsigned>(a.D), static_cast<unsigned>(a.B));
  if (vector_ok(a, {&x, &dout, &dx}, false))
    conv1d_bwd_vec_kernel<T, K><<<grid, kThreads, 0, c.stream()>>>(
        a, static_cast<const T*>(dout.raw()), dout.stride(0), dout.stride(1), static_cast<T*>(dx.raw()),
        dx.stride(0), dx.stride(1), part_w.data<float>(), part_b.data<float>());
  else
    conv1d_bwd_kernel<T, K><<<grid, kThreads, 0, c.stream()>>>(
        a, static_cast<const T*>(dout.raw()), dout.stride(0), dout.stride(1), static_cast<T*>(dx.raw()),
        dx.stride(0), dx.stride(1), part_w.data<float>(), part_b.data<float>());
  GM_CUDA_CHECK_LAUNCH();
  column_sum(c, part_w.data<float>(), rows, a.D * K, dweight.data<float>(), true);
  if (dbias) column_sum(c, part_b.data<float>(), rows, a.D, dbias->data<float>(), true);
}

template <class T, class Fn>
void with_width(int64_t K, Fn&& fn) {
  switch (K) {
    case 1: fn(std::integral_constant<int, 1>{}); break;
    case 2: fn(std::integral_constant<int, 2>{}); break;
    case 3: fn(std::integral_constant<int, 3>{}); break;
    case 4: fn(std::integral_constant<int, 4>{}); break;
    case 5: fn(std::integral_constant<int, 5>{}); break;
    case 6: fn(std::integral_constant<int, 6>{}); break;
    case 7: fn(std::integral_constant<int, 7>{}); break;
    default: fn(std::integral_constant<int, 8>{}); break;
  }
}
}  // namespace

void conv1d_fwd(Context& ctx, const Tensor& x, const Tensor& weight, const Tensor* bias, const Tensor* seq_start,
                const Tensor* state_in, bool silu, Tensor& out, Tensor* state_out) {
  CudaContext& c = as_cuda(ctx);
  const char* op = "conv1d_fwd";
  const ConvArgs a = make_args(op, x, weight, bias, seq_start, state_in, silu);
  require_like_x(out, x, op, "out");
  const int64_t K = weight.size(1);
  if (state_out) {
    require_cuda(*state_out, op, "state_out");
    require(state_out->dtype() == DType::F32 && state_out->numel() == a.B * a.D * (K - 1) &&
                state_out->is_contiguous(),
            op, "state_out must be dense f32 [B, D, K-1], got " + state_out->describe());
    require(!state_in || state_in->raw() != state_out->raw(), op, "state_in and state_out must not alias");
  }
  if (a.B * a.D == 0) return;
  auto run = [&](auto kw) {
    constexpr int kK = decltype(kw)::value;
    if (x.dtype() == DType::BF16)
      fwd_impl<bf16_t, kK>(c, a, x, out, state_out);
    else
      fwd_impl<float, kK>(c, a, x, out, state_out);
  };
  with_width<void>(K, run);
}

void conv1d_bwd(Context& ctx, const Tensor& dout, const Tensor& x, const Tensor& weight, const Tensor* bias,
                const Tensor* seq_start, const Tensor* state_in, bool silu, Tensor& dx, Tensor& dweight,
                Tensor* dbias) {
  CudaContext& c = as_cuda(ctx);
  const char* op = "conv1d_bwd";
  const ConvArgs a = make_args(op, x, weight, bias, seq_start, state_in, silu);
  require_like_x(dout, x, op, "dout");
  require_like_x(dx, x, op, "dx");
  require_cuda(dweight, op, "dweight");
  require(dweight.dtype() == DType::F32 && dweight.shape() == weight.shape() && dweight.is_contiguous(), op,
          "dweight must be dense f32 like weight");
  if (dbias) {
    require_cuda(*dbias, op, "dbias");
    require(dbias->dtype() == DType::F32 && dbias->numel() == a.D && dbias->is_contiguous(), op,
            "dbias must be f32 [D]");
  }
  if (a.B * a.D == 0) return;
  auto run = [&](auto kw) {
    constexpr int kK = decltype(kw)::value;
    if (x.dtype() == DType::BF16)
      bwd_impl<bf16_t, kK>(c, a, x, dout, dx, dweight, dbias);
    else
      bwd_impl<float, kK>(c, a, x, dout, dx, dweight, dbias);
  };
  with_width<void>(weight.size(1), run);
}

}  // namespace gm::cuda
