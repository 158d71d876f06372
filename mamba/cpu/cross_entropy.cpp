// Next-token cross-entropy on the CPU (math and weighting in cross_entropy_ref.h).
#include <string>

#include "mamba/cpu/checks.h"
#include "mamba/cpu/cross_entropy_ref.h"
#include "mamba/ops.h"

namespace gm::cpu {

void cross_entropy(Context& ctx, const Tensor& logits, const Tensor& targets, const Tensor* flags,
                   float soft_weight, float grad_scale, Tensor& losses, Tensor* dlogits) {
  const char* op = "cross_entropy";
  detail::require_dtype(op, "logits", logits, DType::F32);
  if (logits.ndim() != 2) detail::fail(op, "logits must be [M, V], got " + logits.describe());
  const int64_t M = logits.size(0), V = logits.size(1);
  detail::require_contiguous(op, "logits", logits);
  if (V <= kLastBaseToken) detail::fail(op, "the vocabulary (" + std::to_string(V) + ") must include ids 7..10 (ACGT)");
  detail::require_dense(op, "targets", targets, DType::U8, {M});
  if (flags) detail::require_dense(op, "flags", *flags, DType::U8, {M});
  detail::require_dense(op, "losses", losses, DType::F32, {M});
  if (dlogits) detail::require_dense(op, "dlogits", *dlogits, DType::F32, {M, V});
  cross_entropy_ref<float>(logits.data<float>(), targets.data<uint8_t>(), flags ? flags->data<uint8_t>() : nullptr, M,
                           V, soft_weight, grad_scale, losses.data<float>(),
                           dlogits ? dlogits->data<float>() : nullptr, ctx.threads());
}

}  // namespace gm::cpu
