// Helpers shared by the op tests (tests/test_mamba_ops_*.cpp): seeded random vectors,
// host tensors filled from vectors, norm-wise relative error, central finite
// differences and bitwise comparison.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <functional>
#include <random>
#include <vector>

#include "mamba/context.h"
#include "mamba/tensor.h"

namespace gm::test {

class Rng {
 public:
  explicit Rng(uint64_t seed) : gen_(seed) {}
  std::vector<double> uniform(size_t n, double lo, double hi) {
    std::uniform_real_distribution<double> d(lo, hi);
    std::vector<double> v(n);
    for (double& x : v) x = d(gen_);
    return v;
  }
  std::vector<double> normal(size_t n, double stddev = 1.0) {
    std::normal_distribution<double> d(0.0, stddev);
    std::vector<double> v(n);
    for (double& x : v) x = d(gen_);
    return v;
  }
  int64_t index(int64_t n) { return std::uniform_int_distribution<int64_t>(0, n - 1)(gen_); }
  std::mt19937_64& engine() { return gen_; }

 private:
  std::mt19937_64 gen_;
};

// Values rounded to float and back, so that a float and a double computation start
// from identical inputs.
inline std::vector<double> float_exact(std::vector<double> v) {
  for (double& x : v) x = static_cast<double>(static_cast<float>(x));
  return v;
}

inline std::vector<float> to_float(const std::vector<double>& v) { return {v.begin(), v.end()}; }
inline std::vector<double> to_double(const std::vector<float>& v) { return {v.begin(), v.end()}; }

// A contiguous f32 CPU tensor holding `values`.
inline Tensor f32_tensor(Context& ctx, const Tensor::Shape& shape, const std::vector<double>& values) {
  Tensor t = ctx.empty(shape, DType::F32);
  EXPECT_EQ(static_cast<int64_t>(values.size()), t.numel());
  for (size_t i = 0; i < values.size(); ++i) t.data<float>()[i] = static_cast<float>(values[i]);
  return t;
}
inline Tensor f32_zeros(Context& ctx, const Tensor::Shape& shape) {
  Tensor t = ctx.empty(shape, DType::F32);
  std::memset(t.raw(), 0, t.nbytes());
  return t;
}
inline Tensor u8_tensor(Context& ctx, const Tensor::Shape& shape, const std::vector<uint8_t>& values) {
  Tensor t = ctx.empty(shape, DType::U8);
  EXPECT_EQ(static_cast<int64_t>(values.size()), t.numel());
  std::memcpy(t.raw(), values.data(), values.size());
  return t;
}
// Contents of a contiguous f32 tensor.
inline std::vector<double> values(const Tensor& t) {
  return {t.data<float>(), t.data<float>() + t.numel()};
}

// ||a - b|| / ||b|| (or ||a - b|| when b is 0); NaN anywhere gives NaN, which fails
// every `EXPECT_LT(rel_error(...), tol)`.
inline double rel_error(const std::vector<double>& a, const std::vector<double>& b) {
  EXPECT_EQ(a.size(), b.size());
  double diff = 0, ref = 0;
  for (size_t i = 0; i < a.size() && i < b.size(); ++i) {
    diff += (a[i] - b[i]) * (a[i] - b[i]);
    ref += b[i] * b[i];
  }
  return ref > 0 ? std::sqrt(diff / ref) : std::sqrt(diff);
}

inline bool bitwise_equal(const Tensor& a, const Tensor& b) {
  return a.nbytes() == b.nbytes() && std::memcmp(a.raw(), b.raw(), a.nbytes()) == 0;
}

// Central difference of loss() with respect to x[i], restoring x[i].
inline double central_difference(const std::function<double()>& loss, double& x, double h = 1e-6) {
  const double x0 = x;
  x = x0 + h;
  const double up = loss();
  x = x0 - h;
  const double down = loss();
  x = x0;
  return (up - down) / (2 * h);
}

// Finite-difference gradient of loss() with respect to the entries `which` of `x`
// (all entries when `which` is empty), returned alongside the analytic values picked
// from `analytic` at the same entries.
struct GradientCheck {
  std::vector<double> numeric, analytic;
};
inline GradientCheck check_gradient(const std::function<double()>& loss, std::vector<double>& x,
                                    const std::vector<double>& analytic, std::vector<size_t> which = {}) {
  EXPECT_EQ(x.size(), analytic.size());
  if (which.empty())
    for (size_t i = 0; i < x.size(); ++i) which.push_back(i);
  GradientCheck out;
  for (size_t i : which) {
    out.numeric.push_back(central_difference(loss, x[i]));
    out.analytic.push_back(analytic[i]);
  }
  return out;
}

// Up to `count` distinct random indices below n (all of them when n <= count).
inline std::vector<size_t> sample_indices(Rng& rng, size_t n, size_t count) {
  std::vector<size_t> all(n);
  for (size_t i = 0; i < n; ++i) all[i] = i;
  if (n <= count) return all;
  std::shuffle(all.begin(), all.end(), rng.engine());
  all.resize(count);
  return all;
}

inline double dot(const std::vector<double>& a, const std::vector<double>& b) {
  double s = 0;
  for (size_t i = 0; i < a.size(); ++i) s += a[i] * b[i];
  return s;
}

}  // namespace gm::test
