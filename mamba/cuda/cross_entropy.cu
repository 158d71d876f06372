// Next-token cross-entropy with the loss mask on CUDA. logits, dlogits f32 [M, V] dense;
// targets, flags u8 [M]. Weight w_i: 0 unless the target is A, C, G or T (ids 7..10);
// soft_weight when flags bit 0 (soft-masked) is set, else 1.
//   losses[i] = w_i * (logsumexp(logits_i) - logits_i[target_i])
//   dlogits[i] = grad_scale * w_i * (softmax(logits_i) - onehot(target_i))   (overwritten)
// One thread per row (V is small: 16 for DNA); the row's logits stay in registers.
#include "mamba/cuda/check.cuh"
#include "mamba/cuda/context_cuda.h"
#include "mamba/cuda/device_util.cuh"
#include "mamba/cuda/loss_weight.cuh"
#include "mamba/ops.h"

namespace gm::cuda {

namespace {
constexpr int kMaxVocab = 64;

template <int kV>
__global__ void cross_entropy_kernel(const float* __restrict__ logits, const uint8_t* __restrict__ targets,
                                     const uint8_t* __restrict__ flags, float soft_weight, float grad_scale,
                                     float* __restrict__ losses, float* __restrict__ dlogits, int64_t M, int V) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < M;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const uint8_t target = targets[i];
    const float w = loss_weight(target, flags, i, soft_weight);
    float* dl = dlogits ? dlogits + i * V : nullptr;
    if (w == 0.f) {
      losses[i] = 0.f;
      if (dl)
        for (int j = 0; j < V; ++j) dl[j] = 0.f;
      continue;
    }
    const float* x = logits + i * V;
    float v[kV];
    float mx = -INFINITY;
#pragma unroll
    for (int j = 0; j < kV; ++j) {
      v[j] = j < V ? x[j] : -INFINITY;
      mx = fmaxf(mx, v[j]);
    }
    float s = 0.f;
#pragma unroll
    for (int j = 0; j < kV; ++j) s += j < V ? expf(v[j] - mx) : 0.f;
    const float lse = mx + logf(s);
    float xt = 0.f;
#pragma unroll
    for (int j = 0; j < kV; ++j)
      if (j == target) xt = v[j];
    losses[i] = w * (lse - xt);
    if (dl) {
      const float scale = grad_scale * w;
#pragma unroll
      for (int j = 0; j < kV; ++j)
        if (j < V) dl[j] = scale * (expf(v[j] - lse) - (j == target ? 1.f : 0.f));
    }
  }
}
}  // namespace

void cross_entropy(Context& ctx, const Tensor& logits, const Tensor& targets, const Tensor* flags, float soft_weight,
                   float grad_scale, Tensor& losses, Tensor* dlogits) {
  CudaContext& c = as_cuda(ctx);
  const char* op = "cross_entropy";
  require_cuda(logits, op, "logits");
  require(logits.dtype() == DType::F32 && logits.ndim() == 2 && logits.is_contiguous(), op,
          "logits must be dense f32 [M, V], got " + logits.describe());
  const int64_t M = logits.size(0), V = logits.size(1);
  require(V >= 1 && V <= kMaxVocab, op, "vocabulary must have 1..64 entries on CUDA");
  require_cuda(targets, op, "targets");
  require(targets.dtype() == DType::U8 && targets.numel() == M && targets.is_contiguous(), op,
          "targets must be dense u8 [M]");
  if (flags) {
    require_cuda(*flags, op, "flags");
    require(flags->dtype() == DType::U8 && flags->numel() == M && flags->is_contiguous(), op,
            "flags must be dense u8 [M]");
  }
  require_cuda(losses, op, "losses");
  require(losses.dtype() == DType::F32 && losses.numel() == M && losses.is_contiguous(), op,
          "losses must be dense f32 [M]");
  if (dlogits) {
    require_cuda(*dlogits, op, "dlogits");
    require(dlogits->dtype() == DType::F32 && dlogits->shape() == logits.shape() && dlogits->is_contiguous(), op,
            "dlogits must be dense f32 like logits");
  }
  if (M == 0) return;
  const uint8_t* fl = flags ? flags->data<uint8_t>() : nullptr;
  float* dl = dlogits ? dlogits->data<float>() : nullptr;
  const unsigned grid = capped_blocks(M, 256);
  if (V <= 16)
    cross_entropy_kernel<16><<<grid, 256, 0, c.stream()>>>(logits.data<float>(), targets.data<uint8_t>(), fl,
                                                          soft_weight, grad_scale, losses.data<float>(), dl, M,
                                                          static_cast<int>(V));
  else
    cross_entropy_kernel<kMaxVocab><<<grid, 256, 0, c.stream()>>>(logits.data<float>(), targets.data<uint8_t>(), fl,
                                                                 soft_weight, grad_scale, losses.data<float>(), dl,
                                                                 M, static_cast<int>(V));
  GM_CUDA_CHECK_LAUNCH();
}

}  // namespace gm::cuda
