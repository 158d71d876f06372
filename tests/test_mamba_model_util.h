// Helpers shared by the tests/test_mamba_model_*.cpp files: small configs, random
// token windows, host copies of tensors and norm-wise relative errors.
#pragma once

#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include "mamba/batch.h"
#include "mamba/config.h"
#include "mamba/context.h"
#include "mamba/ops.h"
#include "mamba/rng.h"
#include "mamba/tensor.h"

namespace gm::test {

inline ModelConfig small_config(int64_t d_model = 16, int64_t n_layer = 2) {
  ModelConfig c;
  c.d_model = d_model;
  c.n_layer = n_layer;
  c.d_state = 8;
  return c.resolved();
}

inline std::vector<float> to_host(Context& ctx, const Tensor& t) {
  std::vector<float> out(static_cast<size_t>(t.numel()));
  Tensor dst = Tensor::wrap(out.data(), t.shape(), DType::F32, Device::cpu());
  ops::copy(ctx, t, dst);
  return out;
}

// ||a - ref|| / ||ref||; +inf when sizes differ, anything is non-finite or ref is zero.
template <class A, class B>
double rel_error(const std::vector<A>& a, const std::vector<B>& ref) {
  if (a.size() != ref.size()) return std::numeric_limits<double>::infinity();
  double num = 0, den = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    const double x = static_cast<double>(a[i]), r = static_cast<double>(ref[i]);
    if (!std::isfinite(x) || !std::isfinite(r)) return std::numeric_limits<double>::infinity();
    num += (x - r) * (x - r);
    den += r * r;
  }
  if (den == 0) return num == 0 ? 0.0 : std::numeric_limits<double>::infinity();
  return std::sqrt(num / den);
}

// B windows of L+1 random bases (A/C/G/T, with a few N) and no flags.
inline std::vector<uint8_t> random_windows(uint64_t seed, int64_t batch, int64_t window_length) {
  Rng rng(seed);
  std::vector<uint8_t> w(static_cast<size_t>(batch * window_length));
  for (auto& t : w) t = static_cast<uint8_t>(rng.below(50) == 0 ? 11 : 7 + rng.below(4));
  return w;
}

}  // namespace gm::test
