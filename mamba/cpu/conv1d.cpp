// Causal depthwise conv1d (+ SiLU) on the CPU: argument checks, then the fast f32
// kernels of conv1d_fast.h (math and masking rules in conv1d_ref.h).
#include "mamba/cpu/checks.h"
#include "mamba/cpu/conv1d_fast.h"
#include "mamba/ops.h"

namespace gm::cpu {
namespace {

ConvDims check_common(const char* op, const Tensor& x, const Tensor& weight, const Tensor* bias,
                      const Tensor* seq_start, const Tensor* state_in) {
  detail::require_dtype(op, "x", x, DType::F32);
  if (x.ndim() != 3) detail::fail(op, "x must be [B, D, L], got " + x.describe());
  detail::require_unit_inner_stride(op, "x", x);
  detail::require_dtype(op, "weight", weight, DType::F32);
  if (weight.ndim() != 2) detail::fail(op, "weight must be [D, K], got " + weight.describe());
  const ConvDims dims{x.size(0), x.size(1), x.size(2), weight.size(1)};
  if (dims.width < 1) detail::fail(op, "weight must have at least one tap, got " + weight.describe());
  detail::require_dense(op, "weight", weight, DType::F32, {dims.channels, dims.width});
  if (bias) detail::require_dense(op, "bias", *bias, DType::F32, {dims.channels});
  if (seq_start) detail::require_rows(op, "seq_start", *seq_start, DType::U8, {dims.batch, dims.length});
  if (state_in)
    detail::require_dense(op, "state_in", *state_in, DType::F32, {dims.batch, dims.channels, dims.width - 1});
  return dims;
}

const float* ptr(const Tensor* t) { return t ? t->data<float>() : nullptr; }
float* ptr(Tensor* t) { return t ? t->data<float>() : nullptr; }

}  // namespace

void conv1d_fwd(Context& ctx, const Tensor& x, const Tensor& weight, const Tensor* bias,
                const Tensor* seq_start, const Tensor* state_in, bool silu, Tensor& out, Tensor* state_out) {
  const char* op = "conv1d_fwd";
  const ConvDims dims = check_common(op, x, weight, bias, seq_start, state_in);
  detail::require_rows(op, "out", out, DType::F32, x.shape());
  if (state_out)
    detail::require_dense(op, "state_out", *state_out, DType::F32, {dims.batch, dims.channels, dims.width - 1});
  conv1d_forward_fast(dims, detail::rows3<float>(x), weight.data<float>(), ptr(bias),
                            detail::rows2<uint8_t>(seq_start), ptr(state_in), silu, detail::rows3<float>(out),
                            ptr(state_out), ctx.threads());
}

void conv1d_bwd(Context& ctx, const Tensor& dout, const Tensor& x, const Tensor& weight, const Tensor* bias,
                const Tensor* seq_start, const Tensor* state_in, bool silu, Tensor& dx, Tensor& dweight,
                Tensor* dbias) {
  const char* op = "conv1d_bwd";
  const ConvDims dims = check_common(op, x, weight, bias, seq_start, state_in);
  detail::require_rows(op, "dout", dout, DType::F32, x.shape());
  detail::require_rows(op, "dx", dx, DType::F32, x.shape());
  detail::require_dense(op, "dweight", dweight, DType::F32, weight.shape());
  if (dbias) detail::require_dense(op, "dbias", *dbias, DType::F32, {dims.channels});
  conv1d_backward_fast(dims, detail::rows3<float>(dout), detail::rows3<float>(x), weight.data<float>(),
                             ptr(bias), detail::rows2<uint8_t>(seq_start), ptr(state_in), silu,
                             detail::rows3<float>(dx), dweight.data<float>(), ptr(dbias), ctx.threads());
}

}  // namespace gm::cpu
