// span_reduce on the CPU: sums (in double, rounded once to f32) or maxima of runs of rows
// of x [R, T, d], one output row per span. Spans run in parallel; each span's sum runs
// in row order, so the result does not depend on the thread count.
#include <algorithm>
#include <limits>
#include <string>
#include <vector>

#include "mamba/cpu/checks.h"
#include "mamba/ops.h"

namespace gm::cpu {

void span_reduce(Context& ctx, const Tensor& x, const Tensor& spans, bool max, Tensor& out) {
  const char* op = "span_reduce";
  detail::require_dtype(op, "x", x, DType::F32);
  detail::require_contiguous(op, "x", x);
  if (x.ndim() != 3) detail::fail(op, "x must be [R, T, d], got " + detail::shape_str(x.shape()));
  detail::require_dtype(op, "spans", spans, DType::I32);
  detail::require_contiguous(op, "spans", spans);
  if (spans.ndim() != 2 || spans.size(1) != 3)
    detail::fail(op, "spans must be [S, 3], got " + detail::shape_str(spans.shape()));
  const int64_t R = x.size(0), T = x.size(1), d = x.size(2), S = spans.size(0);
  detail::require_dense(op, "out", out, DType::F32, {S, d});
  const int32_t* sp = spans.data<int32_t>();
  for (int64_t s = 0; s < S; ++s) {
    const int64_t row = sp[3 * s], first = sp[3 * s + 1], end = sp[3 * s + 2];
    if (row < 0 || row >= R || first < 0 || end > T || first >= end)
      detail::fail(op, "span " + std::to_string(s) + " (row " + std::to_string(row) + ", " + std::to_string(first) +
                           ".." + std::to_string(end) + ") is empty or outside x " + detail::shape_str(x.shape()));
  }
  const float* xs = x.data<float>();
  float* o = out.data<float>();
#pragma omp parallel num_threads(ctx.threads())
  {
    std::vector<double> acc(static_cast<size_t>(d));
#pragma omp for schedule(dynamic, 1)
    for (int64_t s = 0; s < S; ++s) {
      const int64_t row = sp[3 * s], first = sp[3 * s + 1], end = sp[3 * s + 2];
      float* dst = o + s * d;
      const float* src = xs + (row * T + first) * d;
      if (max) {
        std::fill(dst, dst + d, -std::numeric_limits<float>::infinity());
        for (int64_t t = first; t < end; ++t, src += d)
          for (int64_t j = 0; j < d; ++j) dst[j] = std::max(dst[j], src[j]);
      } else {
        std::fill(acc.begin(), acc.end(), 0.0);
        for (int64_t t = first; t < end; ++t, src += d)
          for (int64_t j = 0; j < d; ++j) acc[static_cast<size_t>(j)] += src[j];
        for (int64_t j = 0; j < d; ++j) dst[j] = static_cast<float>(acc[static_cast<size_t>(j)]);
      }
    }
  }
}

}  // namespace gm::cpu
