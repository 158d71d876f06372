// Tensor: a shape, strides, dtype and device over a block of memory. No autograd.
//
// Conventions
// - Row-major; strides are in elements. Up to 4 dimensions.
// - A tensor either owns its storage (made by Tensor::empty through an Allocator)
//   or views someone else's (narrow, reshape, wrap). Views share ownership.
// - Ops accept tensors whose innermost dimension is contiguous; an outer
//   (batch) stride may be larger than the product of the inner sizes, which is
//   what narrow() along dimension 1 of a [B, C, L] tensor produces.
// - Layouts used by the model (B batch, L length, d d_model, D d_inner, N d_state):
//   token-major [B, L, d] for the residual stream, channel-major [B, C, L] inside
//   the mixer (as mamba_ssm), [B, L] for per-token masks.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <cstring>
#include <initializer_list>
#include <memory>
#include <string>
#include <vector>

namespace gm {

enum class DType : uint8_t { F32, BF16, I32, U8 };

size_t dtype_size(DType t);
const char* dtype_name(DType t);

// bfloat16 on the host: conversion with round-to-nearest-even (NaN stays NaN).
struct bf16 {
  uint16_t bits = 0;
  bf16() = default;
  explicit bf16(float f) {
    uint32_t u;
    std::memcpy(&u, &f, 4);
    if ((u & 0x7fffffffu) > 0x7f800000u) {
      bits = static_cast<uint16_t>((u >> 16) | 0x40u);
    } else {
      u += 0x7fffu + ((u >> 16) & 1u);
      bits = static_cast<uint16_t>(u >> 16);
    }
  }
  explicit operator float() const {
    uint32_t u = static_cast<uint32_t>(bits) << 16;
    float f;
    std::memcpy(&f, &u, 4);
    return f;
  }
};

struct Device {
  enum class Kind : uint8_t { CPU, CUDA };
  Kind kind = Kind::CPU;
  int index = 0;

  static Device cpu() { return {}; }
  static Device cuda(int i = 0) { return {Kind::CUDA, i}; }
  bool is_cuda() const { return kind == Kind::CUDA; }
  bool is_cpu() const { return kind == Kind::CPU; }
  std::string str() const;
  // "cpu", "cuda", "cuda:N"; throws std::invalid_argument otherwise.
  static Device parse(const std::string& s);
  bool operator==(const Device&) const = default;
};

// Memory provider for one device. Implementations keep their own statistics.
class Allocator {
 public:
  virtual ~Allocator() = default;
  virtual void* allocate(size_t bytes) = 0;
  virtual void deallocate(void* p, size_t bytes) = 0;
  virtual Device device() const = 0;
  // Bytes currently handed out and the high-water mark since the last reset.
  virtual size_t bytes_in_use() const = 0;
  virtual size_t peak_bytes() const = 0;
  virtual void reset_peak() = 0;
};

class Tensor {
 public:
  static constexpr int kMaxDims = 4;
  using Shape = std::vector<int64_t>;

  Tensor() = default;

  // Uninitialised contiguous tensor on the allocator's device.
  static Tensor empty(Allocator& alloc, const Shape& shape, DType dtype);
  // Non-owning view of memory the caller keeps alive.
  static Tensor wrap(void* data, const Shape& shape, DType dtype, Device device);

  bool defined() const { return ndim_ > 0; }
  int ndim() const { return ndim_; }
  int64_t size(int d) const { return shape_[norm_dim(d)]; }
  int64_t stride(int d) const { return strides_[norm_dim(d)]; }
  Shape shape() const { return Shape(shape_.begin(), shape_.begin() + ndim_); }
  int64_t numel() const;
  size_t nbytes() const { return static_cast<size_t>(numel()) * dtype_size(dtype_); }
  DType dtype() const { return dtype_; }
  Device device() const { return device_; }
  bool is_contiguous() const;
  // Innermost dimension has stride 1 and the next one is dense over it.
  bool rows_contiguous() const;
  std::string describe() const;  // e.g. "f32[8, 512, 4096] cuda:0"

  void* raw() { return ptr_; }
  const void* raw() const { return ptr_; }
  template <class T> T* data() { return static_cast<T*>(static_cast<void*>(ptr_)); }
  template <class T> const T* data() const { return static_cast<const T*>(static_cast<const void*>(ptr_)); }

  // Views (share storage).
  Tensor narrow(int dim, int64_t start, int64_t length) const;
  Tensor reshape(const Shape& shape) const;  // contiguous tensors only
  Tensor operator[](int64_t i) const;        // select along dim 0, drops it

 private:
  int norm_dim(int d) const { return d < 0 ? d + ndim_ : d; }
  std::shared_ptr<void> storage_;
  char* ptr_ = nullptr;
  std::array<int64_t, kMaxDims> shape_{};
  std::array<int64_t, kMaxDims> strides_{};
  int ndim_ = 0;
  DType dtype_ = DType::F32;
  Device device_{};
};

// Host allocator with 64-byte alignment and byte accounting.
class CpuAllocator final : public Allocator {
 public:
  void* allocate(size_t bytes) override;
  void deallocate(void* p, size_t bytes) override;
  Device device() const override { return Device::cpu(); }
  size_t bytes_in_use() const override { return in_use_; }
  size_t peak_bytes() const override { return peak_; }
  void reset_peak() override { peak_ = in_use_.load(); }

 private:
  std::atomic<size_t> in_use_{0};
  std::atomic<size_t> peak_{0};
};

}  // namespace gm
