// AdamW over a ParamStore's flat buffers, the learning-rate schedule, global
// gradient-norm clipping and the non-finite gradient check.
//
// Conventions
// - Weight decay (decoupled, p -= lr * wd * p) applies to every parameter of 2 or
//   more dimensions except A_log (mamba_ssm recipe, PEERS.md): embedding, in_proj,
//   conv1d, x_proj, dt_proj, out_proj (and an untied lm_head) decay; A_log, D,
//   biases and norm weights do not.
// - Schedule steps are 0-based; lr(step) = lr * min(1, (step+1)/warmup)
//   * (min_ratio + (1 - min_ratio) * 0.5 * (1 + cos(pi * min(step, total) / total))).
// - Clipping as torch.nn.utils.clip_grad_norm_: the gradient is scaled by
//   max_norm / (norm + 1e-6) when that is below 1 (applied inside the AdamW op).
// - A step whose gradients hold NaN or Inf is skipped (parameters, moments and the
//   bias-correction count untouched) and reported.
#pragma once

#include <cstdint>
#include <string_view>

#include "mamba/context.h"
#include "mamba/params.h"
#include "mamba/tensor.h"

namespace gm {

bool default_weight_decay(std::string_view name, const Tensor::Shape& shape);

struct LrSchedule {
  double lr = 2e-3;
  int64_t warmup = 20;  // steps; 0 = none
  int64_t total = 200;  // steps of the cosine; the rate stays at the floor after it
  double min_ratio = 0.1;
  double at(int64_t step) const;
};

struct AdamWConfig {
  double beta1 = 0.9;
  double beta2 = 0.95;
  double eps = 1e-8;
  double weight_decay = 0.1;
  double max_grad_norm = 1.0;  // <= 0: no clipping
};

struct StepReport {
  bool applied = false;     // false: non-finite gradients, step skipped
  double grad_norm = 0;     // before clipping (NaN/Inf when skipped)
  double clip_scale = 1;    // factor applied to the gradients
  double lr = 0;
  int64_t adam_step = 0;    // bias-correction count after this call
};

class AdamW {
 public:
  // Moments allocated on ctx's device, zero; they share the ParamStore's layout.
  AdamW(Context& ctx, ParamStore& params, const AdamWConfig& cfg);

  // One update with learning rate lr from the gradients in params.grads().
  // Does not zero the gradients.
  StepReport step(Context& ctx, double lr);

  const AdamWConfig& config() const { return cfg_; }
  int64_t steps_taken() const { return steps_; }
  void set_steps_taken(int64_t n) { steps_ = n; }
  ParamStore& params() { return *params_; }
  const ParamStore& params() const { return *params_; }
  Tensor& exp_avg() { return m_; }
  const Tensor& exp_avg() const { return m_; }
  Tensor& exp_avg_sq() { return v_; }
  const Tensor& exp_avg_sq() const { return v_; }

 private:
  ParamStore* params_;
  AdamWConfig cfg_;
  Tensor m_, v_;
  int64_t steps_ = 0;
};

}  // namespace gm
