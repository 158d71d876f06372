// One Mamba-1 mixer (mamba_ssm's `Mamba` module, fast path) as calls to gm::ops:
//   [x; z] = W_in h                 (in_proj, one product into xz, channel-major [B, 2D, L])
//   xc = silu(conv1d(x))            (depthwise causal conv, width K)
//   [dt_low; B; C] = x_proj xc      ([B, R+2N, L]; B and C are views)
//   delta = dt_proj dt_low          (bias and softplus are applied inside the scan)
//   y = selective_scan(xc, delta, A = -exp(A_log), B, C, D, z)   (gated by silu(z))
//   out = out_proj y                ([B, L, d], token-major)
//
// Conventions
// - h, out, dout, dh: act, token-major and contiguous ([B*L, d] or [B, L, d]); every
//   [B, C, L] activation is act with unit inner stride, its rows MixerDims::pitch()
//   elements apart (channel_major allocates them so) and its batch rows possibly further
//   (x and z are the two halves of xz); weights used as matrix operands (in_proj,
//   x_proj, dt_proj, out_proj) are in the act dtype, the others f32. Gradients are f32
//   and ACCUMULATED into MixerParams of grads.
// - The tensors of MixerActivations are views chosen by the caller (the model shares
//   them between layers to keep memory low); the mixer only fixes the ORDER of their
//   use, which makes these aliases safe:
//     y may be x (the first half of xz): x is consumed by the conv before the scan
//       writes y; mixer_backward then recomputes xz from h (the same product, bitwise
//       the same values) when it needs x again;
//     delta may be dx (the first half of MixerGradWorkspace::dxz): delta's last use is
//       the scan backward, dx is written after it;
//     mixer_backward overwrites y with dy (y is dead after out_proj's weight gradient).
// - seq_start (u8 [B, L], 0/1) resets conv and scan at document starts.
// - Streaming: conv_state [B, D, K-1] and ssm_state [B, D, N] (f32) are read as
//   the state before position 0 and overwritten with the state after position L-1.
#pragma once

#include <cstdint>

#include "mamba/context.h"
#include "mamba/tensor.h"

namespace gm {

struct MixerDims {
  int64_t batch = 0, length = 0;
  int64_t d_model = 0, d_inner = 0, d_state = 0, dt_rank = 0, d_conv = 0;
  int64_t tokens() const { return batch * length; }
  // Elements from one row of a channel-major activation to the next: the length rounded
  // up to 64 (every bf16 row starts on a 128-byte line), and to 512 (1 KiB) from 8,192
  // steps on. Rows of an odd length packed end to end start mid-line, and the CUDA scan
  // runs up to 6% slower per token on them (8 x 512 x 131,000 on an H200, bench_scan
  // layout: forward 5.65 against 5.35 ms per 2^20 tokens at a 131,072 pitch, forward +
  // backward 29.85 against 28.04; a 131,008 pitch gave 5.44 / 28.48).
  int64_t pitch() const;
};

// An uninitialised act tensor [batch, rows, length] with its rows m.pitch() apart.
Tensor channel_major(Context& ctx, const MixerDims& m, int64_t rows, DType dtype);

// Views of one layer's mixer tensors (values, their act-dtype copies, or grads).
struct MixerParams {
  Tensor in_proj;   // [2D, d]
  Tensor conv_w;    // [D, K] (stored [D, 1, K])
  Tensor conv_b;    // [D], undefined when the config has no conv bias
  Tensor x_proj;    // [R+2N, D]
  Tensor dt_w;      // [D, R]
  Tensor dt_b;      // [D]
  Tensor A_log;     // [D, N]
  Tensor Dskip;     // [D]
  Tensor out_proj;  // [d, D]
};

// The forward's intermediate tensors (see the aliasing rules above).
struct MixerActivations {
  Tensor xz;                // act [B, 2D, L]: x = channels [0, D), z = channels [D, 2D)
  Tensor xc, delta, y;      // act [B, D, L]
  Tensor x_dbl;             // act [B, R+2N, L]
  Tensor A;                 // f32 [D, N] = -exp(A_log)
  Tensor scan_saved;        // f32, backend-defined (training only; may be undefined)

  Tensor x() const { return xz.narrow(1, 0, xz.size(1) / 2); }
  Tensor z() const { return xz.narrow(1, xz.size(1) / 2, xz.size(1) / 2); }
  bool y_overwrites_x() const { return y.raw() == xz.raw(); }

  // Inference scratch, reused by every layer: y is x (4 [B, D, L] tensors in all).
  static MixerActivations allocate_inference(Context& ctx, const MixerDims& dims);
};

// Scratch of the backward pass, shared by every layer.
struct MixerGradWorkspace {
  Tensor dxz;                      // act [B, 2D, L]: dx, dz (in_proj's output gradient)
  Tensor dxc, ddelta;              // act [B, D, L]
  Tensor dx_dbl;                   // act [B, R+2N, L]
  Tensor dA, dA_log;               // f32 [D, N]
  Tensor dDskip, ddt_b;            // f32 [D]

  Tensor dx() const { return dxz.narrow(1, 0, dxz.size(1) / 2); }
  Tensor dz() const { return dxz.narrow(1, dxz.size(1) / 2, dxz.size(1) / 2); }
  static MixerGradWorkspace allocate(Context& ctx, const MixerDims& dims);
};

struct MixerStreamState {
  Tensor* conv_state = nullptr;  // f32 [B, D, K-1]
  Tensor* ssm_state = nullptr;   // f32 [B, D, N]
};

// out = mixer(h); out may be null (a training recompute needs the activations only).
// act.scan_saved is filled when defined. stream may be null.
void mixer_forward(Context& ctx, const MixerDims& dims, const MixerParams& w, const MixerParams& w_f32,
                   const Tensor& h, const Tensor* seq_start, const MixerStreamState* stream,
                   MixerActivations& act, Tensor* out);

// Recomputes act.xc = silu(conv1d(x)) and act.delta = dt_proj(dt_low of act.x_dbl)
// exactly as mixer_forward computed them (run without a stream state). Needs x intact.
void mixer_recompute_cheap(Context& ctx, const MixerDims& dims, const MixerParams& w, const MixerParams& w_f32,
                           const Tensor* seq_start, MixerActivations& act);

// Backward of mixer_forward (run without a stream state) given its activations:
// accumulates parameter gradients into g and overwrites dh with dL/dh. Overwrites act.y
// (with dy), and act.xz when y overwrote x. w: act-dtype matrices; w_f32: the f32
// parameters (A_log, conv, biases, D).
void mixer_backward(Context& ctx, const MixerDims& dims, const MixerParams& w, const MixerParams& w_f32,
                    const MixerParams& g, const Tensor& h, const Tensor* seq_start, MixerActivations& act,
                    const Tensor& dout, MixerGradWorkspace& ws, Tensor& dh);

}  // namespace gm
