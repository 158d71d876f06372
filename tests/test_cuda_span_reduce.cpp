// CUDA span_reduce against the CPU twin on fresh random inputs: sums within f32 rounding,
// maxima exactly, every span written, run-to-run bitwise identical.
#include "tests/test_cuda_support.h"

#ifdef GENOMAMBA_HAVE_CUDA
#include <algorithm>
#include <tuple>
#include <vector>

namespace gm::test {
namespace {

using CudaSpanReduce = CudaTest;

TEST_F(CudaSpanReduce, MatchesCpuAndIsDeterministic) {
  SCOPED_TRACE(seed_note());
  for (auto [R, T, d] : {std::tuple<int64_t, int64_t, int64_t>{1, 1, 1}, {4, 5000, 256}, {3, 70000, 130}}) {
    SCOPED_TRACE("R" + std::to_string(R) + " T" + std::to_string(T) + " d" + std::to_string(d));
    Tensor x = normal({R, T, d});
    std::vector<int32_t> sp = {0, 0, static_cast<int32_t>(T), static_cast<int32_t>(R - 1), static_cast<int32_t>(T - 1),
                               static_cast<int32_t>(T)};
    std::uniform_int_distribution<int64_t> row(0, R - 1), col(0, T - 1);
    for (int k = 0; k < 300; ++k) {
      const int64_t a = col(rng_);
      const int64_t len = std::uniform_int_distribution<int64_t>(1, std::min<int64_t>(T - a, 5000))(rng_);
      sp.insert(sp.end(), {static_cast<int32_t>(row(rng_)), static_cast<int32_t>(a), static_cast<int32_t>(a + len)});
    }
    const int64_t S = static_cast<int64_t>(sp.size() / 3);
    Tensor spans = host({S, 3}, DType::I32);
    std::copy(sp.begin(), sp.end(), spans.data<int32_t>());
    Tensor dx = upload(x), dspans = upload(spans);
    for (bool max : {false, true}) {
      Tensor ref = host({S, d});
      gm::cpu::span_reduce(*cpu_, x, spans, max, ref);
      Tensor dout = dev({S, d}, DType::F32), dout2 = dev({S, d}, DType::F32);
      poison(dout);
      poison(dout2);
      gm::cuda::span_reduce(*gpu_, dx, dspans, max, dout);
      gm::cuda::span_reduce(*gpu_, dx, dspans, max, dout2);
      const Tensor got = download(dout);
      if (max) {
        EXPECT_TRUE(bitwise_equal(got, ref));
      } else {
        EXPECT_LE(rel_error(got, ref), 1e-6);
      }
      EXPECT_TRUE(bitwise_equal(got, download(dout2)));
    }
  }
}

}  // namespace
}  // namespace gm::test
#endif
