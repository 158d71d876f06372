// The fast f32 conv1d (conv1d_fast.h) against the float instantiation of the reference
// (conv1d_ref.h) on rows long enough for its vector blocks, with document starts dense,
// sparse and absent, incoming state, SiLU on and off, several widths: without SiLU the
// outputs and dx are the reference's bits; with it they are within float rounding; the
// weight / bias gradients agree to float rounding; every SIMD level this CPU runs gives
// the same bits.
#include <gtest/gtest.h>

#include "mamba/cpu/conv1d_fast.h"
#include "tests/test_mamba_ops_helpers.h"

namespace gm {
namespace {

using namespace gm::cpu;

struct FastConvCase {
  const char* name;
  int64_t B, D, L, K;
  bool silu, bias, state;
  double start_rate;  // fraction of positions that start a document (0: no seq_start)
};
void PrintTo(const FastConvCase& c, std::ostream* os) { *os << c.name; }

struct FastConvData {
  FastConvCase cfg;
  std::vector<float> x, weight, bias, state, dout;
  std::vector<uint8_t> starts;

  explicit FastConvData(const FastConvCase& c) : cfg(c) {
    test::Rng rng(7);
    x = test::to_float(rng.normal(c.B * c.D * c.L));
    weight = test::to_float(rng.normal(c.D * c.K, 0.6));
    bias = test::to_float(rng.normal(c.D));
    state = test::to_float(rng.normal(c.B * c.D * (c.K - 1)));
    dout = test::to_float(rng.normal(c.B * c.D * c.L));
    if (c.start_rate > 0) {
      starts.resize(c.B * c.L);
      for (auto& s : starts) s = rng.uniform(1, 0, 1)[0] < c.start_rate ? 1 : 0;
      starts[0] = 1;
      starts[c.L - 2] = 1;  // a start inside the last window
    }
  }
  ConvDims dims() const { return {cfg.B, cfg.D, cfg.L, cfg.K}; }
  Rows3<const float> rows(const std::vector<float>& v) const { return dense_rows3<const float>(v.data(), cfg.D, cfg.L); }
  Rows2<const uint8_t> seq_start() const {
    return starts.empty() ? Rows2<const uint8_t>{} : dense_rows2<const uint8_t>(starts.data(), cfg.L);
  }
  const float* bias_ptr() const { return cfg.bias ? bias.data() : nullptr; }
  const float* state_ptr() const { return cfg.state ? state.data() : nullptr; }
};

struct ConvResults {
  std::vector<float> out, state_out, dx, dweight, dbias;
};

// fast = false: the reference's float instantiation.
ConvResults run(const FastConvData& d, bool fast, SimdLevel level, int threads) {
  const auto& c = d.cfg;
  ConvResults r;
  r.out.assign(c.B * c.D * c.L, NAN);
  r.state_out.assign(c.B * c.D * (c.K - 1), NAN);
  r.dx.assign(c.B * c.D * c.L, NAN);
  r.dweight.assign(c.D * c.K, 0.5f);  // accumulated into
  r.dbias.assign(c.D, -0.25f);
  const Rows3<float> out = dense_rows3<float>(r.out.data(), c.D, c.L), dx = dense_rows3<float>(r.dx.data(), c.D, c.L);
  float* dbias = c.bias ? r.dbias.data() : nullptr;
  if (fast) {
    conv1d_forward_fast(d.dims(), d.rows(d.x), d.weight.data(), d.bias_ptr(), d.seq_start(), d.state_ptr(), c.silu, out,
                        r.state_out.data(), threads, level);
    conv1d_backward_fast(d.dims(), d.rows(d.dout), d.rows(d.x), d.weight.data(), d.bias_ptr(), d.seq_start(),
                         d.state_ptr(), c.silu, dx, r.dweight.data(), dbias, threads, level);
  } else {
    conv1d_forward_ref<float>(d.dims(), d.rows(d.x), d.weight.data(), d.bias_ptr(), d.seq_start(), d.state_ptr(),
                              c.silu, out, r.state_out.data(), threads);
    conv1d_backward_ref<float>(d.dims(), d.rows(d.dout), d.rows(d.x), d.weight.data(), d.bias_ptr(), d.seq_start(),
                               d.state_ptr(), c.silu, dx, r.dweight.data(), dbias, threads);
  }
  return r;
}

const FastConvCase kFastCases[] = {
    {"silu_sparse_starts_state", 2, 5, 300, 4, true, true, true, 0.02},
    {"silu_dense_starts", 2, 3, 260, 4, true, true, false, 0.3},
    {"no_silu_sparse_starts_state", 2, 5, 300, 4, false, true, true, 0.02},
    {"no_silu_no_starts", 1, 4, 250, 4, false, false, true, 0.0},
    {"silu_no_starts_no_bias", 1, 4, 250, 4, true, false, false, 0.0},
    {"width_two", 2, 3, 200, 2, true, true, true, 0.05},
    {"width_one", 1, 3, 100, 1, false, true, false, 0.05},
    {"width_nine", 2, 3, 200, 9, true, true, true, 0.03},
    {"shorter_than_a_block", 2, 3, 13, 4, true, true, true, 0.1},
};

class FastConv : public ::testing::TestWithParam<FastConvCase> {};

TEST_P(FastConv, MatchesTheFloatReference) {
  const FastConvData d(GetParam());
  const ConvResults ref = run(d, false, SimdLevel::kBaseline, 1);
  const ConvResults fast = run(d, true, best_simd_level(), 2);
  auto dbl = [](const std::vector<float>& v) { return test::to_double(v); };
  EXPECT_EQ(fast.state_out, ref.state_out);  // copies of inputs
  if (!d.cfg.silu) {
    // Same products added in the same order in double: the reference's bits.
    EXPECT_EQ(fast.out, ref.out);
    EXPECT_EQ(fast.dx, ref.dx);
  } else {
    EXPECT_LT(test::rel_error(dbl(fast.out), dbl(ref.out)), 3e-7);
    EXPECT_LT(test::rel_error(dbl(fast.dx), dbl(ref.dx)), 3e-7);
  }
  EXPECT_LT(test::rel_error(dbl(fast.dweight), dbl(ref.dweight)), 3e-7);
  EXPECT_LT(test::rel_error(dbl(fast.dbias), dbl(ref.dbias)), 3e-7);
}

TEST_P(FastConv, EverySimdLevelGivesTheSameBits) {
  const FastConvData d(GetParam());
  const ConvResults base = run(d, true, SimdLevel::kBaseline, 3);
  for (int l = 1; l <= static_cast<int>(best_simd_level()); ++l) {
    const ConvResults r = run(d, true, static_cast<SimdLevel>(l), 1);
    const char* name = simd_level_name(static_cast<SimdLevel>(l));
    EXPECT_EQ(r.out, base.out) << name;
    EXPECT_EQ(r.dx, base.dx) << name;
    EXPECT_EQ(r.dweight, base.dweight) << name;
    EXPECT_EQ(r.dbias, base.dbias) << name;
  }
}

INSTANTIATE_TEST_SUITE_P(Cases, FastConv, ::testing::ValuesIn(kFastCases),
                         [](const auto& info) { return std::string(info.param.name); });

TEST(FastConv1d, RejectsALevelTheCpuLacks) {
  const SimdLevel beyond_any = static_cast<SimdLevel>(static_cast<int>(SimdLevel::kAvx512) + 1);
  EXPECT_THROW(run(FastConvData(kFastCases[0]), true, beyond_any, 1), std::invalid_argument);
}

}  // namespace
}  // namespace gm
