// Memory and elementwise ops on the CPU: copy (cpu->cpu, with f32<->bf16 casts), fill,
// axpy, scale, neg_exp, mul, and the deterministic reductions sum / sum_squares /
// has_nonfinite. Reductions add fixed blocks of kReduceBlock elements in double and
// combine the block partials in block order, so the result does not depend on the
// thread count.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "mamba/cpu/checks.h"
#include "mamba/ops.h"

namespace gm::cpu {
namespace {

using detail::fail;

constexpr int64_t kReduceBlock = 1 << 14;

// Calls fn(src_offset, dst_offset) (in elements) for every innermost row of two
// tensors of the same shape, rows in parallel.
template <class Fn>
void for_each_row_pair(const Context& ctx, const Tensor& a, const Tensor& b, Fn fn) {
  const int nd = a.ndim();
  const int64_t rows = a.numel() / std::max<int64_t>(1, a.size(-1));
  if (a.size(-1) == 0) return;
#pragma omp parallel for num_threads(ctx.threads()) schedule(static)
  for (int64_t r = 0; r < rows; ++r) {
    int64_t rest = r, off_a = 0, off_b = 0;
    for (int d = nd - 2; d >= 0; --d) {
      const int64_t i = rest % a.size(d);
      rest /= a.size(d);
      off_a += i * a.stride(d);
      off_b += i * b.stride(d);
    }
    fn(off_a, off_b);
  }
}

template <class Fn>
void for_each_row(const Context& ctx, const Tensor& t, Fn fn) {
  for_each_row_pair(ctx, t, t, [&](int64_t off, int64_t) { fn(off); });
}

void require_f32_contiguous(const char* op, const char* name, const Tensor& t) {
  detail::require_dtype(op, name, t, DType::F32);
  detail::require_contiguous(op, name, t);
}

void require_same_shape(const char* op, const Tensor& a, const Tensor& b) {
  if (a.shape() != b.shape()) fail(op, "shapes differ: " + a.describe() + " vs " + b.describe());
}

// Deterministic blocked sum of f(x[i]) in double.
template <class F>
double blocked_sum(const Context& ctx, const float* x, int64_t n, F f) {
  const int64_t blocks = (n + kReduceBlock - 1) / kReduceBlock;
  std::vector<double> partial(static_cast<size_t>(blocks), 0.0);
#pragma omp parallel for num_threads(ctx.threads()) schedule(static)
  for (int64_t blk = 0; blk < blocks; ++blk) {
    const int64_t lo = blk * kReduceBlock, hi = std::min(n, lo + kReduceBlock);
    double s = 0;
    for (int64_t i = lo; i < hi; ++i) s += f(static_cast<double>(x[i]));
    partial[blk] = s;
  }
  double total = 0;
  for (double p : partial) total += p;
  return total;
}

}  // namespace

void copy(Context& ctx, const Tensor& src, Tensor& dst) {
  const char* op = "copy";
  if (!src.defined() || !dst.defined()) fail(op, "undefined tensor");
  if (!src.device().is_cpu() || !dst.device().is_cpu())
    fail(op, "the CPU backend copies cpu->cpu only, got " + src.describe() + " -> " + dst.describe());
  require_same_shape(op, src, dst);
  detail::require_unit_inner_stride(op, "src", src);
  detail::require_unit_inner_stride(op, "dst", dst);
  const int64_t n = src.size(-1);
  const DType s = src.dtype(), d = dst.dtype();
  const char* sp = static_cast<const char*>(src.raw());
  char* dp = static_cast<char*>(dst.raw());
  if (s == d) {
    const size_t es = dtype_size(s);
    for_each_row_pair(ctx, src, dst, [&](int64_t os, int64_t od) {
      std::memcpy(dp + od * es, sp + os * es, static_cast<size_t>(n) * es);
    });
  } else if (s == DType::F32 && d == DType::BF16) {
    for_each_row_pair(ctx, src, dst, [&](int64_t os, int64_t od) {
      const float* in = src.data<float>() + os;
      bf16* out = dst.data<bf16>() + od;
      for (int64_t i = 0; i < n; ++i) out[i] = bf16(in[i]);
    });
  } else if (s == DType::BF16 && d == DType::F32) {
    for_each_row_pair(ctx, src, dst, [&](int64_t os, int64_t od) {
      const bf16* in = src.data<bf16>() + os;
      float* out = dst.data<float>() + od;
      for (int64_t i = 0; i < n; ++i) out[i] = static_cast<float>(in[i]);
    });
  } else {
    fail(op, std::string("no conversion from ") + dtype_name(s) + " to " + dtype_name(d));
  }
}

void fill(Context& ctx, Tensor& t, float value) {
  const char* op = "fill";
  if (!t.defined()) fail(op, "undefined tensor");
  if (!t.device().is_cpu()) fail(op, "tensor must be on the CPU, got " + t.describe());
  detail::require_unit_inner_stride(op, "t", t);
  const int64_t n = t.size(-1);
  switch (t.dtype()) {
    case DType::F32:
      for_each_row(ctx, t, [&](int64_t o) { std::fill_n(t.data<float>() + o, n, value); });
      break;
    case DType::BF16:
      for_each_row(ctx, t, [&](int64_t o) { std::fill_n(t.data<bf16>() + o, n, bf16(value)); });
      break;
    case DType::I32:
      for_each_row(ctx, t, [&](int64_t o) { std::fill_n(t.data<int32_t>() + o, n, static_cast<int32_t>(value)); });
      break;
    case DType::U8:
      for_each_row(ctx, t, [&](int64_t o) { std::fill_n(t.data<uint8_t>() + o, n, static_cast<uint8_t>(value)); });
      break;
  }
}

void axpy(Context& ctx, float alpha, const Tensor& x, Tensor& y) {
  require_f32_contiguous("axpy", "x", x);
  require_f32_contiguous("axpy", "y", y);
  require_same_shape("axpy", x, y);
  const float* xp = x.data<float>();
  float* yp = y.data<float>();
  const int64_t n = x.numel();
#pragma omp parallel for num_threads(ctx.threads()) schedule(static)
  for (int64_t i = 0; i < n; ++i) yp[i] += alpha * xp[i];
}

void scale(Context& ctx, Tensor& x, float s) {
  require_f32_contiguous("scale", "x", x);
  float* p = x.data<float>();
  const int64_t n = x.numel();
#pragma omp parallel for num_threads(ctx.threads()) schedule(static)
  for (int64_t i = 0; i < n; ++i) p[i] *= s;
}

void neg_exp(Context& ctx, const Tensor& in, Tensor& out) {
  require_f32_contiguous("neg_exp", "in", in);
  require_f32_contiguous("neg_exp", "out", out);
  require_same_shape("neg_exp", in, out);
  const float* a = in.data<float>();
  float* o = out.data<float>();
  const int64_t n = in.numel();
#pragma omp parallel for num_threads(ctx.threads()) schedule(static)
  for (int64_t i = 0; i < n; ++i) o[i] = -std::exp(a[i]);
}

void mul(Context& ctx, const Tensor& a, const Tensor& b, Tensor& out) {
  require_f32_contiguous("mul", "a", a);
  require_f32_contiguous("mul", "b", b);
  require_f32_contiguous("mul", "out", out);
  require_same_shape("mul", a, b);
  require_same_shape("mul", a, out);
  const float* ap = a.data<float>();
  const float* bp = b.data<float>();
  float* o = out.data<float>();
  const int64_t n = a.numel();
#pragma omp parallel for num_threads(ctx.threads()) schedule(static)
  for (int64_t i = 0; i < n; ++i) o[i] = ap[i] * bp[i];
}

double sum(Context& ctx, const Tensor& x) {
  require_f32_contiguous("sum", "x", x);
  return blocked_sum(ctx, x.data<float>(), x.numel(), [](double v) { return v; });
}

double sum_squares(Context& ctx, const Tensor& x) {
  require_f32_contiguous("sum_squares", "x", x);
  return blocked_sum(ctx, x.data<float>(), x.numel(), [](double v) { return v * v; });
}

bool has_nonfinite(Context& ctx, const Tensor& x) {
  require_f32_contiguous("has_nonfinite", "x", x);
  const float* p = x.data<float>();
  const int64_t n = x.numel();
  int found = 0;
#pragma omp parallel for num_threads(ctx.threads()) schedule(static) reduction(| : found)
  for (int64_t i = 0; i < n; ++i) found |= std::isfinite(p[i]) ? 0 : 1;
  return found != 0;
}

}  // namespace gm::cpu
