// Selective scan: finite differences of the double instantiation of the reference
// (every input, features on and off, resets, h0, L = 1 and L past a chunk), the f32
// op against the double reference, streaming in two chunks, document resets in a
// packed row, thread-count independence and argument checks.
#include <gtest/gtest.h>

#include "mamba/cpu/selective_scan_ref.h"
#include "mamba/ops.h"
#include "tests/test_mamba_ops_helpers.h"

namespace gm {
namespace {

using test::Rng;
using namespace gm::cpu;  // the reference templates; ops are still called as cpu::name

struct ScanCase {
  const char* name;
  int64_t B, D, N, L;
  bool z, Dskip, bias, h0, starts, softplus;
};
void PrintTo(const ScanCase& c, std::ostream* os) { *os << c.name; }

// Inputs in double (rounded to float, so the f32 op sees the same values) and the
// weights of the loss sum(out * w).
struct ScanData {
  ScanCase cfg;
  std::vector<double> u, delta, A, Bm, Cm, Dskip, z, bias, h0, w;
  std::vector<uint8_t> starts;

  ScanData(const ScanCase& c, uint64_t seed) : cfg(c) {
    Rng rng(seed);
    const size_t bdl = c.B * c.D * c.L, bnl = c.B * c.N * c.L;
    u = test::float_exact(rng.normal(bdl));
    // Raw delta around the softplus bend; positive step sizes when softplus is off.
    delta = test::float_exact(c.softplus ? rng.uniform(bdl, -2.5, 0.5) : rng.uniform(bdl, 0.05, 0.6));
    A = test::float_exact(rng.uniform(c.D * c.N, -2.0, -0.2));
    Bm = test::float_exact(rng.normal(bnl));
    Cm = test::float_exact(rng.normal(bnl));
    if (c.Dskip) Dskip = test::float_exact(rng.normal(c.D));
    if (c.z) z = test::float_exact(rng.normal(bdl));
    if (c.bias) bias = test::float_exact(rng.uniform(c.D, -1.0, 0.3));
    if (c.h0) h0 = test::float_exact(rng.normal(c.B * c.D * c.N));
    if (c.starts) {
      starts.resize(c.B * c.L);
      for (auto& s : starts) s = rng.uniform(1, 0, 1)[0] < 0.15 ? 1 : 0;
      starts[c.L - 1] = 1;  // a start on the last step, and possibly on the first
    }
    w = rng.normal(bdl);
  }

  ScanDims dims() const { return {cfg.B, cfg.D, cfg.L, cfg.N}; }
  static const double* opt(const std::vector<double>& v) { return v.empty() ? nullptr : v.data(); }

  ScanRefInputs<double> inputs() const {
    ScanRefInputs<double> in;
    in.u = dense_rows3<const double>(u.data(), cfg.D, cfg.L);
    in.delta = dense_rows3<const double>(delta.data(), cfg.D, cfg.L);
    in.A = A.data();
    in.B = dense_rows3<const double>(Bm.data(), cfg.N, cfg.L);
    in.C = dense_rows3<const double>(Cm.data(), cfg.N, cfg.L);
    in.Dskip = opt(Dskip);
    if (cfg.z) in.z = dense_rows3<const double>(z.data(), cfg.D, cfg.L);
    in.delta_bias = opt(bias);
    if (cfg.starts) in.seq_start = dense_rows2<const uint8_t>(starts.data(), cfg.L);
    in.h0 = opt(h0);
    in.delta_softplus = cfg.softplus;
    return in;
  }

  std::vector<double> forward(std::vector<double>* h_last = nullptr) const {
    std::vector<double> out(u.size());
    if (h_last) h_last->assign(cfg.B * cfg.D * cfg.N, 0.0);
    selective_scan_forward_ref<double>(dims(), inputs(), dense_rows3<double>(out.data(), cfg.D, cfg.L),
                                       h_last ? h_last->data() : nullptr, 1);
    return out;
  }
  double loss() const { return test::dot(forward(), w); }

  struct Grads {
    std::vector<double> du, ddelta, dA, dB, dC, dDskip, dz, dbias, dh0;
  };
  Grads backward() const {
    Grads g;
    g.du.assign(u.size(), NAN);
    g.ddelta.assign(u.size(), NAN);
    g.dA.assign(A.size(), NAN);
    g.dB.assign(Bm.size(), NAN);
    g.dC.assign(Cm.size(), NAN);
    g.dDskip.assign(Dskip.size(), NAN);
    g.dz.assign(z.size(), NAN);
    g.dbias.assign(bias.size(), NAN);
    g.dh0.assign(cfg.B * cfg.D * cfg.N, NAN);
    ScanRefGrads<double> r;
    r.du = dense_rows3<double>(g.du.data(), cfg.D, cfg.L);
    r.ddelta = dense_rows3<double>(g.ddelta.data(), cfg.D, cfg.L);
    r.dA = g.dA.data();
    r.dB = dense_rows3<double>(g.dB.data(), cfg.N, cfg.L);
    r.dC = dense_rows3<double>(g.dC.data(), cfg.N, cfg.L);
    r.dDskip = cfg.Dskip ? g.dDskip.data() : nullptr;
    if (cfg.z) r.dz = dense_rows3<double>(g.dz.data(), cfg.D, cfg.L);
    r.ddelta_bias = cfg.bias ? g.dbias.data() : nullptr;
    r.dh0 = g.dh0.data();
    selective_scan_backward_ref<double>(dims(), inputs(), dense_rows3<const double>(w.data(), cfg.D, cfg.L), r, 2);
    return g;
  }
};

const ScanCase kCases[] = {
    {"all_features", 2, 3, 4, 9, true, true, true, true, true, true},
    {"no_features", 2, 3, 4, 9, false, false, false, false, false, false},
    {"gate_only", 1, 2, 3, 6, true, false, false, false, false, true},
    {"h0_without_resets", 2, 2, 3, 7, false, true, true, true, false, true},
    {"length_one", 2, 3, 4, 1, true, true, true, true, false, true},
    {"past_one_chunk", 1, 2, 3, 300, true, true, true, true, true, true},
};

class ScanGradient : public ::testing::TestWithParam<ScanCase> {};

TEST_P(ScanGradient, MatchesFiniteDifferencesForEveryInput) {
  ScanData data(GetParam(), 11);
  const ScanData::Grads g = data.backward();
  Rng rng(5);
  // An absent h0 is a zero state; its gradient is still reported in dh0.
  ScanData with_h0 = data;
  if (with_h0.h0.empty()) with_h0.h0.assign(data.cfg.B * data.cfg.D * data.cfg.N, 0.0);
  auto check = [&](const char* what, std::vector<double>& x, const std::vector<double>& analytic,
                   const ScanData& owner) {
    if (x.empty()) return;
    const auto r = test::check_gradient([&] { return owner.loss(); }, x, analytic,
                                        test::sample_indices(rng, x.size(), 48));
    const double err = test::rel_error(r.analytic, r.numeric);
    EXPECT_LT(err, 1e-6) << what;
  };
  check("u", data.u, g.du, data);
  check("delta", data.delta, g.ddelta, data);
  check("A", data.A, g.dA, data);
  check("B", data.Bm, g.dB, data);
  check("C", data.Cm, g.dC, data);
  check("Dskip", data.Dskip, g.dDskip, data);
  check("z", data.z, g.dz, data);
  check("delta_bias", data.bias, g.dbias, data);
  check("h0", with_h0.h0, g.dh0, with_h0);
}

INSTANTIATE_TEST_SUITE_P(Cases, ScanGradient, ::testing::ValuesIn(kCases),
                         [](const auto& info) { return std::string(info.param.name); });

// The f32 op on tensors, built from ScanData.
struct ScanTensors {
  Tensor x_dbl, u, delta, A, B, C, Dskip, z, bias, starts, h0;
  ScanTensors(Context& ctx, const ScanData& d) {
    const auto& c = d.cfg;
    u = test::f32_tensor(ctx, {c.B, c.D, c.L}, d.u);
    delta = test::f32_tensor(ctx, {c.B, c.D, c.L}, d.delta);
    A = test::f32_tensor(ctx, {c.D, c.N}, d.A);
    // B and C are channel slices of one [B, R + 2N, L] tensor (R = 2), as x_proj's output is.
    x_dbl = ctx.empty({c.B, 2 + 2 * c.N, c.L}, DType::F32);
    for (int64_t b = 0; b < c.B; ++b)
      for (int64_t n = 0; n < c.N; ++n)
        for (int64_t t = 0; t < c.L; ++t) {
          x_dbl[b][2 + n].data<float>()[t] = static_cast<float>(d.Bm[(b * c.N + n) * c.L + t]);
          x_dbl[b][2 + c.N + n].data<float>()[t] = static_cast<float>(d.Cm[(b * c.N + n) * c.L + t]);
        }
    B = x_dbl.narrow(1, 2, c.N);
    C = x_dbl.narrow(1, 2 + c.N, c.N);
    if (c.Dskip) Dskip = test::f32_tensor(ctx, {c.D}, d.Dskip);
    if (c.z) z = test::f32_tensor(ctx, {c.B, c.D, c.L}, d.z);
    if (c.bias) bias = test::f32_tensor(ctx, {c.D}, d.bias);
    if (c.starts) starts = test::u8_tensor(ctx, {c.B, c.L}, d.starts);
    if (c.h0) h0 = test::f32_tensor(ctx, {c.B, c.D, c.N}, d.h0);
  }
  static const Tensor* opt(const Tensor& t) { return t.defined() ? &t : nullptr; }
  ScanInputs inputs(bool softplus) const {
    ScanInputs in;
    in.u = &u;
    in.delta = &delta;
    in.A = &A;
    in.B = &B;
    in.C = &C;
    in.Dskip = opt(Dskip);
    in.z = opt(z);
    in.delta_bias = opt(bias);
    in.seq_start = opt(starts);
    in.h0 = opt(h0);
    in.delta_softplus = softplus;
    return in;
  }
};

struct OpGrads {
  Tensor du, ddelta, dA, dB, dC, dDskip, dz, dbias, dh0;
  OpGrads(Context& ctx, const ScanCase& c) {
    du = test::f32_zeros(ctx, {c.B, c.D, c.L});
    ddelta = test::f32_zeros(ctx, {c.B, c.D, c.L});
    dA = test::f32_zeros(ctx, {c.D, c.N});
    dB = test::f32_zeros(ctx, {c.B, c.N, c.L});
    dC = test::f32_zeros(ctx, {c.B, c.N, c.L});
    if (c.Dskip) dDskip = test::f32_zeros(ctx, {c.D});
    if (c.z) dz = test::f32_zeros(ctx, {c.B, c.D, c.L});
    if (c.bias) dbias = test::f32_zeros(ctx, {c.D});
    dh0 = test::f32_zeros(ctx, {c.B, c.D, c.N});
  }
  static Tensor* opt(Tensor& t) { return t.defined() ? &t : nullptr; }
  ScanGrads grads() {
    return {&du, &ddelta, &dA, &dB, &dC, opt(dDskip), opt(dz), opt(dbias), &dh0};
  }
};

TEST_P(ScanGradient, FloatOpMatchesDoubleReference) {
  const ScanCase c = GetParam();
  ScanData data(c, 23);
  CpuContext ctx(2);
  ScanTensors t(ctx, data);
  Tensor out = ctx.empty({c.B, c.D, c.L}, DType::F32);
  Tensor h_last = ctx.empty({c.B, c.D, c.N}, DType::F32);
  cpu::selective_scan_fwd(ctx, t.inputs(c.softplus), out, &h_last, nullptr);
  std::vector<double> ref_h_last;
  const std::vector<double> ref_out = data.forward(&ref_h_last);
  EXPECT_LT(test::rel_error(test::values(out), ref_out), 2e-6);
  EXPECT_LT(test::rel_error(test::values(h_last), ref_h_last), 2e-6);

  Tensor dout = test::f32_tensor(ctx, {c.B, c.D, c.L}, test::float_exact(data.w));
  data.w = test::float_exact(data.w);
  OpGrads g(ctx, c);
  cpu::selective_scan_bwd(ctx, t.inputs(c.softplus), nullptr, dout, g.grads());
  const ScanData::Grads r = data.backward();
  const double tol = 2e-5;
  EXPECT_LT(test::rel_error(test::values(g.du), r.du), tol);
  EXPECT_LT(test::rel_error(test::values(g.ddelta), r.ddelta), tol);
  EXPECT_LT(test::rel_error(test::values(g.dA), r.dA), tol);
  EXPECT_LT(test::rel_error(test::values(g.dB), r.dB), tol);
  EXPECT_LT(test::rel_error(test::values(g.dC), r.dC), tol);
  EXPECT_LT(test::rel_error(test::values(g.dh0), r.dh0), tol);
  if (c.Dskip) {
    EXPECT_LT(test::rel_error(test::values(g.dDskip), r.dDskip), tol);
  }
  if (c.z) {
    EXPECT_LT(test::rel_error(test::values(g.dz), r.dz), tol);
  }
  if (c.bias) {
    EXPECT_LT(test::rel_error(test::values(g.dbias), r.dbias), tol);
  }
}

TEST(SelectiveScan, TwoChunksCarryingTheStateEqualOnePass) {
  const ScanCase c{"stream", 2, 3, 4, 300, true, true, true, true, true, true};
  ScanData data(c, 31);
  CpuContext ctx(2);
  ScanTensors t(ctx, data);
  Tensor whole = ctx.empty({c.B, c.D, c.L}, DType::F32);
  Tensor h_whole = ctx.empty({c.B, c.D, c.N}, DType::F32);
  cpu::selective_scan_fwd(ctx, t.inputs(true), whole, &h_whole, nullptr);

  const int64_t cut = 137;
  Tensor chunked = ctx.empty({c.B, c.D, c.L}, DType::F32);
  Tensor h_mid = ctx.empty({c.B, c.D, c.N}, DType::F32);
  Tensor h_end = ctx.empty({c.B, c.D, c.N}, DType::F32);
  for (int part = 0; part < 2; ++part) {
    const int64_t start = part ? cut : 0, len = part ? c.L - cut : cut;
    // Views along the length: rows keep the stride of the whole sequence.
    Tensor u = t.u.narrow(2, start, len), delta = t.delta.narrow(2, start, len), z = t.z.narrow(2, start, len);
    Tensor B = t.B.narrow(2, start, len), C = t.C.narrow(2, start, len), s = t.starts.narrow(1, start, len);
    Tensor out = chunked.narrow(2, start, len);
    ScanInputs in = t.inputs(true);
    in.u = &u, in.delta = &delta, in.z = &z, in.B = &B, in.C = &C, in.seq_start = &s;
    in.h0 = part ? &h_mid : &t.h0;
    cpu::selective_scan_fwd(ctx, in, out, part ? &h_end : &h_mid, nullptr);
  }
  EXPECT_TRUE(test::bitwise_equal(chunked, whole));
  EXPECT_TRUE(test::bitwise_equal(h_end, h_whole));
}

TEST(SelectiveScan, PackedDocumentsEqualSeparateRuns) {
  const ScanCase c{"packed", 1, 3, 4, 177, true, true, true, true, false, true};
  ScanData data(c, 41);
  const int64_t split = 100;
  data.starts.assign(c.L, 0);
  data.starts[0] = 1;  // hides h0
  data.starts[split] = 1;
  data.cfg.starts = true;
  CpuContext ctx(2);
  ScanTensors t(ctx, data);
  ScanInputs packed_in = t.inputs(true);
  Tensor out = ctx.empty({c.B, c.D, c.L}, DType::F32);
  Tensor dout = test::f32_tensor(ctx, {c.B, c.D, c.L}, data.w);
  OpGrads packed(ctx, c);
  cpu::selective_scan_fwd(ctx, packed_in, out, nullptr, nullptr);
  cpu::selective_scan_bwd(ctx, packed_in, nullptr, dout, packed.grads());
  for (float v : test::values(packed.dh0)) EXPECT_EQ(v, 0.0f);

  std::vector<double> dA_sum(c.D * c.N, 0.0), dD_sum(c.D, 0.0), dbias_sum(c.D, 0.0);
  for (int doc = 0; doc < 2; ++doc) {
    const int64_t start = doc ? split : 0, len = doc ? c.L - split : split;
    Tensor u = t.u.narrow(2, start, len), delta = t.delta.narrow(2, start, len), z = t.z.narrow(2, start, len);
    Tensor B = t.B.narrow(2, start, len), C = t.C.narrow(2, start, len), g = dout.narrow(2, start, len);
    ScanInputs in = packed_in;
    in.u = &u, in.delta = &delta, in.z = &z, in.B = &B, in.C = &C;
    in.seq_start = nullptr;
    in.h0 = nullptr;
    ScanCase sc = c;
    sc.L = len;
    Tensor alone = ctx.empty({c.B, c.D, len}, DType::F32);
    OpGrads grads(ctx, sc);
    cpu::selective_scan_fwd(ctx, in, alone, nullptr, nullptr);
    cpu::selective_scan_bwd(ctx, in, nullptr, g, grads.grads());
    auto same_span = [&](const Tensor& whole_t, const Tensor& part_t, const char* what) {
      const Tensor span = whole_t.narrow(2, start, len);
      for (int64_t b = 0; b < span.size(0); ++b)
        for (int64_t r = 0; r < span.size(1); ++r)
          for (int64_t i = 0; i < len; ++i)
            ASSERT_EQ(span[b][r].data<float>()[i], part_t[b][r].data<float>()[i]) << what << " doc " << doc;
    };
    same_span(out, alone, "out");
    same_span(packed.du, grads.du, "du");
    same_span(packed.ddelta, grads.ddelta, "ddelta");
    same_span(packed.dz, grads.dz, "dz");
    same_span(packed.dB, grads.dB, "dB");
    same_span(packed.dC, grads.dC, "dC");
    for (size_t i = 0; i < dA_sum.size(); ++i) dA_sum[i] += grads.dA.data<float>()[i];
    for (int64_t i = 0; i < c.D; ++i) {
      dD_sum[i] += grads.dDskip.data<float>()[i];
      dbias_sum[i] += grads.dbias.data<float>()[i];
    }
  }
  EXPECT_LT(test::rel_error(test::values(packed.dA), dA_sum), 1e-6);
  EXPECT_LT(test::rel_error(test::values(packed.dDskip), dD_sum), 1e-6);
  EXPECT_LT(test::rel_error(test::values(packed.dbias), dbias_sum), 1e-6);
}

TEST(SelectiveScan, ResultsDoNotDependOnTheThreadCount) {
  const ScanCase c{"threads", 2, 5, 4, 600, true, true, true, true, true, true};
  ScanData data(c, 53);
  std::vector<Tensor> results[2];
  for (int run = 0; run < 2; ++run) {
    CpuContext ctx(run ? 3 : 1);
    ScanTensors t(ctx, data);
    Tensor out = ctx.empty({c.B, c.D, c.L}, DType::F32);
    Tensor h_last = ctx.empty({c.B, c.D, c.N}, DType::F32);
    cpu::selective_scan_fwd(ctx, t.inputs(true), out, &h_last, nullptr);
    Tensor dout = test::f32_tensor(ctx, {c.B, c.D, c.L}, data.w);
    OpGrads g(ctx, c);
    cpu::selective_scan_bwd(ctx, t.inputs(true), nullptr, dout, g.grads());
    results[run] = {out, h_last, g.du, g.ddelta, g.dA, g.dB, g.dC, g.dDskip, g.dz, g.dbias, g.dh0};
  }
  for (size_t i = 0; i < results[0].size(); ++i)
    EXPECT_TRUE(test::bitwise_equal(results[0][i], results[1][i])) << "output #" << i;
}

TEST(SelectiveScan, RejectsMissingGradientsAndBf16) {
  const ScanCase c{"checks", 1, 2, 3, 5, true, true, true, false, false, true};
  ScanData data(c, 61);
  CpuContext ctx(1);
  ScanTensors t(ctx, data);
  Tensor dout = test::f32_tensor(ctx, {c.B, c.D, c.L}, data.w);
  OpGrads g(ctx, c);
  ScanGrads grads = g.grads();
  grads.dz = nullptr;
  EXPECT_THROW(cpu::selective_scan_bwd(ctx, t.inputs(true), nullptr, dout, grads), std::invalid_argument);
  Tensor u16 = ctx.empty({c.B, c.D, c.L}, DType::BF16);
  ScanInputs in = t.inputs(true);
  in.u = &u16;
  Tensor out = ctx.empty({c.B, c.D, c.L}, DType::F32);
  EXPECT_THROW(cpu::selective_scan_fwd(ctx, in, out, nullptr, nullptr), std::invalid_argument);
  // `saved` holds one state per chunk, not per step, and a wrongly sized one is refused.
  EXPECT_EQ(cpu::selective_scan_saved_numel(ctx, 2, 8, 1 << 20, 16), 2 * 8 * ((1 << 20) / kScanChunk) * 16);
  Tensor wrong = ctx.empty({cpu::selective_scan_saved_numel(ctx, c.B, c.D, c.L, c.N) + 1}, DType::F32);
  EXPECT_THROW(cpu::selective_scan_fwd(ctx, t.inputs(true), out, nullptr, &wrong), std::invalid_argument);
}

}  // namespace
}  // namespace gm
