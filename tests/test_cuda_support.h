// Helpers for the CUDA-vs-CPU tests (tests/test_cuda_*.cpp): a fixture that skips
// without a GPU and draws a fresh seed per test (printed on failure), host/device
// tensor helpers (upload with optional bf16 rounding, download as f32, NaN poisoning)
// and the norm-wise relative error used as the pass criterion (NaN never passes).
#pragma once

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <memory>
#include <random>
#include <string>

#include "mamba/context.h"
#include "mamba/ops.h"
#include "mamba/tensor.h"

namespace gm::test {

// ||got - ref||_2 / ||ref||_2 over host f32 tensors of one shape; +inf when got holds
// a NaN or an Inf, or the shapes differ (so such a result fails every bound).
inline double rel_error(const Tensor& got, const Tensor& ref) {
  if (got.shape() != ref.shape()) return std::numeric_limits<double>::infinity();
  const float* g = got.data<float>();
  const float* r = ref.data<float>();
  double num = 0, den = 0;
  for (int64_t i = 0; i < got.numel(); ++i) {
    if (!std::isfinite(g[i]) || !std::isfinite(r[i])) return std::numeric_limits<double>::infinity();
    const double d = static_cast<double>(g[i]) - static_cast<double>(r[i]);
    num += d * d;
    den += static_cast<double>(r[i]) * static_cast<double>(r[i]);
  }
  if (den == 0) return num == 0 ? 0 : std::numeric_limits<double>::infinity();
  return std::sqrt(num / den);
}

inline bool bitwise_equal(const Tensor& a, const Tensor& b) {
  return a.shape() == b.shape() && a.dtype() == b.dtype() && std::memcmp(a.raw(), b.raw(), a.nbytes()) == 0;
}

#ifdef GENOMAMBA_HAVE_CUDA
class CudaTest : public ::testing::Test {
 public:  // helpers are used by free functions of the tests too
  void SetUp() override {
    if (!gm::cuda_available()) GTEST_SKIP() << "no CUDA device";
    seed_ = std::random_device{}();
    rng_.seed(seed_);
    gpu_ = gm::make_cuda_context(Device::cuda(0), Precision::FP32);
    cpu_ = std::make_unique<CpuContext>(0);
  }

  std::string seed_note() const { return "random seed " + std::to_string(seed_); }

  Tensor host(const Tensor::Shape& shape, DType dtype = DType::F32) { return Tensor::empty(host_alloc_, shape, dtype); }
  Tensor dev(const Tensor::Shape& shape, DType dtype) { return gpu_->empty(shape, dtype); }

  Tensor uniform(const Tensor::Shape& shape, float lo, float hi) {
    Tensor t = host(shape);
    std::uniform_real_distribution<float> d(lo, hi);
    for (int64_t i = 0; i < t.numel(); ++i) t.data<float>()[i] = d(rng_);
    return t;
  }
  Tensor normal(const Tensor::Shape& shape, float stddev = 1.f) {
    Tensor t = host(shape);
    std::normal_distribution<float> d(0.f, stddev);
    for (int64_t i = 0; i < t.numel(); ++i) t.data<float>()[i] = d(rng_);
    return t;
  }
  // u8 tensor with each element 1 with probability p.
  Tensor flags(const Tensor::Shape& shape, double p) {
    Tensor t = host(shape, DType::U8);
    std::bernoulli_distribution d(p);
    for (int64_t i = 0; i < t.numel(); ++i) t.data<uint8_t>()[i] = d(rng_) ? 1 : 0;
    return t;
  }

  // Rounds host f32 values to the nearest bf16 in place (the CPU then sees exactly what
  // a bf16 GPU tensor holds).
  static void round_bf16(Tensor& h) {
    for (int64_t i = 0; i < h.numel(); ++i) h.data<float>()[i] = static_cast<float>(bf16(h.data<float>()[i]));
  }

  // Device copy of a dense host tensor (f32 converted to `dtype`; u8 / i32 as they are).
  Tensor upload(const Tensor& h, DType dtype) {
    Tensor d = dev(h.shape(), dtype);
    if (h.dtype() == DType::F32 && dtype == DType::BF16) {
      Tensor hb = host(h.shape(), DType::BF16);
      for (int64_t i = 0; i < h.numel(); ++i) hb.data<bf16>()[i] = bf16(h.data<float>()[i]);
      gm::cuda::copy(*gpu_, hb, d);
    } else {
      gm::cuda::copy(*gpu_, h, d);
    }
    return d;
  }
  Tensor upload(const Tensor& h) { return upload(h, h.dtype()); }

  // Host f32 copy of a device f32/bf16 tensor (any strides with a dense inner dimension).
  Tensor download(const Tensor& d) {
    Tensor h = host(d.shape(), d.dtype());
    gm::cuda::copy(*gpu_, d, h);
    if (d.dtype() != DType::BF16) return h;
    Tensor f = host(d.shape());
    for (int64_t i = 0; i < h.numel(); ++i) f.data<float>()[i] = static_cast<float>(h.data<bf16>()[i]);
    return f;
  }

  void poison(Tensor& d) { gm::cuda::fill(*gpu_, d, std::numeric_limits<float>::quiet_NaN()); }

  unsigned seed_ = 0;
  std::mt19937_64 rng_;
  CpuAllocator host_alloc_;
  std::unique_ptr<Context> gpu_;
  std::unique_ptr<Context> cpu_;
};
#endif

}  // namespace gm::test
