// Selective scan (S6) on the CPU: argument checks, then the fast f32 kernels of
// selective_scan_fast.h (math and layout in selective_scan_ref.h). `saved` holds the
// forward's checkpoints (the state before every kScanChunk steps, f32 [B, D, chunks, N]);
// a backward without it recomputes them.
#include <string>

#include "mamba/cpu/checks.h"
#include "mamba/cpu/selective_scan_fast.h"
#include "mamba/ops.h"

namespace gm::cpu {
namespace {

const float* ptr(const Tensor* t) { return t ? t->data<float>() : nullptr; }
float* ptr(Tensor* t) { return t ? t->data<float>() : nullptr; }

ScanDims check_inputs(const char* op, const ScanInputs& in) {
  if (!in.u || !in.delta || !in.A || !in.B || !in.C) detail::fail(op, "u, delta, A, B and C are required");
  detail::require_dtype(op, "u", *in.u, DType::F32);
  if (in.u->ndim() != 3) detail::fail(op, "u must be [B, D, L], got " + in.u->describe());
  detail::require_dtype(op, "A", *in.A, DType::F32);
  if (in.A->ndim() != 2) detail::fail(op, "A must be [D, N], got " + in.A->describe());
  const ScanDims dims{in.u->size(0), in.u->size(1), in.u->size(2), in.A->size(1)};
  const Tensor::Shape bdl{dims.batch, dims.channels, dims.length};
  const Tensor::Shape bnl{dims.batch, dims.state, dims.length};
  detail::require_rows(op, "u", *in.u, DType::F32, bdl);
  detail::require_rows(op, "delta", *in.delta, DType::F32, bdl);
  detail::require_dense(op, "A", *in.A, DType::F32, {dims.channels, dims.state});
  detail::require_rows(op, "B", *in.B, DType::F32, bnl);
  detail::require_rows(op, "C", *in.C, DType::F32, bnl);
  if (in.Dskip) detail::require_dense(op, "Dskip", *in.Dskip, DType::F32, {dims.channels});
  if (in.z) detail::require_rows(op, "z", *in.z, DType::F32, bdl);
  if (in.delta_bias) detail::require_dense(op, "delta_bias", *in.delta_bias, DType::F32, {dims.channels});
  if (in.seq_start) detail::require_rows(op, "seq_start", *in.seq_start, DType::U8, {dims.batch, dims.length});
  if (in.h0) detail::require_dense(op, "h0", *in.h0, DType::F32, {dims.batch, dims.channels, dims.state});
  return dims;
}

ScanRefInputs<float> views(const ScanInputs& in) {
  ScanRefInputs<float> v;
  v.u = detail::rows3<float>(in.u);
  v.delta = detail::rows3<float>(in.delta);
  v.A = ptr(in.A);
  v.B = detail::rows3<float>(in.B);
  v.C = detail::rows3<float>(in.C);
  v.Dskip = ptr(in.Dskip);
  v.z = detail::rows3<float>(in.z);
  v.delta_bias = ptr(in.delta_bias);
  v.seq_start = detail::rows2<uint8_t>(in.seq_start);
  v.h0 = ptr(in.h0);
  v.delta_softplus = in.delta_softplus;
  return v;
}

// saved (may be null) is dense f32 with selective_scan_saved_numel elements, or a clear error.
void check_saved(const char* op, const ScanDims& dims, const Tensor* saved) {
  if (!saved) return;
  const int64_t need = scan_checkpoint_numel(dims);
  detail::require_dtype(op, "saved", *saved, DType::F32);
  detail::require_contiguous(op, "saved", *saved);
  if (saved->numel() != need)
    detail::fail(op, "saved must have selective_scan_saved_numel elements (" + std::to_string(need) + "), got " +
                         saved->describe());
}

}  // namespace

int64_t selective_scan_saved_numel(Context&, int64_t batch, int64_t d_inner, int64_t length, int64_t d_state) {
  return scan_checkpoint_numel({batch, d_inner, length, d_state});
}

void selective_scan_fwd(Context& ctx, const ScanInputs& in, Tensor& out, Tensor* h_last, Tensor* saved) {
  const char* op = "selective_scan_fwd";
  const ScanDims dims = check_inputs(op, in);
  detail::require_rows(op, "out", out, DType::F32, in.u->shape());
  if (h_last) detail::require_dense(op, "h_last", *h_last, DType::F32, {dims.batch, dims.channels, dims.state});
  check_saved(op, dims, saved);
  float* ckpt = saved && saved->numel() ? saved->data<float>() : nullptr;
  const ScanRefInputs<float> v = views(in);
  selective_scan_forward_fast(dims, v, detail::rows3<float>(out), ptr(h_last), ckpt, ctx.threads());
}

void selective_scan_bwd(Context& ctx, const ScanInputs& in, const Tensor* saved, const Tensor& dout,
                        const ScanGrads& grads) {
  const char* op = "selective_scan_bwd";
  const ScanDims dims = check_inputs(op, in);
  const Tensor::Shape bdl = in.u->shape();
  const Tensor::Shape bnl{dims.batch, dims.state, dims.length};
  detail::require_rows(op, "dout", dout, DType::F32, bdl);
  if (in.z && !grads.dz) detail::fail(op, "dz must be given when z is");
  if (in.Dskip && !grads.dDskip) detail::fail(op, "dDskip must be given when Dskip is");
  if (in.delta_bias && !grads.ddelta_bias) detail::fail(op, "ddelta_bias must be given when delta_bias is");
  if (grads.dz && !in.z) detail::fail(op, "dz given without z");
  if (grads.dDskip && !in.Dskip) detail::fail(op, "dDskip given without Dskip");
  if (grads.ddelta_bias && !in.delta_bias) detail::fail(op, "ddelta_bias given without delta_bias");
  if (grads.du) detail::require_rows(op, "du", *grads.du, DType::F32, bdl);
  if (grads.ddelta) detail::require_rows(op, "ddelta", *grads.ddelta, DType::F32, bdl);
  if (grads.dz) detail::require_rows(op, "dz", *grads.dz, DType::F32, bdl);
  if (grads.dA) detail::require_dense(op, "dA", *grads.dA, DType::F32, {dims.channels, dims.state});
  if (grads.dB) detail::require_rows(op, "dB", *grads.dB, DType::F32, bnl);
  if (grads.dC) detail::require_rows(op, "dC", *grads.dC, DType::F32, bnl);
  if (grads.dDskip) detail::require_dense(op, "dDskip", *grads.dDskip, DType::F32, {dims.channels});
  if (grads.ddelta_bias) detail::require_dense(op, "ddelta_bias", *grads.ddelta_bias, DType::F32, {dims.channels});
  if (grads.dh0) detail::require_dense(op, "dh0", *grads.dh0, DType::F32, {dims.batch, dims.channels, dims.state});

  ScanRefGrads<float> g;
  g.du = detail::rows3<float>(grads.du);
  g.ddelta = detail::rows3<float>(grads.ddelta);
  g.dA = ptr(grads.dA);
  g.dB = detail::rows3<float>(grads.dB);
  g.dC = detail::rows3<float>(grads.dC);
  g.dDskip = ptr(grads.dDskip);
  g.dz = detail::rows3<float>(grads.dz);
  g.ddelta_bias = ptr(grads.ddelta_bias);
  g.dh0 = ptr(grads.dh0);
  check_saved(op, dims, saved);
  const float* ckpt = saved && saved->numel() ? saved->data<float>() : nullptr;
  const ScanRefInputs<float> v = views(in);
  selective_scan_backward_fast(dims, v, ckpt, detail::rows3<float>(dout), g, ctx.threads());
}

}  // namespace gm::cpu
