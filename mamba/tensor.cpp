// Tensor views, shapes and the host allocator.
#include "mamba/tensor.h"

#include <cstdlib>
#include <new>
#include <sstream>
#include <stdexcept>

namespace gm {

size_t dtype_size(DType t) {
  switch (t) {
    case DType::F32: return 4;
    case DType::BF16: return 2;
    case DType::I32: return 4;
    case DType::U8: return 1;
  }
  return 0;
}

const char* dtype_name(DType t) {
  switch (t) {
    case DType::F32: return "f32";
    case DType::BF16: return "bf16";
    case DType::I32: return "i32";
    case DType::U8: return "u8";
  }
  return "?";
}

std::string Device::str() const {
  return is_cpu() ? std::string("cpu") : "cuda:" + std::to_string(index);
}

Device Device::parse(const std::string& s) {
  if (s == "cpu") return cpu();
  if (s == "cuda" || s == "gpu") return cuda(0);
  if (s.rfind("cuda:", 0) == 0) {
    const std::string n = s.substr(5);
    if (!n.empty() && n.find_first_not_of("0123456789") == std::string::npos) return cuda(std::stoi(n));
  }
  throw std::invalid_argument("unknown device '" + s + "' (expected cpu, cuda or cuda:N)");
}

static void check_shape(const Tensor::Shape& shape) {
  if (shape.empty() || shape.size() > Tensor::kMaxDims)
    throw std::invalid_argument("tensor must have 1 to 4 dimensions");
  for (int64_t s : shape)
    if (s < 0) throw std::invalid_argument("negative tensor dimension");
}

Tensor Tensor::wrap(void* data, const Shape& shape, DType dtype, Device device) {
  check_shape(shape);
  Tensor t;
  t.ptr_ = static_cast<char*>(data);
  t.ndim_ = static_cast<int>(shape.size());
  t.dtype_ = dtype;
  t.device_ = device;
  int64_t stride = 1;
  for (int d = t.ndim_ - 1; d >= 0; --d) {
    t.shape_[d] = shape[d];
    t.strides_[d] = stride;
    stride *= shape[d];
  }
  return t;
}

Tensor Tensor::empty(Allocator& alloc, const Shape& shape, DType dtype) {
  check_shape(shape);
  int64_t n = 1;
  for (int64_t s : shape) n *= s;
  const size_t bytes = static_cast<size_t>(n) * dtype_size(dtype);
  void* p = bytes ? alloc.allocate(bytes) : nullptr;
  Tensor t = wrap(p, shape, dtype, alloc.device());
  Allocator* a = &alloc;
  t.storage_ = std::shared_ptr<void>(p, [a, bytes](void* q) {
    if (q) a->deallocate(q, bytes);
  });
  return t;
}

int64_t Tensor::numel() const {
  if (ndim_ == 0) return 0;
  int64_t n = 1;
  for (int d = 0; d < ndim_; ++d) n *= shape_[d];
  return n;
}

bool Tensor::is_contiguous() const {
  int64_t stride = 1;
  for (int d = ndim_ - 1; d >= 0; --d) {
    if (shape_[d] != 1 && strides_[d] != stride) return false;
    stride *= shape_[d];
  }
  return true;
}

bool Tensor::rows_contiguous() const {
  if (ndim_ == 0) return true;
  if (shape_[ndim_ - 1] != 1 && strides_[ndim_ - 1] != 1) return false;
  if (ndim_ >= 2 && shape_[ndim_ - 2] != 1 && strides_[ndim_ - 2] != shape_[ndim_ - 1]) return false;
  return true;
}

std::string Tensor::describe() const {
  std::ostringstream os;
  os << dtype_name(dtype_) << "[";
  for (int d = 0; d < ndim_; ++d) os << (d ? ", " : "") << shape_[d];
  os << "] " << device_.str();
  return os.str();
}

Tensor Tensor::narrow(int dim, int64_t start, int64_t length) const {
  dim = norm_dim(dim);
  if (dim < 0 || dim >= ndim_ || start < 0 || length < 0 || start + length > shape_[dim])
    throw std::out_of_range("narrow out of range on " + describe());
  Tensor t = *this;
  t.ptr_ = ptr_ + start * strides_[dim] * static_cast<int64_t>(dtype_size(dtype_));
  t.shape_[dim] = length;
  return t;
}

Tensor Tensor::reshape(const Shape& shape) const {
  if (!is_contiguous()) throw std::invalid_argument("reshape of a non-contiguous tensor " + describe());
  check_shape(shape);
  int64_t n = 1;
  for (int64_t s : shape) n *= s;
  if (n != numel()) throw std::invalid_argument("reshape changes the element count of " + describe());
  Tensor t = wrap(ptr_, shape, dtype_, device_);
  t.storage_ = storage_;
  return t;
}

Tensor Tensor::operator[](int64_t i) const {
  if (ndim_ < 2 || i < 0 || i >= shape_[0]) throw std::out_of_range("index out of range on " + describe());
  Tensor t;
  t.storage_ = storage_;
  t.ptr_ = ptr_ + i * strides_[0] * static_cast<int64_t>(dtype_size(dtype_));
  t.ndim_ = ndim_ - 1;
  for (int d = 1; d < ndim_; ++d) {
    t.shape_[d - 1] = shape_[d];
    t.strides_[d - 1] = strides_[d];
  }
  t.dtype_ = dtype_;
  t.device_ = device_;
  return t;
}

void* CpuAllocator::allocate(size_t bytes) {
  const size_t rounded = (bytes + 63) / 64 * 64;
  void* p = std::aligned_alloc(64, rounded);
  if (!p) throw std::bad_alloc();
  const size_t now = in_use_ += bytes;
  size_t prev = peak_.load();
  while (now > prev && !peak_.compare_exchange_weak(prev, now)) {
  }
  return p;
}

void CpuAllocator::deallocate(void* p, size_t bytes) {
  std::free(p);
  in_use_ -= bytes;
}

}  // namespace gm
