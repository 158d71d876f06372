// NextTokenBatch: host-side construction of a causal-LM training/evaluation batch
// from token windows, and its upload to the model's device (TokenInputs).
//
// Conventions
// - Input windows are B rows of L+1 token ids (DESIGN.md section 2) with one flag
//   byte per token: bit 0 (kTokenSoftMasked) = lowercase in the FASTA, bit 1
//   (kTokenDocStart) = a document (read, contig) starts at this token.
// - inputs = window[0, L), targets = window[1, L+1); seq_start[t] = doc-start bit of
//   input t; target_flags[t] = soft-mask bit of target t.
// - A target that starts a new document is predicted from another document's
//   context, so it is replaced by [PAD] (weight 0): packing never trains on it.
// - Loss weights (as ops::cross_entropy): targets A/C/G/T (ids 7..10) weigh 1, or
//   soft_weight when soft-masked; everything else weighs 0.
#pragma once

#include <cstdint>
#include <vector>

#include "mamba/context.h"
#include "mamba/model.h"

namespace gm {

inline constexpr uint8_t kTokenSoftMasked = 1;
inline constexpr uint8_t kTokenDocStart = 2;
inline constexpr uint8_t kTokenPad = 4;

// Loss weight of one target (the rule of ops::cross_entropy).
inline float target_weight(uint8_t target, uint8_t target_flags, float soft_weight) {
  if (target < 7 || target > 10) return 0.f;
  return (target_flags & kTokenSoftMasked) ? soft_weight : 1.f;
}

struct NextTokenBatch {
  int64_t batch = 0, length = 0;
  std::vector<uint8_t> inputs, targets, seq_start, target_flags;  // [B, L] each

  // windows and flags: [B, L+1] row-major (flags may be empty: no flags).
  static NextTokenBatch from_windows(const std::vector<uint8_t>& windows, const std::vector<uint8_t>& flags,
                                     int64_t batch, int64_t window_length);

  // Sum of loss weights: the normaliser of the mean loss.
  double weight_sum(float soft_weight) const;
  // Copies to ctx's device. seq_start is left undefined when no document starts
  // after position 0 of any row (the cheaper path of the ops).
  TokenInputs upload(Context& ctx, float soft_weight) const;
};

// A u8 tensor on ctx's device holding `host` with the given shape.
Tensor upload_u8(Context& ctx, const std::vector<uint8_t>& host, const Tensor::Shape& shape);
// The same for an i32 tensor (e.g. the spans of ops::span_reduce).
Tensor upload_i32(Context& ctx, const std::vector<int32_t>& host, const Tensor::Shape& shape);

}  // namespace gm
