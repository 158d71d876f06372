// Scalar activation functions and their derivatives shared by the reference kernels,
// templates over the scalar type (float in the ops, double in the tests).
// softplus follows PyTorch / mamba_ssm: x itself above the threshold 20.
#pragma once

#include <cmath>

namespace gm::cpu {

template <class T>
T sigmoid(T x) {
  return T(1) / (T(1) + std::exp(-x));
}

template <class T>
T silu(T x) {
  return x * sigmoid(x);
}

// d silu(x) / dx = s (1 + x (1 - s)) with s = sigmoid(x).
template <class T>
T silu_grad(T x) {
  const T s = sigmoid(x);
  return s * (T(1) + x * (T(1) - s));
}

constexpr double kSoftplusThreshold = 20.0;

template <class T>
T softplus(T x) {
  return x > T(kSoftplusThreshold) ? x : std::log1p(std::exp(x));
}

template <class T>
T softplus_grad(T x) {
  return x > T(kSoftplusThreshold) ? T(1) : sigmoid(x);
}

}  // namespace gm::cpu
