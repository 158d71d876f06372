// AdamW step over the decay spans of the flat buffers; schedule; clipping.
#include "mamba/optim.h"

#include <algorithm>
#include <cmath>
#include <numbers>
#include <string>

#include "mamba/ops.h"

namespace gm {

bool default_weight_decay(std::string_view name, const Tensor::Shape& shape) {
  const std::string_view a_log = "A_log";
  const bool is_a_log = name.size() >= a_log.size() && name.substr(name.size() - a_log.size()) == a_log;
  return shape.size() >= 2 && !is_a_log;
}

double LrSchedule::at(int64_t step) const {
  const double warm = warmup > 0 ? std::min(1.0, static_cast<double>(step + 1) / static_cast<double>(warmup)) : 1.0;
  const double progress = total > 0 ? static_cast<double>(std::min(step, total)) / static_cast<double>(total) : 1.0;
  return lr * warm * (min_ratio + (1.0 - min_ratio) * 0.5 * (1.0 + std::cos(std::numbers::pi * progress)));
}

AdamW::AdamW(Context& ctx, ParamStore& params, const AdamWConfig& cfg) : params_(&params), cfg_(cfg) {
  m_ = ctx.empty(params.values().shape(), DType::F32);
  v_ = ctx.empty(params.values().shape(), DType::F32);
  ops::fill(ctx, m_, 0.f);
  ops::fill(ctx, v_, 0.f);
}

StepReport AdamW::step(Context& ctx, double lr) {
  StepReport r;
  r.lr = lr;
  const Tensor& grads = params_->grads();
  // One pass and one wait for the host: the sum of squares (in double) is finite exactly
  // when every gradient is (a NaN or Inf propagates; f32 squares cannot overflow a double
  // sum), so it doubles as the non-finite check.
  r.grad_norm = std::sqrt(ops::sum_squares(ctx, grads));
  if (!std::isfinite(r.grad_norm)) {
    r.applied = false;
    r.adam_step = steps_;
    return r;
  }
  if (cfg_.max_grad_norm > 0) {
    const double coef = cfg_.max_grad_norm / (r.grad_norm + 1e-6);
    if (coef < 1.0) r.clip_scale = coef;
  }
  ++steps_;
  for (const ParamSpan& span : params_->decay_spans()) {
    AdamWStep s;
    s.lr = static_cast<float>(lr);
    s.beta1 = static_cast<float>(cfg_.beta1);
    s.beta2 = static_cast<float>(cfg_.beta2);
    s.eps = static_cast<float>(cfg_.eps);
    s.weight_decay = span.weight_decay ? static_cast<float>(cfg_.weight_decay) : 0.f;
    s.step = steps_;
    s.grad_scale = static_cast<float>(r.clip_scale);
    Tensor p = params_->values().narrow(0, span.offset, span.numel);
    const Tensor g = grads.narrow(0, span.offset, span.numel);
    Tensor m = m_.narrow(0, span.offset, span.numel);
    Tensor v = v_.narrow(0, span.offset, span.numel);
    ops::adamw(ctx, p, g, m, v, s);
  }
  params_->mark_updated();
  r.applied = true;
  r.adam_step = steps_;
  return r;
}

}  // namespace gm
