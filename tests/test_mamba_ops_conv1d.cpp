// Causal depthwise conv1d: finite differences of the double reference (SiLU, bias,
// document starts and incoming state on and off), the f32 op against it, streaming
// in chunks (one shorter than the kernel) carrying the state, packed documents, and
// thread-count independence.
#include <gtest/gtest.h>

#include "mamba/cpu/conv1d_ref.h"
#include "mamba/ops.h"
#include "tests/test_mamba_ops_helpers.h"

namespace gm {
namespace {

using test::Rng;
using namespace gm::cpu;  // the reference templates; ops are still called as cpu::name

struct ConvCase {
  const char* name;
  int64_t B, D, L, K;
  bool silu, bias, starts, state;
};
void PrintTo(const ConvCase& c, std::ostream* os) { *os << c.name; }

struct ConvData {
  ConvCase cfg;
  std::vector<double> x, weight, bias, state, w;
  std::vector<uint8_t> starts;

  ConvData(const ConvCase& c, uint64_t seed) : cfg(c) {
    Rng rng(seed);
    x = test::float_exact(rng.normal(c.B * c.D * c.L));
    weight = test::float_exact(rng.normal(c.D * c.K, 0.6));
    if (c.bias) bias = test::float_exact(rng.normal(c.D));
    if (c.state) state = test::float_exact(rng.normal(c.B * c.D * (c.K - 1)));
    if (c.starts) {
      starts.resize(c.B * c.L);
      for (auto& s : starts) s = rng.uniform(1, 0, 1)[0] < 0.15 ? 1 : 0;
    }
    w = test::float_exact(rng.normal(c.B * c.D * c.L));
  }
  ConvDims dims() const { return {cfg.B, cfg.D, cfg.L, cfg.K}; }
  Rows2<const uint8_t> seq_start() const {
    return cfg.starts ? dense_rows2<const uint8_t>(starts.data(), cfg.L) : Rows2<const uint8_t>{};
  }
  const double* opt(const std::vector<double>& v) const { return v.empty() ? nullptr : v.data(); }

  std::vector<double> forward(std::vector<double>* state_out = nullptr) const {
    std::vector<double> out(x.size());
    if (state_out) state_out->assign(cfg.B * cfg.D * (cfg.K - 1), NAN);
    conv1d_forward_ref<double>(dims(), dense_rows3<const double>(x.data(), cfg.D, cfg.L), weight.data(), opt(bias),
                               seq_start(), opt(state), cfg.silu, dense_rows3<double>(out.data(), cfg.D, cfg.L),
                               state_out ? state_out->data() : nullptr, 1);
    return out;
  }
  double loss() const { return test::dot(forward(), w); }
  // dx, and the increments of dweight / dbias over the given starting values.
  void backward(std::vector<double>& dx, std::vector<double>& dweight, std::vector<double>& dbias) const {
    dx.assign(x.size(), NAN);
    conv1d_backward_ref<double>(dims(), dense_rows3<const double>(w.data(), cfg.D, cfg.L),
                                dense_rows3<const double>(x.data(), cfg.D, cfg.L), weight.data(), opt(bias),
                                seq_start(), opt(state), cfg.silu, dense_rows3<double>(dx.data(), cfg.D, cfg.L),
                                dweight.data(), cfg.bias ? dbias.data() : nullptr, 2);
  }
};

const ConvCase kCases[] = {
    {"silu_bias_starts_state", 2, 3, 11, 4, true, true, true, true},
    {"plain", 2, 3, 11, 4, false, false, false, false},
    {"state_no_starts", 1, 2, 9, 4, true, true, false, true},
    {"width_two", 2, 2, 7, 2, true, false, true, true},
    {"length_one", 2, 3, 1, 4, true, true, false, true},
    {"width_one", 1, 2, 5, 1, false, true, true, false},
};

class ConvGradient : public ::testing::TestWithParam<ConvCase> {};

TEST_P(ConvGradient, MatchesFiniteDifferencesAndAccumulates) {
  ConvData data(GetParam(), 3);
  Rng rng(9);
  const std::vector<double> dweight0 = rng.normal(data.weight.size());
  std::vector<double> dx, dweight = dweight0, dbias = rng.normal(data.bias.size());
  const std::vector<double> dbias_start = dbias;
  data.backward(dx, dweight, dbias);
  std::vector<double> dweight_inc(dweight.size()), dbias_inc(dbias.size());
  for (size_t i = 0; i < dweight.size(); ++i) dweight_inc[i] = dweight[i] - dweight0[i];
  for (size_t i = 0; i < dbias.size(); ++i) dbias_inc[i] = dbias[i] - dbias_start[i];
  auto loss = [&] { return data.loss(); };
  auto r = test::check_gradient(loss, data.x, dx);
  EXPECT_LT(test::rel_error(r.analytic, r.numeric), 1e-7) << "x";
  r = test::check_gradient(loss, data.weight, dweight_inc);
  EXPECT_LT(test::rel_error(r.analytic, r.numeric), 1e-7) << "weight";
  if (!data.bias.empty()) {
    r = test::check_gradient(loss, data.bias, dbias_inc);
    EXPECT_LT(test::rel_error(r.analytic, r.numeric), 1e-7) << "bias";
  }
}

INSTANTIATE_TEST_SUITE_P(Cases, ConvGradient, ::testing::ValuesIn(kCases),
                         [](const auto& info) { return std::string(info.param.name); });

// The f32 op's tensors, built from ConvData.
struct ConvTensors {
  Tensor x, weight, bias, starts, state;
  ConvTensors(Context& ctx, const ConvData& d) {
    const auto& c = d.cfg;
    x = test::f32_tensor(ctx, {c.B, c.D, c.L}, d.x);
    weight = test::f32_tensor(ctx, {c.D, c.K}, d.weight);
    if (c.bias) bias = test::f32_tensor(ctx, {c.D}, d.bias);
    if (c.starts) starts = test::u8_tensor(ctx, {c.B, c.L}, d.starts);
    if (c.state) state = test::f32_tensor(ctx, {c.B, c.D, c.K - 1}, d.state);
  }
  static const Tensor* opt(const Tensor& t) { return t.defined() ? &t : nullptr; }
};

TEST_P(ConvGradient, FloatOpMatchesDoubleReference) {
  const ConvCase c = GetParam();
  ConvData data(c, 17);
  CpuContext ctx(2);
  ConvTensors t(ctx, data);
  Tensor out = ctx.empty({c.B, c.D, c.L}, DType::F32);
  Tensor state_out = ctx.empty({c.B, c.D, c.K - 1}, DType::F32);
  cpu::conv1d_fwd(ctx, t.x, t.weight, t.opt(t.bias), t.opt(t.starts), t.opt(t.state), c.silu, out, &state_out);
  std::vector<double> ref_state;
  EXPECT_LT(test::rel_error(test::values(out), data.forward(&ref_state)), 1e-6);
  EXPECT_EQ(test::values(state_out), ref_state);  // a copy of inputs, exact

  Tensor dout = test::f32_tensor(ctx, {c.B, c.D, c.L}, data.w);
  Tensor dx = ctx.empty({c.B, c.D, c.L}, DType::F32);
  Tensor dweight = test::f32_zeros(ctx, {c.D, c.K});
  Tensor dbias = test::f32_zeros(ctx, {c.D});
  cpu::conv1d_bwd(ctx, dout, t.x, t.weight, t.opt(t.bias), t.opt(t.starts), t.opt(t.state), c.silu, dx, dweight,
                  c.bias ? &dbias : nullptr);
  std::vector<double> rdx, rdw(c.D * c.K, 0.0), rdb(c.bias ? c.D : 0, 0.0);
  data.backward(rdx, rdw, rdb);
  EXPECT_LT(test::rel_error(test::values(dx), rdx), 1e-6);
  EXPECT_LT(test::rel_error(test::values(dweight), rdw), 1e-6);
  if (c.bias) {
    EXPECT_LT(test::rel_error(test::values(dbias), rdb), 1e-6);
  }
}

TEST(Conv1d, ChunksCarryingTheStateEqualOnePass) {
  const ConvCase c{"stream", 2, 3, 50, 4, true, true, true, true};
  ConvData data(c, 29);
  CpuContext ctx(2);
  ConvTensors t(ctx, data);
  Tensor whole = ctx.empty({c.B, c.D, c.L}, DType::F32);
  Tensor state_whole = ctx.empty({c.B, c.D, c.K - 1}, DType::F32);
  cpu::conv1d_fwd(ctx, t.x, t.weight, &t.bias, &t.starts, &t.state, true, whole, &state_whole);

  // The first chunk is shorter than the K - 1 inputs the state holds.
  const int64_t cuts[] = {0, 2, 30, c.L};
  Tensor chunked = ctx.empty({c.B, c.D, c.L}, DType::F32);
  Tensor state = t.state;
  for (int i = 0; i < 3; ++i) {
    const int64_t start = cuts[i], len = cuts[i + 1] - cuts[i];
    Tensor x = t.x.narrow(2, start, len), s = t.starts.narrow(1, start, len), out = chunked.narrow(2, start, len);
    Tensor next = ctx.empty({c.B, c.D, c.K - 1}, DType::F32);
    cpu::conv1d_fwd(ctx, x, t.weight, &t.bias, &s, &state, true, out, &next);
    state = next;
  }
  EXPECT_TRUE(test::bitwise_equal(chunked, whole));
  EXPECT_TRUE(test::bitwise_equal(state, state_whole));
}

TEST(Conv1d, PackedDocumentsEqualSeparateRuns) {
  const ConvCase c{"packed", 1, 3, 40, 4, true, true, false, true};
  ConvData data(c, 37);
  const int64_t split = 23;
  CpuContext ctx(2);
  ConvTensors t(ctx, data);
  std::vector<uint8_t> starts(c.L, 0);
  starts[0] = 1;  // hides the incoming state
  starts[split] = 1;
  Tensor s = test::u8_tensor(ctx, {1, c.L}, starts);
  Tensor out = ctx.empty({1, c.D, c.L}, DType::F32);
  Tensor dout = test::f32_tensor(ctx, {1, c.D, c.L}, data.w);
  Tensor dx = ctx.empty({1, c.D, c.L}, DType::F32);
  Tensor dweight = test::f32_zeros(ctx, {c.D, c.K}), dbias = test::f32_zeros(ctx, {c.D});
  cpu::conv1d_fwd(ctx, t.x, t.weight, &t.bias, &s, &t.state, true, out, nullptr);
  cpu::conv1d_bwd(ctx, dout, t.x, t.weight, &t.bias, &s, &t.state, true, dx, dweight, &dbias);

  Tensor dweight_sep = test::f32_zeros(ctx, {c.D, c.K}), dbias_sep = test::f32_zeros(ctx, {c.D});
  for (int doc = 0; doc < 2; ++doc) {
    const int64_t start = doc ? split : 0, len = doc ? c.L - split : split;
    Tensor x = t.x.narrow(2, start, len), g = dout.narrow(2, start, len);
    Tensor alone = ctx.empty({1, c.D, len}, DType::F32), dx_alone = ctx.empty({1, c.D, len}, DType::F32);
    cpu::conv1d_fwd(ctx, x, t.weight, &t.bias, nullptr, nullptr, true, alone, nullptr);
    cpu::conv1d_bwd(ctx, g, x, t.weight, &t.bias, nullptr, nullptr, true, dx_alone, dweight_sep, &dbias_sep);
    for (int64_t ch = 0; ch < c.D; ++ch)
      for (int64_t i = 0; i < len; ++i) {
        ASSERT_EQ(out[0][ch].data<float>()[start + i], alone[0][ch].data<float>()[i]) << "doc " << doc;
        ASSERT_EQ(dx[0][ch].data<float>()[start + i], dx_alone[0][ch].data<float>()[i]) << "doc " << doc;
      }
  }
  EXPECT_LT(test::rel_error(test::values(dweight), test::values(dweight_sep)), 1e-6);
  EXPECT_LT(test::rel_error(test::values(dbias), test::values(dbias_sep)), 1e-6);
}

TEST(Conv1d, ResultsDoNotDependOnTheThreadCount) {
  const ConvCase c{"threads", 2, 7, 500, 4, true, true, true, true};
  ConvData data(c, 43);
  std::vector<Tensor> results[2];
  for (int run = 0; run < 2; ++run) {
    CpuContext ctx(run ? 3 : 1);
    ConvTensors t(ctx, data);
    Tensor out = ctx.empty({c.B, c.D, c.L}, DType::F32), state_out = ctx.empty({c.B, c.D, c.K - 1}, DType::F32);
    cpu::conv1d_fwd(ctx, t.x, t.weight, &t.bias, &t.starts, &t.state, true, out, &state_out);
    Tensor dout = test::f32_tensor(ctx, {c.B, c.D, c.L}, data.w);
    Tensor dx = ctx.empty({c.B, c.D, c.L}, DType::F32);
    Tensor dweight = test::f32_zeros(ctx, {c.D, c.K}), dbias = test::f32_zeros(ctx, {c.D});
    cpu::conv1d_bwd(ctx, dout, t.x, t.weight, &t.bias, &t.starts, &t.state, true, dx, dweight, &dbias);
    results[run] = {out, state_out, dx, dweight, dbias};
  }
  for (size_t i = 0; i < results[0].size(); ++i)
    EXPECT_TRUE(test::bitwise_equal(results[0][i], results[1][i])) << "output #" << i;
}

TEST(Conv1d, RejectsMismatchedShapes) {
  CpuContext ctx(1);
  Tensor x = test::f32_zeros(ctx, {1, 3, 8}), weight = test::f32_zeros(ctx, {2, 4}), out = test::f32_zeros(ctx, {1, 3, 8});
  EXPECT_THROW(cpu::conv1d_fwd(ctx, x, weight, nullptr, nullptr, nullptr, true, out, nullptr), std::invalid_argument);
}

}  // namespace
}  // namespace gm
