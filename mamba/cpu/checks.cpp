// Argument checks of the CPU ops (see checks.h).
#include "mamba/cpu/checks.h"

#include <sstream>
#include <stdexcept>

namespace gm::cpu::detail {

void fail(const char* op, const std::string& message) {
  throw std::invalid_argument(std::string("gm::cpu::") + op + ": " + message);
}

std::string shape_str(const Tensor::Shape& shape) {
  std::ostringstream os;
  os << "[";
  for (size_t i = 0; i < shape.size(); ++i) os << (i ? ", " : "") << shape[i];
  os << "]";
  return os.str();
}

void require_dtype(const char* op, const char* name, const Tensor& t, DType dtype) {
  if (!t.defined()) fail(op, std::string(name) + " is an undefined tensor");
  if (!t.device().is_cpu()) fail(op, std::string(name) + " must be on the CPU, got " + t.describe());
  if (t.dtype() == dtype) return;
  std::string msg = std::string(name) + " must be " + dtype_name(dtype) + ", got " + t.describe();
  if (t.dtype() == DType::BF16) msg += " (bf16 is a CUDA activation dtype; the CPU backend computes in f32)";
  fail(op, msg);
}

void require_shape(const char* op, const char* name, const Tensor& t, const Tensor::Shape& shape) {
  if (t.shape() != shape) fail(op, std::string(name) + " must have shape " + shape_str(shape) + ", got " + t.describe());
}

void require_contiguous(const char* op, const char* name, const Tensor& t) {
  if (!t.is_contiguous()) fail(op, std::string(name) + " must be contiguous, got a strided view " + t.describe());
}

void require_unit_inner_stride(const char* op, const char* name, const Tensor& t) {
  if (t.size(-1) > 1 && t.stride(-1) != 1)
    fail(op, std::string(name) + " must have a contiguous innermost dimension, got " + t.describe());
}

void require_dense(const char* op, const char* name, const Tensor& t, DType dtype, const Tensor::Shape& shape) {
  require_dtype(op, name, t, dtype);
  require_shape(op, name, t, shape);
  require_contiguous(op, name, t);
}

void require_rows(const char* op, const char* name, const Tensor& t, DType dtype, const Tensor::Shape& shape) {
  require_dtype(op, name, t, dtype);
  require_shape(op, name, t, shape);
  require_unit_inner_stride(op, name, t);
}

}  // namespace gm::cpu::detail
