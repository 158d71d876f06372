// Raw-pointer views used by the reference kernels (mamba/cpu/*_ref.h), which are
// templates over the scalar type and know nothing about Tensor.
// Rows3: a [B, C, L] array whose rows (innermost dimension, length L) are contiguous,
// with arbitrary batch and channel strides in elements (what narrow() produces on a
// channel-major tensor). Rows2: a [B, L] array with contiguous rows and a batch stride.
// A default-constructed view is "absent" (feature off).
#pragma once

#include <cstdint>

namespace gm::cpu {

template <class T>
struct Rows3 {
  T* data = nullptr;
  int64_t batch_stride = 0;
  int64_t row_stride = 0;

  T* row(int64_t b, int64_t c) const { return data + b * batch_stride + c * row_stride; }
  explicit operator bool() const { return data != nullptr; }
};

template <class T>
struct Rows2 {
  T* data = nullptr;
  int64_t batch_stride = 0;

  T* row(int64_t b) const { return data + b * batch_stride; }
  explicit operator bool() const { return data != nullptr; }
};

// A dense [B, C, L] array.
template <class T>
Rows3<T> dense_rows3(T* p, int64_t channels, int64_t length) {
  return {p, channels * length, length};
}

template <class T>
Rows2<T> dense_rows2(T* p, int64_t length) {
  return {p, length};
}

}  // namespace gm::cpu
