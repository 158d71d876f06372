// Token embedding on the CPU (math in embedding_ref.h). Token ids are checked against
// the vocabulary here, so the kernels can trust them.
#include <string>

#include "mamba/cpu/checks.h"
#include "mamba/cpu/embedding_ref.h"
#include "mamba/ops.h"

namespace gm::cpu {
namespace {

void require_tokens_in_vocab(const char* op, const Tensor& tokens, int64_t V) {
  const uint8_t* t = tokens.data<uint8_t>();
  const int64_t L = tokens.size(1);
  for (int64_t i = 0; i < tokens.numel(); ++i)
    if (t[i] >= V)
      detail::fail(op, "token id " + std::to_string(t[i]) + " at batch " + std::to_string(i / L) + ", position " +
                           std::to_string(i % L) + " is outside the vocabulary of " + std::to_string(V));
}

}  // namespace

void embedding_fwd(Context& ctx, const Tensor& tokens, const Tensor& weight, Tensor& out) {
  const char* op = "embedding_fwd";
  detail::require_dtype(op, "tokens", tokens, DType::U8);
  if (tokens.ndim() != 2) detail::fail(op, "tokens must be [B, L], got " + tokens.describe());
  detail::require_contiguous(op, "tokens", tokens);
  detail::require_dtype(op, "weight", weight, DType::F32);
  if (weight.ndim() != 2) detail::fail(op, "weight must be [V, d], got " + weight.describe());
  const int64_t Bn = tokens.size(0), L = tokens.size(1), V = weight.size(0), d = weight.size(1);
  detail::require_contiguous(op, "weight", weight);
  detail::require_dense(op, "out", out, DType::F32, {Bn, L, d});
  require_tokens_in_vocab(op, tokens, V);
  embedding_forward_ref<float>(tokens.data<uint8_t>(), Bn * L, weight.data<float>(), d, out.data<float>(),
                               ctx.threads());
}

void embedding_bwd(Context& ctx, const Tensor& tokens, const Tensor& dout, Tensor& dweight) {
  const char* op = "embedding_bwd";
  detail::require_dtype(op, "tokens", tokens, DType::U8);
  if (tokens.ndim() != 2) detail::fail(op, "tokens must be [B, L], got " + tokens.describe());
  detail::require_contiguous(op, "tokens", tokens);
  detail::require_dtype(op, "dweight", dweight, DType::F32);
  if (dweight.ndim() != 2) detail::fail(op, "dweight must be [V, d], got " + dweight.describe());
  detail::require_contiguous(op, "dweight", dweight);
  const int64_t Bn = tokens.size(0), L = tokens.size(1), V = dweight.size(0), d = dweight.size(1);
  detail::require_dense(op, "dout", dout, DType::F32, {Bn, L, d});
  require_tokens_in_vocab(op, tokens, V);
  embedding_backward_ref<float>(tokens.data<uint8_t>(), Bn * L, dout.data<float>(), V, d, dweight.data<float>(),
                                ctx.threads());
}

}  // namespace gm::cpu
