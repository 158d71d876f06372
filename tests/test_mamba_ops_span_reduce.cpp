// span_reduce on the CPU against a plain loop in double: sums and maxima of runs of rows,
// spans of every length (one row, a whole row of x, overlapping spans), bad spans rejected.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <stdexcept>
#include <vector>

#include "mamba/ops.h"
#include "tests/test_mamba_ops_helpers.h"

namespace gm::test {
namespace {

Tensor spans_tensor(Context& ctx, const std::vector<int32_t>& v) {
  Tensor t = ctx.empty({static_cast<int64_t>(v.size() / 3), 3}, DType::I32);
  std::copy(v.begin(), v.end(), t.data<int32_t>());
  return t;
}

TEST(SpanReduce, SumsAndMaximaMatchAPlainLoop) {
  CpuContext ctx(2);
  Rng rng(91);
  const int64_t R = 3, T = 257, d = 37;
  const std::vector<double> xv = rng.normal(static_cast<size_t>(R * T * d));
  Tensor x = f32_tensor(ctx, {R, T, d}, xv);
  std::vector<int32_t> sp = {0, 0, 1, 1, 0, 257, 2, 100, 101, 2, 5, 200, 0, 3, 250, 1, 3, 250};
  for (int k = 0; k < 20; ++k) {
    const int32_t row = static_cast<int32_t>(rng.index(R));
    const int32_t a = static_cast<int32_t>(rng.index(T));
    const int32_t b = a + 1 + static_cast<int32_t>(rng.index(T - a));
    sp.insert(sp.end(), {row, a, b});
  }
  Tensor spans = spans_tensor(ctx, sp);
  const int64_t S = spans.size(0);
  for (bool max : {false, true}) {
    Tensor out = ctx.empty({S, d}, DType::F32);
    ops::span_reduce(ctx, x, spans, max, out);
    for (int64_t s = 0; s < S; ++s) {
      for (int64_t j = 0; j < d; ++j) {
        double ref = max ? -std::numeric_limits<double>::infinity() : 0.0;
        for (int64_t t = sp[3 * s + 1]; t < sp[3 * s + 2]; ++t) {
          const double v = static_cast<float>(xv[static_cast<size_t>((sp[3 * s] * T + t) * d + j)]);
          ref = max ? std::max(ref, v) : ref + v;
        }
        const double got = out.data<float>()[s * d + j];
        ASSERT_NEAR(got, ref, 1e-6 * (1.0 + std::fabs(ref))) << "span " << s << " column " << j << " max " << max;
      }
    }
  }
}

TEST(SpanReduce, RejectsSpansOutsideX) {
  CpuContext ctx(1);
  Tensor x = f32_zeros(ctx, {2, 10, 4});
  Tensor out = ctx.empty({1, 4}, DType::F32);
  for (const std::vector<int32_t>& bad : {std::vector<int32_t>{2, 0, 1}, {0, 5, 5}, {0, 3, 11}, {-1, 0, 1}}) {
    Tensor spans = spans_tensor(ctx, bad);
    EXPECT_THROW(ops::span_reduce(ctx, x, spans, false, out), std::invalid_argument);
  }
}

}  // namespace
}  // namespace gm::test
