// Residual add + RMSNorm on the CPU (math in rmsnorm_ref.h). Token-major [M, d]
// tensors; a [B, L, d] tensor is read as M = B * L rows.
#include "mamba/cpu/checks.h"
#include "mamba/cpu/rmsnorm_ref.h"
#include "mamba/ops.h"

namespace gm::cpu {
namespace {

// Rows and width of a dense token-major tensor ([M, d] or [B, L, d]).
void rows_and_width(const char* op, const char* name, const Tensor& t, int64_t& M, int64_t& d) {
  detail::require_dtype(op, name, t, DType::F32);
  detail::require_contiguous(op, name, t);
  if (t.ndim() < 2) detail::fail(op, std::string(name) + " must be [M, d] or [B, L, d], got " + t.describe());
  d = t.size(-1);
  M = t.numel() / std::max<int64_t>(d, 1);
}

void require_same_rows(const char* op, const char* name, const Tensor& t, int64_t M, int64_t d) {
  int64_t m2 = 0, d2 = 0;
  rows_and_width(op, name, t, m2, d2);
  if (m2 != M || d2 != d)
    detail::fail(op, std::string(name) + " must hold " + std::to_string(M) + " rows of " + std::to_string(d) +
                         ", got " + t.describe());
}

}  // namespace

void add_rmsnorm_fwd(Context& ctx, const Tensor* x, Tensor& residual, const Tensor& weight, float eps,
                     Tensor& out, Tensor& rstd) {
  const char* op = "add_rmsnorm_fwd";
  int64_t M = 0, d = 0;
  rows_and_width(op, "residual", residual, M, d);
  if (x) require_same_rows(op, "x", *x, M, d);
  require_same_rows(op, "out", out, M, d);
  detail::require_dense(op, "weight", weight, DType::F32, {d});
  detail::require_dtype(op, "rstd", rstd, DType::F32);
  detail::require_contiguous(op, "rstd", rstd);
  if (rstd.numel() != M) detail::fail(op, "rstd must hold " + std::to_string(M) + " values, got " + rstd.describe());
  add_rmsnorm_forward_ref<float>(x ? x->data<float>() : nullptr, residual.data<float>(), weight.data<float>(), M, d,
                                 eps, out.data<float>(), rstd.data<float>(), ctx.threads());
}

void add_rmsnorm_bwd(Context& ctx, const Tensor& dout, const Tensor& residual, const Tensor& weight,
                     const Tensor& rstd, Tensor& dresidual, Tensor& dweight) {
  const char* op = "add_rmsnorm_bwd";
  int64_t M = 0, d = 0;
  rows_and_width(op, "residual", residual, M, d);
  require_same_rows(op, "dout", dout, M, d);
  require_same_rows(op, "dresidual", dresidual, M, d);
  detail::require_dense(op, "weight", weight, DType::F32, {d});
  detail::require_dense(op, "dweight", dweight, DType::F32, {d});
  detail::require_dtype(op, "rstd", rstd, DType::F32);
  detail::require_contiguous(op, "rstd", rstd);
  if (rstd.numel() != M) detail::fail(op, "rstd must hold " + std::to_string(M) + " values, got " + rstd.describe());
  add_rmsnorm_backward_ref<float>(dout.data<float>(), residual.data<float>(), weight.data<float>(), rstd.data<float>(),
                                  M, d, dresidual.data<float>(), dweight.data<float>(), ctx.threads());
}

}  // namespace gm::cpu
