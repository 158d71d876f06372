// Fused residual-stream ops of the training step on the CPU (the reference of
// mamba/cuda/residual_norm.cu): the out-of-place residual add + RMSNorm and the RMSNorm
// backward that also hands out the act-dtype copy of the residual gradient. Both are the
// plain ops of rmsnorm_ref.h plus a copy, so their values are bitwise those of
// add_rmsnorm_fwd / add_rmsnorm_bwd. Token-major dense [M, d] tensors.
#include <algorithm>
#include <cstring>
#include <string>

#include "mamba/cpu/checks.h"
#include "mamba/cpu/rmsnorm_ref.h"
#include "mamba/ops.h"

namespace gm::cpu {
namespace {

// A dense f32 tensor read as rows of its last dimension.
void require_rows_of(const char* op, const char* name, const Tensor& t, int64_t M, int64_t d) {
  detail::require_dtype(op, name, t, DType::F32);
  detail::require_contiguous(op, name, t);
  if (t.ndim() < 2 || t.size(-1) != d || t.numel() != M * d)
    detail::fail(op, std::string(name) + " must hold " + std::to_string(M) + " rows of " + std::to_string(d) +
                         ", got " + t.describe());
}

void width_and_rows(const char* op, const Tensor& residual, int64_t& M, int64_t& d) {
  detail::require_dtype(op, "residual", residual, DType::F32);
  if (residual.ndim() < 2) detail::fail(op, "residual must be [M, d] or [B, L, d], got " + residual.describe());
  d = residual.size(-1);
  M = residual.numel() / std::max<int64_t>(d, 1);
}

void require_rstd(const char* op, const Tensor& rstd, int64_t M) {
  detail::require_dtype(op, "rstd", rstd, DType::F32);
  detail::require_contiguous(op, "rstd", rstd);
  if (rstd.numel() != M) detail::fail(op, "rstd must hold " + std::to_string(M) + " values, got " + rstd.describe());
}

bool overlap(const Tensor& a, const Tensor& b) {
  const char* pa = static_cast<const char*>(a.raw());
  const char* pb = static_cast<const char*>(b.raw());
  return pa < pb + b.nbytes() && pb < pa + a.nbytes();
}

}  // namespace

void add_rmsnorm_fwd_out(Context& ctx, const Tensor* x, const Tensor& residual_in, Tensor& residual_out,
                         const Tensor& weight, float eps, Tensor& out, Tensor& rstd) {
  const char* op = "add_rmsnorm_fwd_out";
  int64_t M = 0, d = 0;
  width_and_rows(op, residual_in, M, d);
  require_rows_of(op, "residual_in", residual_in, M, d);
  require_rows_of(op, "residual_out", residual_out, M, d);
  if (x) require_rows_of(op, "x", *x, M, d);
  require_rows_of(op, "out", out, M, d);
  detail::require_dense(op, "weight", weight, DType::F32, {d});
  require_rstd(op, rstd, M);
  if (residual_in.raw() != residual_out.raw()) {
    if (overlap(residual_in, residual_out)) detail::fail(op, "residual_in and residual_out overlap");
    std::memcpy(residual_out.raw(), residual_in.raw(), residual_in.nbytes());
  }
  add_rmsnorm_forward_ref<float>(x ? x->data<float>() : nullptr, residual_out.data<float>(), weight.data<float>(), M,
                                 d, eps, out.data<float>(), rstd.data<float>(), ctx.threads());
}

void add_rmsnorm_bwd_act(Context& ctx, const Tensor& dout, const Tensor& residual, const Tensor& weight,
                         const Tensor& rstd, Tensor& dresidual, Tensor& dweight, Tensor& dresidual_act) {
  const char* op = "add_rmsnorm_bwd_act";
  int64_t M = 0, d = 0;
  width_and_rows(op, residual, M, d);
  require_rows_of(op, "residual", residual, M, d);
  require_rows_of(op, "dout", dout, M, d);
  require_rows_of(op, "dresidual", dresidual, M, d);
  require_rows_of(op, "dresidual_act", dresidual_act, M, d);
  if (overlap(dresidual, dresidual_act)) detail::fail(op, "dresidual and dresidual_act overlap");
  detail::require_dense(op, "weight", weight, DType::F32, {d});
  detail::require_dense(op, "dweight", dweight, DType::F32, {d});
  require_rstd(op, rstd, M);
  add_rmsnorm_backward_ref<float>(dout.data<float>(), residual.data<float>(), weight.data<float>(), rstd.data<float>(),
                                  M, d, dresidual.data<float>(), dweight.data<float>(), ctx.threads());
  std::memcpy(dresidual_act.raw(), dresidual.raw(), dresidual.nbytes());
}

}  // namespace gm::cpu
