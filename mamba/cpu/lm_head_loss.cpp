// LM head + next-token cross-entropy on the CPU (the reference of mamba/cuda/lm_head_loss.cu):
// the composition of the plain ops, logits = h W^T (gemm), cross_entropy, dh = dlogits W,
// dW += dlogits^T h, with the logits and their gradient held only inside this call.
// h, dh [M, d]; weight, dweight [V, d]; targets, flags u8 [M]; losses f32 [M]. All f32.
#include <string>

#include "mamba/cpu/checks.h"
#include "mamba/ops.h"

namespace gm::cpu {

void lm_head_cross_entropy(Context& ctx, const Tensor& h, const Tensor& weight, const Tensor& targets,
                           const Tensor* flags, float soft_weight, float grad_scale, Tensor& losses, Tensor& dh,
                           Tensor& dweight) {
  const char* op = "lm_head_cross_entropy";
  detail::require_dtype(op, "weight", weight, DType::F32);
  if (weight.ndim() != 2) detail::fail(op, "weight must be [V, d], got " + weight.describe());
  const int64_t V = weight.size(0), d = weight.size(1);
  detail::require_contiguous(op, "weight", weight);
  detail::require_dtype(op, "h", h, DType::F32);
  detail::require_contiguous(op, "h", h);
  if (h.ndim() < 2 || h.size(-1) != d) detail::fail(op, "h must be [M, " + std::to_string(d) + "], got " + h.describe());
  const int64_t M = h.numel() / d;
  detail::require_dense(op, "dh", dh, DType::F32, h.shape());
  detail::require_dense(op, "dweight", dweight, DType::F32, {V, d});
  // targets, flags and losses are checked by cross_entropy.
  Tensor logits = ctx.empty({M, V}, DType::F32);
  Tensor dlogits = ctx.empty({M, V}, DType::F32);
  gemm(ctx, false, true, M, V, d, 1.f, h, d, 0, weight, d, 0, 0.f, logits, V, 0, 1);
  cross_entropy(ctx, logits, targets, flags, soft_weight, grad_scale, losses, &dlogits);
  gemm(ctx, false, false, M, d, V, 1.f, dlogits, V, 0, weight, d, 0, 0.f, dh, d, 0, 1);
  gemm(ctx, true, false, V, d, M, 1.f, dlogits, V, 0, h, d, 0, 1.f, dweight, d, 0, 1);
}

}  // namespace gm::cpu
