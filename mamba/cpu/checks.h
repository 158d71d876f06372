// Argument checks at the boundary of the CPU ops, and the conversion of checked
// tensors into the raw views of strided.h. Every failure throws std::invalid_argument
// with a message "gm::cpu::<op>: <argument> ..." naming what was expected and what
// was given (dtype, shape, device).
#pragma once

#include <string>

#include "mamba/cpu/strided.h"
#include "mamba/tensor.h"

namespace gm::cpu::detail {

[[noreturn]] void fail(const char* op, const std::string& message);

// The tensor is defined, on the CPU and of dtype `dtype` (bf16 is rejected with a
// message saying it is a CUDA activation dtype).
void require_dtype(const char* op, const char* name, const Tensor& t, DType dtype);
// Exact shape.
void require_shape(const char* op, const char* name, const Tensor& t, const Tensor::Shape& shape);
void require_contiguous(const char* op, const char* name, const Tensor& t);
// Innermost dimension has stride 1 (outer strides are free).
void require_unit_inner_stride(const char* op, const char* name, const Tensor& t);

// dtype + shape + contiguity in one call, the common case.
void require_dense(const char* op, const char* name, const Tensor& t, DType dtype, const Tensor::Shape& shape);
// dtype + shape + unit inner stride: a [B, C, L] (or [B, L]) tensor read through Rows3 / Rows2.
void require_rows(const char* op, const char* name, const Tensor& t, DType dtype, const Tensor::Shape& shape);

std::string shape_str(const Tensor::Shape& shape);

template <class T>
Rows3<T> rows3(Tensor& t) {
  return {t.data<T>(), t.stride(0), t.stride(1)};
}
template <class T>
Rows3<const T> rows3(const Tensor& t) {
  return {t.data<T>(), t.stride(0), t.stride(1)};
}
template <class T>
Rows3<const T> rows3(const Tensor* t) {
  return t ? rows3<T>(*t) : Rows3<const T>{};
}
template <class T>
Rows3<T> rows3(Tensor* t) {
  return t ? rows3<T>(*t) : Rows3<T>{};
}
template <class T>
Rows2<const T> rows2(const Tensor* t) {
  return t ? Rows2<const T>{t->data<T>(), t->stride(0)} : Rows2<const T>{};
}

}  // namespace gm::cpu::detail
