// One AdamW step as a template over the scalar type T (float in gm::cpu::adamw, double
// in the tests), written as torch.optim.AdamW computes it (single-tensor path):
//   g = grad * grad_scale
//   p *= 1 - lr * wd
//   m = b1 m + (1 - b1) g;   v = b2 v + (1 - b2) g^2
//   p -= (lr / (1 - b1^t)) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)
// The bias corrections are computed in double (Python floats in torch), the rest in T.
#pragma once

#include <cmath>
#include <cstdint>

#include "mamba/op_types.h"

namespace gm::cpu {

template <class T>
void adamw_ref(T* param, const T* grad, T* m, T* v, int64_t n, const AdamWStep& s, int threads) {
  const double step = static_cast<double>(s.step);
  const T step_size = static_cast<T>(static_cast<double>(s.lr) / (1.0 - std::pow(static_cast<double>(s.beta1), step)));
  const T bias2_sqrt = static_cast<T>(std::sqrt(1.0 - std::pow(static_cast<double>(s.beta2), step)));
  const T decay = static_cast<T>(1.0 - static_cast<double>(s.lr) * static_cast<double>(s.weight_decay));
  const T b1 = s.beta1, b2 = s.beta2, eps = s.eps, gscale = s.grad_scale;
#pragma omp parallel for num_threads(threads) schedule(static)
  for (int64_t i = 0; i < n; ++i) {
    const T g = grad[i] * gscale;
    param[i] *= decay;
    m[i] = b1 * m[i] + (T(1) - b1) * g;
    v[i] = b2 * v[i] + (T(1) - b2) * g * g;
    const T denom = std::sqrt(v[i]) / bias2_sqrt + eps;
    param[i] -= step_size * (m[i] / denom);
  }
}

}  // namespace gm::cpu
