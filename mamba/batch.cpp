// Next-token batches from token windows (see batch.h).
#include "mamba/batch.h"

#include <stdexcept>
#include <string>

#include "mamba/ops.h"

namespace gm {

NextTokenBatch NextTokenBatch::from_windows(const std::vector<uint8_t>& windows, const std::vector<uint8_t>& flags,
                                            int64_t batch, int64_t window_length) {
  if (batch < 1 || window_length < 2)
    throw std::invalid_argument("next-token batch: need at least 1 row of at least 2 tokens");
  const size_t n = static_cast<size_t>(batch * window_length);
  if (windows.size() != n || (!flags.empty() && flags.size() != n))
    throw std::invalid_argument("next-token batch: expected " + std::to_string(n) + " tokens and flags, got " +
                                std::to_string(windows.size()) + " and " + std::to_string(flags.size()));
  NextTokenBatch b;
  b.batch = batch;
  b.length = window_length - 1;
  const size_t m = static_cast<size_t>(b.batch * b.length);
  b.inputs.resize(m);
  b.targets.resize(m);
  b.seq_start.resize(m);
  b.target_flags.resize(m);
  for (int64_t r = 0; r < batch; ++r) {
    const size_t w0 = static_cast<size_t>(r * window_length);
    for (int64_t t = 0; t < b.length; ++t) {
      const size_t o = static_cast<size_t>(r * b.length + t);
      const size_t wi = w0 + static_cast<size_t>(t);
      const uint8_t fin = flags.empty() ? 0 : flags[wi];
      const uint8_t ftg = flags.empty() ? 0 : flags[wi + 1];
      b.inputs[o] = windows[wi];
      b.seq_start[o] = (fin & kTokenDocStart) ? 1 : 0;
      b.targets[o] = (ftg & kTokenDocStart) ? kTokenPad : windows[wi + 1];
      b.target_flags[o] = ftg & kTokenSoftMasked;
    }
  }
  return b;
}

double NextTokenBatch::weight_sum(float soft_weight) const {
  double s = 0;
  for (size_t i = 0; i < targets.size(); ++i) s += target_weight(targets[i], target_flags[i], soft_weight);
  return s;
}

namespace {
template <class T>
Tensor upload(Context& ctx, const std::vector<T>& host, const Tensor::Shape& shape, DType dtype, const char* name) {
  Tensor t = ctx.empty(shape, dtype);
  if (static_cast<int64_t>(host.size()) != t.numel()) throw std::invalid_argument(std::string(name) + ": size mismatch");
  const Tensor src = Tensor::wrap(const_cast<T*>(host.data()), shape, dtype, Device::cpu());
  ops::copy(ctx, src, t);
  return t;
}
}  // namespace

Tensor upload_u8(Context& ctx, const std::vector<uint8_t>& host, const Tensor::Shape& shape) {
  return upload(ctx, host, shape, DType::U8, "upload_u8");
}

Tensor upload_i32(Context& ctx, const std::vector<int32_t>& host, const Tensor::Shape& shape) {
  return upload(ctx, host, shape, DType::I32, "upload_i32");
}

TokenInputs NextTokenBatch::upload(Context& ctx, float soft_weight) const {
  const Tensor::Shape shape = {batch, length};
  TokenInputs in;
  in.tokens = upload_u8(ctx, inputs, shape);
  in.targets = upload_u8(ctx, targets, shape);
  bool any_reset = false;
  for (int64_t r = 0; r < batch && !any_reset; ++r)
    for (int64_t t = 1; t < length && !any_reset; ++t) any_reset = seq_start[static_cast<size_t>(r * length + t)];
  if (any_reset) in.seq_start = upload_u8(ctx, seq_start, shape);
  bool any_soft = false;
  for (uint8_t f : target_flags) any_soft = any_soft || f;
  if (any_soft) in.target_flags = upload_u8(ctx, target_flags, shape);
  in.soft_weight = soft_weight;
  return in;
}

}  // namespace gm
