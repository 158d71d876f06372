// MambaModel::init_weights: mamba_ssm's initialisation of MambaLMHeadModel
// (PEERS.md "Training quality"), drawn on the host from one Rng stream per
// parameter (Rng::derive(seed, name)) and uploaded.
//
//   in_proj, x_proj, lm_head (untied): nn.Linear default, kaiming_uniform(a = sqrt 5)
//                         = U(-1/sqrt(fan_in), 1/sqrt(fan_in))
//   conv1d weight, bias:  nn.Conv1d default, U(+-1/sqrt(K)) (depthwise: fan_in = K)
//   dt_proj.weight:       U(+-dt_rank^-0.5)
//   dt_proj.bias:         softplus^-1(dt), dt = exp(U(log dt_min, log dt_max)) clamped >= dt_init_floor
//   A_log:                log(1..N) in every channel;  D: 1
//   out_proj:             kaiming_uniform(a = sqrt 5), then / sqrt(n_layer)
//   norms: 1;  embedding: N(0, 0.02)
#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>

#include "mamba/model.h"
#include "mamba/rng.h"

namespace gm {

namespace {

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

void fill_uniform(Rng& rng, std::vector<float>& v, double bound) {
  for (float& x : v) x = static_cast<float>(rng.uniform(-bound, bound));
}

}  // namespace

void MambaModel::init_weights(Context& ctx, uint64_t seed) {
  const double d = static_cast<double>(cfg_.d_model), D = static_cast<double>(cfg_.d_inner());
  const double K = static_cast<double>(cfg_.d_conv), R = static_cast<double>(cfg_.rank());
  const int64_t N = cfg_.d_state;
  for (size_t i = 0; i < params_.size(); ++i) {
    const ParamInfo& p = params_.infos()[i];
    Rng rng = Rng::derive(seed, p.name);
    std::vector<float> v(static_cast<size_t>(p.numel));
    if (p.name == "backbone.embedding.weight") {
      for (float& x : v) x = static_cast<float>(rng.normal(0.0, 0.02));
    } else if (p.name == "lm_head.weight" || ends_with(p.name, ".mixer.in_proj.weight")) {
      fill_uniform(rng, v, 1.0 / std::sqrt(d));
    } else if (ends_with(p.name, "norm.weight") || ends_with(p.name, "norm_f.weight") ||
               ends_with(p.name, ".mixer.D")) {
      std::fill(v.begin(), v.end(), 1.f);
    } else if (ends_with(p.name, ".mixer.conv1d.weight") || ends_with(p.name, ".mixer.conv1d.bias")) {
      fill_uniform(rng, v, 1.0 / std::sqrt(K));
    } else if (ends_with(p.name, ".mixer.x_proj.weight")) {
      fill_uniform(rng, v, 1.0 / std::sqrt(D));
    } else if (ends_with(p.name, ".mixer.dt_proj.weight")) {
      fill_uniform(rng, v, 1.0 / std::sqrt(R));
    } else if (ends_with(p.name, ".mixer.dt_proj.bias")) {
      const double lo = std::log(cfg_.dt_min), hi = std::log(cfg_.dt_max);
      for (float& x : v) {
        const double dt = std::max(std::exp(rng.uniform(lo, hi)), cfg_.dt_init_floor);
        x = static_cast<float>(dt + std::log(-std::expm1(-dt)));  // softplus^-1(dt)
      }
    } else if (ends_with(p.name, ".mixer.A_log")) {
      for (size_t j = 0; j < v.size(); ++j) v[j] = static_cast<float>(std::log(static_cast<double>(j % N + 1)));
    } else if (ends_with(p.name, ".mixer.out_proj.weight")) {
      const double bound = 1.0 / std::sqrt(D) / std::sqrt(static_cast<double>(cfg_.n_layer));
      fill_uniform(rng, v, bound);
    } else {
      throw std::logic_error("init_weights: no rule for parameter " + p.name);
    }
    params_.upload(ctx, static_cast<int>(i), v);
  }
  params_.mark_updated();
}

}  // namespace gm
