// LM head + next-token cross-entropy on CUDA without a logits tensor (twin of
// mamba/cpu/lm_head_loss.cpp). h, dh act [M, d]; weight act [V, d]; dweight f32 [V, d]
// (accumulated); targets, flags u8 [M]; losses f32 [M]. Loss weights as cross_entropy.cu.
//
// One kernel: the weight lives in shared memory (f32, rows padded with zeros to kMaxV);
// a block walks tiles of kTileRows rows. Phase 1, one warp per row: the V logits
// (lane-strided dot products, butterfly sums), the loss, g = grad_scale * w *
// (softmax - onehot) kept in shared memory for the tile, and dh = g @ weight. Phase 2,
// one thread per column of d: dweight partials += g^T h over the tile's rows in order.
// The grid depends on M only and each block adds its tiles in order; column_sum adds
// the block partials in block order: deterministic, no atomics.
// Shapes the kernel does not cover (V > 16 or d > 2048) run as gemm + cross_entropy +
// gemms with temporary logits. bf16 with d a multiple of 16 (up to 1,024), the model's case,
// runs the tensor-core form of the same kernel (lm_head_loss_mma.cuh).
#include <algorithm>
#include <string>

#include "mamba/cuda/check.cuh"
#include "mamba/cuda/context_cuda.h"
#include "mamba/cuda/device_util.cuh"
#include "mamba/cuda/lm_head_loss_mma.cuh"
#include "mamba/cuda/reduce.cuh"
#include "mamba/ops.h"

namespace gm::cuda {

namespace {
constexpr int kThreads = 256;
constexpr int kWarps = kThreads / 32;
constexpr int kTileRows = 64;
constexpr int kMaxV = lm_head::kVocabTile;  // 16
constexpr int kMaxCols = 8;  // columns of d per thread in phase 2: d <= kMaxCols * kThreads
constexpr int64_t kMaxBlocks = 1024;

template <class T, int kCols>
__global__ void __launch_bounds__(kThreads)
    lm_head_ce_kernel(const T* __restrict__ h, const T* __restrict__ weight, const uint8_t* __restrict__ targets,
                      const uint8_t* __restrict__ flags, float soft_weight, float grad_scale, int64_t M, int d, int V,
                      float* __restrict__ losses, T* __restrict__ dh, float* __restrict__ partial) {
  extern __shared__ float smem[];
  float* ws = smem;                                  // [kMaxV][d]
  float* gs = smem + static_cast<int64_t>(kMaxV) * d;  // [kTileRows][kMaxV]
  for (int i = threadIdx.x; i < kMaxV * d; i += kThreads) {
    const int v = i / d;
    ws[i] = v < V ? to_f(weight[i]) : 0.f;
  }
  __syncthreads();
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  float acc[kCols][kMaxV];
#pragma unroll
  for (int c = 0; c < kCols; ++c)
#pragma unroll
    for (int v = 0; v < kMaxV; ++v) acc[c][v] = 0.f;

  const int64_t tiles = (M + kTileRows - 1) / kTileRows;
  for (int64_t tile = blockIdx.x; tile < tiles; tile += gridDim.x) {
    const int64_t m0 = tile * kTileRows;
    for (int r = warp; r < kTileRows; r += kWarps) {
      const int64_t m = m0 + r;
      float g[kMaxV];
#pragma unroll
      for (int v = 0; v < kMaxV; ++v) g[v] = 0.f;
      if (m < M) {
        const T* hr = h + m * d;
        float logit[kMaxV];
#pragma unroll
        for (int v = 0; v < kMaxV; ++v) logit[v] = 0.f;
        for (int j = lane; j < d; j += 32) {
          const float hv = to_f(hr[j]);
#pragma unroll
          for (int v = 0; v < kMaxV; ++v) logit[v] = fmaf(hv, ws[v * d + j], logit[v]);
        }
#pragma unroll
        for (int v = 0; v < kMaxV; ++v)
#pragma unroll
          for (int o = 16; o > 0; o >>= 1) logit[v] += __shfl_xor_sync(0xffffffffu, logit[v], o);
        const uint8_t target = targets[m];
        const float w = loss_weight(target, flags, m, soft_weight);
        float loss = 0.f;
        if (w != 0.f) {
          float mx = -INFINITY;
#pragma unroll
          for (int v = 0; v < kMaxV; ++v)
            if (v < V) mx = fmaxf(mx, logit[v]);
          float s = 0.f;
#pragma unroll
          for (int v = 0; v < kMaxV; ++v)
            if (v < V) s += expf(logit[v] - mx);
          const float lse = mx + logf(s);
          float xt = 0.f;
          const float scale = grad_scale * w;
#pragma unroll
          for (int v = 0; v < kMaxV; ++v) {
            if (v == target) xt = logit[v];
            if (v < V) g[v] = scale * (expf(logit[v] - lse) - (v == target ? 1.f : 0.f));
          }
          loss = w * (lse - xt);
        }
        if (lane == 0) losses[m] = loss;
        T* dr = dh + m * d;
        for (int j = lane; j < d; j += 32) {
          float s = 0.f;
#pragma unroll
          for (int v = 0; v < kMaxV; ++v) s = fmaf(g[v], ws[v * d + j], s);
          dr[j] = from_f<T>(s);
        }
      }
      if (lane == 0) {
#pragma unroll
        for (int v = 0; v < kMaxV; ++v) gs[r * kMaxV + v] = g[v];
      }
    }
    __syncthreads();
    lm_head::add_tile_dweight<kCols, kThreads>(h, gs, m0, static_cast<int>(min(static_cast<int64_t>(kTileRows), M - m0)),
                                               d, acc);
    __syncthreads();  // gs is rewritten by the next tile
  }
  lm_head::store_block_dweight<kCols, kThreads>(partial, acc, d, V);
}

template <class T, int kCols>
void launch(CudaContext& c, const Tensor& h, const Tensor& weight, const Tensor& targets, const Tensor* flags,
            float soft_weight, float grad_scale, Tensor& losses, Tensor& dh, Tensor& dweight, int64_t M, int d,
            int V) {
  const int64_t tiles = (M + kTileRows - 1) / kTileRows;
  const int64_t blocks = std::min(tiles, kMaxBlocks);
  const size_t smem = sizeof(float) * (static_cast<size_t>(kMaxV) * d + kTileRows * kMaxV);
  if (smem > 48 * 1024)
    GM_CUDA_CHECK(cudaFuncSetAttribute(lm_head_ce_kernel<T, kCols>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                       static_cast<int>(smem)));
  Tensor partial = Tensor::empty(c.allocator(), {blocks, static_cast<int64_t>(V) * d}, DType::F32);
  lm_head_ce_kernel<T, kCols><<<static_cast<unsigned>(blocks), kThreads, smem, c.stream()>>>(
      static_cast<const T*>(h.raw()), static_cast<const T*>(weight.raw()), targets.data<uint8_t>(),
      flags ? flags->data<uint8_t>() : nullptr, soft_weight, grad_scale, M, d, V, losses.data<float>(),
      static_cast<T*>(dh.raw()), partial.data<float>());
  GM_CUDA_CHECK_LAUNCH();
  column_sum(c, partial.data<float>(), blocks, static_cast<int64_t>(V) * d, dweight.data<float>(), true);
}

template <class T>
void launch_cols(CudaContext& c, const Tensor& h, const Tensor& weight, const Tensor& targets, const Tensor* flags,
                 float soft_weight, float grad_scale, Tensor& losses, Tensor& dh, Tensor& dweight, int64_t M, int d,
                 int V) {
  if (d <= kThreads)
    launch<T, 1>(c, h, weight, targets, flags, soft_weight, grad_scale, losses, dh, dweight, M, d, V);
  else if (d <= 2 * kThreads)
    launch<T, 2>(c, h, weight, targets, flags, soft_weight, grad_scale, losses, dh, dweight, M, d, V);
  else if (d <= 4 * kThreads)
    launch<T, 4>(c, h, weight, targets, flags, soft_weight, grad_scale, losses, dh, dweight, M, d, V);
  else
    launch<T, kMaxCols>(c, h, weight, targets, flags, soft_weight, grad_scale, losses, dh, dweight, M, d, V);
}

template <int kCols>
void launch_mma(CudaContext& c, const Tensor& h, const Tensor& weight, const Tensor& targets, const Tensor* flags,
                float soft_weight, float grad_scale, Tensor& losses, Tensor& dh, Tensor& dweight, int64_t M, int d,
                int V) {
  using namespace lm_head;
  const int64_t tiles = (M + kMmaTileRows - 1) / kMmaTileRows;
  const int64_t blocks = std::min(tiles, kMaxBlocks);
  const size_t smem = mma_smem_bytes(d);
  if (smem > 48 * 1024)
    GM_CUDA_CHECK(cudaFuncSetAttribute(lm_head_ce_mma_kernel<kCols>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                       static_cast<int>(smem)));
  Tensor partial = Tensor::empty(c.allocator(), {blocks, static_cast<int64_t>(V) * d}, DType::F32);
  lm_head_ce_mma_kernel<kCols><<<static_cast<unsigned>(blocks), kMmaThreads, smem, c.stream()>>>(
      static_cast<const bf16_t*>(h.raw()), static_cast<const bf16_t*>(weight.raw()), targets.data<uint8_t>(),
      flags ? flags->data<uint8_t>() : nullptr, soft_weight, grad_scale, M, d, V, losses.data<float>(),
      static_cast<bf16_t*>(dh.raw()), partial.data<float>());
  GM_CUDA_CHECK_LAUNCH();
  column_sum(c, partial.data<float>(), blocks, static_cast<int64_t>(V) * d, dweight.data<float>(), true);
}

// The same op as separate products around cross_entropy (any V, any d).
void unfused(Context& ctx, const Tensor& h, const Tensor& weight, const Tensor& targets, const Tensor* flags,
             float soft_weight, float grad_scale, Tensor& losses, Tensor& dh, Tensor& dweight, int64_t M, int64_t d,
             int64_t V) {
  Tensor logits = ctx.empty({M, V}, DType::F32);
  gemm(ctx, false, true, M, V, d, 1.f, h, d, 0, weight, d, 0, 0.f, logits, V, 0, 1);
  Tensor dlogits = ctx.empty({M, V}, DType::F32);
  cross_entropy(ctx, logits, targets, flags, soft_weight, grad_scale, losses, &dlogits);
  logits = Tensor();
  Tensor g = dlogits;
  if (h.dtype() != DType::F32) {
    g = ctx.empty({M, V}, h.dtype());
    copy(ctx, dlogits, g);
  }
  gemm(ctx, false, false, M, d, V, 1.f, g, V, 0, weight, d, 0, 0.f, dh, d, 0, 1);
  gemm(ctx, true, false, V, d, M, 1.f, g, V, 0, h, d, 0, 1.f, dweight, d, 0, 1);
}
}  // namespace

void lm_head_cross_entropy(Context& ctx, const Tensor& h, const Tensor& weight, const Tensor& targets,
                           const Tensor* flags, float soft_weight, float grad_scale, Tensor& losses, Tensor& dh,
                           Tensor& dweight) {
  CudaContext& c = as_cuda(ctx);
  const char* op = "lm_head_cross_entropy";
  require_cuda(weight, op, "weight");
  require(is_act(weight.dtype()) && weight.ndim() == 2 && weight.is_contiguous(), op,
          "weight must be dense f32 or bf16 [V, d], got " + weight.describe());
  const int64_t V = weight.size(0), d = weight.size(1);
  require(V > kLastBase, op, "the vocabulary (" + std::to_string(V) + ") must include ids 7..10 (ACGT)");
  require_cuda(h, op, "h");
  require(h.dtype() == weight.dtype() && h.is_contiguous() && h.ndim() >= 2 && h.size(-1) == d, op,
          "h must be dense [M, d] in the weight's dtype, got " + h.describe() + " with weight " + weight.describe());
  const int64_t M = h.numel() / d;
  require_cuda(dh, op, "dh");
  require(dh.dtype() == h.dtype() && dh.shape() == h.shape() && dh.is_contiguous(), op,
          "dh must be like h (" + h.describe() + "), got " + dh.describe());
  require_cuda(dweight, op, "dweight");
  require(dweight.dtype() == DType::F32 && dweight.numel() == V * d && dweight.is_contiguous(), op,
          "dweight must be dense f32 [V, d], got " + dweight.describe());
  require_cuda(targets, op, "targets");
  require(targets.dtype() == DType::U8 && targets.numel() == M && targets.is_contiguous(), op,
          "targets must be dense u8 [M], got " + targets.describe());
  if (flags) {
    require_cuda(*flags, op, "flags");
    require(flags->dtype() == DType::U8 && flags->numel() == M && flags->is_contiguous(), op,
            "flags must be dense u8 [M], got " + flags->describe());
  }
  require_cuda(losses, op, "losses");
  require(losses.dtype() == DType::F32 && losses.numel() == M && losses.is_contiguous(), op,
          "losses must be dense f32 [M], got " + losses.describe());
  if (M == 0 || d == 0) return;
  if (V > kMaxV || d > kMaxCols * kThreads) {
    unfused(ctx, h, weight, targets, flags, soft_weight, grad_scale, losses, dh, dweight, M, d, V);
    return;
  }
  if (h.dtype() == DType::BF16 && d % 16 == 0 && d <= lm_head::kMmaMaxD) {
    if (d <= lm_head::kMmaThreads)
      launch_mma<1>(c, h, weight, targets, flags, soft_weight, grad_scale, losses, dh, dweight, M, static_cast<int>(d),
                    static_cast<int>(V));
    else if (d <= 2 * lm_head::kMmaThreads)
      launch_mma<2>(c, h, weight, targets, flags, soft_weight, grad_scale, losses, dh, dweight, M, static_cast<int>(d),
                    static_cast<int>(V));
    else
      launch_mma<4>(c, h, weight, targets, flags, soft_weight, grad_scale, losses, dh, dweight, M, static_cast<int>(d),
                    static_cast<int>(V));
    return;
  }
  if (h.dtype() == DType::BF16)
    launch_cols<bf16_t>(c, h, weight, targets, flags, soft_weight, grad_scale, losses, dh, dweight, M,
                        static_cast<int>(d), static_cast<int>(V));
  else
    launch_cols<float>(c, h, weight, targets, flags, soft_weight, grad_scale, losses, dh, dweight, M,
                       static_cast<int>(d), static_cast<int>(V));
}

}  // namespace gm::cuda
