// Mamba-1 mixer forward/backward as a sequence of gm::ops calls (see mixer.h).
//
// Every gemm below is row-major: C[b] = op(A[b]) @ op(B[b]) with op(A) M x K and
// op(B) K x N; a transposed operand is stored the other way round, and lda/ldb/ldc
// are the row strides of the STORED matrices. Weight gradients sum over the batch,
// which a strided-batched gemm cannot do deterministically into one C, so they loop
// over b with beta = 1 (a fixed order, hence bitwise reproducible).
#include "mamba/mixer.h"

#include "mamba/ops.h"

namespace gm {

int64_t MixerDims::pitch() const {
  const int64_t align = length >= 8192 ? 512 : 64;
  return (length + align - 1) / align * align;
}

Tensor channel_major(Context& ctx, const MixerDims& m, int64_t rows, DType dtype) {
  return ctx.empty({m.batch, rows, m.pitch()}, dtype).narrow(2, 0, m.length);
}

MixerActivations MixerActivations::allocate_inference(Context& ctx, const MixerDims& m) {
  const DType act = ctx.act_dtype();
  MixerActivations a;
  a.xz = channel_major(ctx, m, 2 * m.d_inner, act);
  a.xc = channel_major(ctx, m, m.d_inner, act);
  a.delta = channel_major(ctx, m, m.d_inner, act);
  a.y = a.x();
  a.x_dbl = channel_major(ctx, m, m.dt_rank + 2 * m.d_state, act);
  a.A = ctx.empty({m.d_inner, m.d_state}, DType::F32);
  return a;
}

MixerGradWorkspace MixerGradWorkspace::allocate(Context& ctx, const MixerDims& m) {
  const DType act = ctx.act_dtype();
  MixerGradWorkspace w;
  w.dxz = channel_major(ctx, m, 2 * m.d_inner, act);
  w.dxc = channel_major(ctx, m, m.d_inner, act);
  w.ddelta = channel_major(ctx, m, m.d_inner, act);
  w.dx_dbl = channel_major(ctx, m, m.dt_rank + 2 * m.d_state, act);
  w.dA = ctx.empty({m.d_inner, m.d_state}, DType::F32);
  w.dA_log = ctx.empty({m.d_inner, m.d_state}, DType::F32);
  w.dDskip = ctx.empty({m.d_inner}, DType::F32);
  w.ddt_b = ctx.empty({m.d_inner}, DType::F32);
  return w;
}

namespace {

ScanInputs scan_inputs(const MixerParams& w_f32, const MixerActivations& act, const Tensor& u, const Tensor& z,
                       const Tensor& Bm, const Tensor& Cm, const Tensor* seq_start, const Tensor* h0) {
  ScanInputs in;
  in.u = &u;
  in.delta = &act.delta;
  in.A = &act.A;
  in.B = &Bm;
  in.C = &Cm;
  in.Dskip = &w_f32.Dskip;
  in.z = &z;
  in.delta_bias = &w_f32.dt_b;
  in.seq_start = seq_start;
  in.h0 = h0;
  in.delta_softplus = true;
  return in;
}

const Tensor* conv_bias_of(const MixerParams& w_f32) { return w_f32.conv_b.defined() ? &w_f32.conv_b : nullptr; }

// in_proj: xz[b] (2D x L) = W_in (2D x d) @ h[b]^T, h[b] stored L x d.
void in_proj(Context& ctx, const MixerDims& m, const MixerParams& w, const Tensor& h, MixerActivations& act) {
  const int64_t L = m.length, d = m.d_model, D2 = 2 * m.d_inner;
  ops::gemm(ctx, false, true, D2, L, d, 1.f, w.in_proj, d, 0, h, d, L * d, 0.f, act.xz, act.xz.stride(1),
            act.xz.stride(0), m.batch);
}

// dt_proj without its bias: delta[b] (D x L) = W_dt (D x R) @ dt_low[b], the first R rows of x_dbl[b].
void dt_proj(Context& ctx, const MixerDims& m, const MixerParams& w, MixerActivations& act) {
  const int64_t D = m.d_inner, L = m.length, R = m.dt_rank;
  ops::gemm(ctx, false, false, D, L, R, 1.f, w.dt_w, R, 0, act.x_dbl, act.x_dbl.stride(1), act.x_dbl.stride(0), 0.f,
            act.delta, act.delta.stride(1), act.delta.stride(0), m.batch);
}

}  // namespace

void mixer_recompute_cheap(Context& ctx, const MixerDims& m, const MixerParams& w, const MixerParams& w_f32,
                           const Tensor* seq_start, MixerActivations& act) {
  ops::conv1d_fwd(ctx, act.x(), w_f32.conv_w, conv_bias_of(w_f32), seq_start, nullptr, true, act.xc, nullptr);
  dt_proj(ctx, m, w, act);
}

void mixer_forward(Context& ctx, const MixerDims& m, const MixerParams& w, const MixerParams& w_f32,
                   const Tensor& h, const Tensor* seq_start, const MixerStreamState* stream,
                   MixerActivations& act, Tensor* out) {
  const int64_t Bn = m.batch, L = m.length, d = m.d_model, D = m.d_inner, N = m.d_state, R = m.dt_rank;
  const int64_t X = R + 2 * N;

  in_proj(ctx, m, w, h, act);
  const Tensor x = act.x(), z = act.z();

  const Tensor* conv_bias = conv_bias_of(w_f32);
  if (stream) {
    // The op's state_in and state_out may not alias: continue through a fresh tensor.
    Tensor next = ctx.empty(stream->conv_state->shape(), DType::F32);
    ops::conv1d_fwd(ctx, x, w_f32.conv_w, conv_bias, seq_start, stream->conv_state, true, act.xc, &next);
    ops::copy(ctx, next, *stream->conv_state);
  } else {
    ops::conv1d_fwd(ctx, x, w_f32.conv_w, conv_bias, seq_start, nullptr, true, act.xc, nullptr);
  }
  // x is dead from here on: y may take its place.

  // x_proj: x_dbl[b] (X x L) = W_xp (X x D) @ xc[b] (D x L).
  ops::gemm(ctx, false, false, X, L, D, 1.f, w.x_proj, D, 0, act.xc, act.xc.stride(1), act.xc.stride(0), 0.f, act.x_dbl,
            act.x_dbl.stride(1), act.x_dbl.stride(0), Bn);
  dt_proj(ctx, m, w, act);

  ops::neg_exp(ctx, w_f32.A_log, act.A);
  const Tensor Bm = act.x_dbl.narrow(1, R, N);
  const Tensor Cm = act.x_dbl.narrow(1, R + N, N);
  const ScanInputs in = scan_inputs(w_f32, act, act.xc, z, Bm, Cm, seq_start, stream ? stream->ssm_state : nullptr);
  Tensor* saved = act.scan_saved.defined() ? &act.scan_saved : nullptr;
  if (stream) {
    Tensor h_last = ctx.empty(stream->ssm_state->shape(), DType::F32);
    ops::selective_scan_fwd(ctx, in, act.y, &h_last, saved);
    ops::copy(ctx, h_last, *stream->ssm_state);
  } else {
    ops::selective_scan_fwd(ctx, in, act.y, nullptr, saved);
  }

  // out_proj: out[b] (L x d) = y[b]^T (y[b] stored D x L) @ W_out^T (W_out stored d x D).
  if (out)
    ops::gemm(ctx, true, true, L, d, D, 1.f, act.y, act.y.stride(1), act.y.stride(0), w.out_proj, D, 0, 0.f, *out, d,
              L * d, Bn);
}

void mixer_backward(Context& ctx, const MixerDims& m, const MixerParams& w, const MixerParams& w_f32,
                    const MixerParams& g, const Tensor& h, const Tensor* seq_start, MixerActivations& act,
                    const Tensor& dout, MixerGradWorkspace& ws, Tensor& dh) {
  const int64_t Bn = m.batch, L = m.length, d = m.d_model, D = m.d_inner, N = m.d_state, R = m.dt_rank;
  const bool x_lost = act.y_overwrites_x();

  // Token-major inputs as [B, L, d] to address one batch row.
  const Tensor dout3 = dout.reshape({Bn, L, d});
  const Tensor h3 = h.reshape({Bn, L, d});

  // out_proj. dW_out (d x D) += dout[b]^T (stored L x d) @ y[b]^T (stored D x L).
  for (int64_t b = 0; b < Bn; ++b) {
    Tensor gw = g.out_proj;
    ops::gemm(ctx, true, true, d, D, L, 1.f, dout3[b], d, 0, act.y[b], act.y.stride(1), 0, 1.f, gw, D, 0, 1);
  }
  // dy[b] (D x L) = W_out^T (stored d x D) @ dout[b]^T (stored L x d), written over y.
  Tensor dy = act.y;
  ops::gemm(ctx, true, true, D, L, d, 1.f, w.out_proj, D, 0, dout, d, L * d, 0.f, dy, dy.stride(1), dy.stride(0), Bn);

  // Selective scan: dB and dC land directly in their rows of dx_dbl, dz in its half of dxz.
  const Tensor Bm = act.x_dbl.narrow(1, R, N);
  const Tensor Cm = act.x_dbl.narrow(1, R + N, N);
  const Tensor z = act.z();
  Tensor dBm = ws.dx_dbl.narrow(1, R, N);
  Tensor dCm = ws.dx_dbl.narrow(1, R + N, N);
  Tensor dz = ws.dz();
  const ScanInputs in = scan_inputs(w_f32, act, act.xc, z, Bm, Cm, seq_start, nullptr);
  ScanGrads sg;
  sg.du = &ws.dxc;
  sg.ddelta = &ws.ddelta;
  sg.dA = &ws.dA;
  sg.dB = &dBm;
  sg.dC = &dCm;
  sg.dDskip = &ws.dDskip;
  sg.dz = &dz;
  sg.ddelta_bias = &ws.ddt_b;
  ops::selective_scan_bwd(ctx, in, act.scan_saved.defined() ? &act.scan_saved : nullptr, dy, sg);
  // A = -exp(A_log), so dA_log = dA * A.
  ops::mul(ctx, ws.dA, act.A, ws.dA_log);
  Tensor gA = g.A_log, gD = g.Dskip, gdtb = g.dt_b;
  ops::axpy(ctx, 1.f, ws.dA_log, gA);
  ops::axpy(ctx, 1.f, ws.dDskip, gD);
  ops::axpy(ctx, 1.f, ws.ddt_b, gdtb);
  // delta, z and dy are dead from here on.

  // dt_proj. dW_dt (D x R) += ddelta[b] (D x L) @ dt_low[b]^T (stored R x L).
  for (int64_t b = 0; b < Bn; ++b) {
    Tensor gw = g.dt_w;
    ops::gemm(ctx, false, true, D, R, L, 1.f, ws.ddelta[b], ws.ddelta.stride(1), 0, act.x_dbl[b],
              act.x_dbl.stride(1), 0, 1.f, gw, R, 0, 1);
  }
  // d dt_low[b] (R x L) = W_dt^T (stored D x R) @ ddelta[b] (D x L), into rows 0..R of dx_dbl[b].
  const int64_t X = R + 2 * N;
  ops::gemm(ctx, true, false, R, L, D, 1.f, w.dt_w, R, 0, ws.ddelta, ws.ddelta.stride(1), ws.ddelta.stride(0), 0.f,
            ws.dx_dbl, ws.dx_dbl.stride(1), ws.dx_dbl.stride(0), Bn);

  // x_proj. dW_xp (X x D) += dx_dbl[b] (X x L) @ xc[b]^T (stored D x L).
  for (int64_t b = 0; b < Bn; ++b) {
    Tensor gw = g.x_proj;
    ops::gemm(ctx, false, true, X, D, L, 1.f, ws.dx_dbl[b], ws.dx_dbl.stride(1), 0, act.xc[b], act.xc.stride(1), 0, 1.f,
              gw, D, 0, 1);
  }
  // dxc[b] += W_xp^T (stored X x D) @ dx_dbl[b] (X x L): xc feeds both the scan and x_proj.
  ops::gemm(ctx, true, false, D, L, X, 1.f, w.x_proj, D, 0, ws.dx_dbl, ws.dx_dbl.stride(1), ws.dx_dbl.stride(0), 1.f,
            ws.dxc, ws.dxc.stride(1), ws.dxc.stride(0), Bn);

  // Causal conv + SiLU, from x (recomputed first when y took its place).
  if (x_lost) in_proj(ctx, m, w, h, act);
  Tensor dx = ws.dx();
  Tensor gconv_w = g.conv_w, gconv_b = g.conv_b;
  ops::conv1d_bwd(ctx, ws.dxc, act.x(), w_f32.conv_w, conv_bias_of(w_f32), seq_start, nullptr, true, dx, gconv_w,
                  g.conv_b.defined() ? &gconv_b : nullptr);

  // in_proj. dW_in (2D x d) += dxz[b] (2D x L) @ h[b] (L x d).
  const int64_t D2 = 2 * D;
  for (int64_t b = 0; b < Bn; ++b) {
    Tensor gw = g.in_proj;
    ops::gemm(ctx, false, false, D2, d, L, 1.f, ws.dxz[b], ws.dxz.stride(1), 0, h3[b], d, 0, 1.f, gw, d, 0, 1);
  }
  // dh[b] (L x d) = dxz[b]^T (stored 2D x L) @ W_in (2D x d).
  ops::gemm(ctx, true, false, L, d, D2, 1.f, ws.dxz, ws.dxz.stride(1), ws.dxz.stride(0), w.in_proj, d, 0, 0.f, dh, d,
            L * d, Bn);
}

}  // namespace gm
