// The fast f32 selective scan (selective_scan_fast.h) on shapes that exercise its
// structure: several chunks, spans and channel blocks, two lane groups (N = 20), a
// small state (N = 3), document starts, h0, z, Dskip, delta_bias on and off, and large
// steps that force the general exp path. Judged against the double reference
// (selective_scan_ref.h) and its float instantiation (the previous CPU results); the FMA
// levels (AVX2+FMA, AVX-512) agree bit for bit, baseline x86-64 to float rounding; the
// thread count and the forward's checkpoints change no bit.
#include <gtest/gtest.h>

#include "mamba/cpu/selective_scan_fast.h"
#include "tests/test_mamba_ops_helpers.h"

namespace gm {
namespace {

using namespace gm::cpu;

struct FastScanCase {
  const char* name;
  int64_t B, D, N, L;
  bool z, Dskip, bias, h0, softplus;
  double start_rate;   // 0: no seq_start
  double delta_hi;     // raw delta drawn in [delta_lo, delta_hi]
  double delta_lo;
};
void PrintTo(const FastScanCase& c, std::ostream* os) { *os << c.name; }

const FastScanCase kFastCases[] = {
    {"spans_blocks_all_features", 2, 40, 16, 1300, true, true, true, true, true, 0.004, 0.5, -2.5},
    {"two_lane_groups", 1, 20, 20, 600, true, true, true, true, true, 0.01, 0.5, -2.5},
    {"small_state_no_gate", 2, 18, 3, 300, false, false, true, false, true, 0.0, 0.5, -2.5},
    {"no_features", 1, 17, 16, 520, false, false, false, false, false, 0.0, 0.6, 0.05},
    // Steps up to 60 with A down to -2: dt * A below -86 in most chunks (the general exp).
    {"huge_steps", 2, 9, 16, 400, true, true, false, true, false, 0.01, 60.0, 0.05},
};

// Inputs in double, rounded to float so that both instantiations see the same values.
struct FastScanData {
  FastScanCase cfg;
  std::vector<double> u, delta, A, Bm, Cm, Dskip, z, bias, h0, dout;
  std::vector<uint8_t> starts;

  explicit FastScanData(const FastScanCase& c) : cfg(c) {
    test::Rng rng(101);
    const size_t bdl = c.B * c.D * c.L, bnl = c.B * c.N * c.L;
    u = test::float_exact(rng.normal(bdl));
    delta = test::float_exact(rng.uniform(bdl, c.delta_lo, c.delta_hi));
    A = test::float_exact(rng.uniform(c.D * c.N, -2.0, -0.2));
    Bm = test::float_exact(rng.normal(bnl));
    Cm = test::float_exact(rng.normal(bnl));
    if (c.Dskip) Dskip = test::float_exact(rng.normal(c.D));
    if (c.z) z = test::float_exact(rng.normal(bdl));
    if (c.bias) bias = test::float_exact(rng.uniform(c.D, -1.0, 0.3));
    if (c.h0) h0 = test::float_exact(rng.normal(c.B * c.D * c.N));
    if (c.start_rate > 0) {
      starts.resize(c.B * c.L);
      for (auto& s : starts) s = rng.uniform(1, 0, 1)[0] < c.start_rate ? 1 : 0;
      starts[c.L - 1] = 1;
    }
    dout = test::float_exact(rng.normal(bdl));
  }
  ScanDims dims() const { return {cfg.B, cfg.D, cfg.L, cfg.N}; }
};

// The data in scalar type T, with views for the kernels.
template <class T>
struct Typed {
  ScanDims dims;
  std::vector<T> u, delta, A, Bm, Cm, Dskip, z, bias, h0, dout;
  std::vector<uint8_t> starts;
  ScanRefInputs<T> in;

  static std::vector<T> cast(const std::vector<double>& v) { return {v.begin(), v.end()}; }
  explicit Typed(const FastScanData& d)
      : dims(d.dims()),
        u(cast(d.u)),
        delta(cast(d.delta)),
        A(cast(d.A)),
        Bm(cast(d.Bm)),
        Cm(cast(d.Cm)),
        Dskip(cast(d.Dskip)),
        z(cast(d.z)),
        bias(cast(d.bias)),
        h0(cast(d.h0)),
        dout(cast(d.dout)),
        starts(d.starts) {
    const auto& c = d.cfg;
    in.u = dense_rows3<const T>(u.data(), c.D, c.L);
    in.delta = dense_rows3<const T>(delta.data(), c.D, c.L);
    in.A = A.data();
    in.B = dense_rows3<const T>(Bm.data(), c.N, c.L);
    in.C = dense_rows3<const T>(Cm.data(), c.N, c.L);
    in.Dskip = Dskip.empty() ? nullptr : Dskip.data();
    if (c.z) in.z = dense_rows3<const T>(z.data(), c.D, c.L);
    in.delta_bias = bias.empty() ? nullptr : bias.data();
    if (!starts.empty()) in.seq_start = dense_rows2<const uint8_t>(starts.data(), c.L);
    in.h0 = h0.empty() ? nullptr : h0.data();
    in.delta_softplus = c.softplus;
  }
};

struct ScanResults {
  std::vector<double> out, h_last, du, ddelta, dA, dB, dC, dDskip, dz, dbias, dh0;
  std::vector<std::vector<double>*> all() {
    return {&out, &h_last, &du, &ddelta, &dA, &dB, &dC, &dDskip, &dz, &dbias, &dh0};
  }
};
const char* const kNames[] = {"out", "h_last", "du", "ddelta", "dA", "dB", "dC", "dDskip", "dz", "dbias", "dh0"};

enum class Impl { kReference, kFast };

template <class T>
ScanResults run(const FastScanData& d, Impl impl, SimdLevel level = best_simd_level(), int threads = 2,
                bool use_checkpoints = true) {
  const auto& c = d.cfg;
  Typed<T> t(d);
  const size_t bdl = c.B * c.D * c.L, bnl = c.B * c.N * c.L, bdn = c.B * c.D * c.N;
  std::vector<T> out(bdl, NAN), h_last(bdn, NAN), du(bdl, NAN), ddelta(bdl, NAN), dA(c.D * c.N, NAN),
      dB(bnl, NAN), dC(bnl, NAN), dDskip(c.D, NAN), dz(bdl, NAN), dbias(c.D, NAN), dh0(bdn, NAN);
  ScanRefGrads<T> g;
  g.du = dense_rows3<T>(du.data(), c.D, c.L);
  g.ddelta = dense_rows3<T>(ddelta.data(), c.D, c.L);
  g.dA = dA.data();
  g.dB = dense_rows3<T>(dB.data(), c.N, c.L);
  g.dC = dense_rows3<T>(dC.data(), c.N, c.L);
  g.dDskip = c.Dskip ? dDskip.data() : nullptr;
  if (c.z) g.dz = dense_rows3<T>(dz.data(), c.D, c.L);
  g.ddelta_bias = c.bias ? dbias.data() : nullptr;
  g.dh0 = dh0.data();
  const Rows3<T> out_rows = dense_rows3<T>(out.data(), c.D, c.L);
  const Rows3<const T> dout_rows = dense_rows3<const T>(t.dout.data(), c.D, c.L);
  if constexpr (std::is_same_v<T, float>) {
    if (impl == Impl::kFast) {
      std::vector<float> checkpoints(static_cast<size_t>(scan_checkpoint_numel(t.dims)), NAN);
      float* ckpt = use_checkpoints ? checkpoints.data() : nullptr;
      selective_scan_forward_fast(t.dims, t.in, out_rows, h_last.data(), ckpt, threads, level);
      selective_scan_backward_fast(t.dims, t.in, ckpt, dout_rows, g, threads, level);
    }
  }
  if (impl == Impl::kReference) {
    selective_scan_forward_ref<T>(t.dims, t.in, out_rows, h_last.data(), threads);
    selective_scan_backward_ref<T>(t.dims, t.in, dout_rows, g, threads);
  }
  ScanResults r;
  auto keep = [](const std::vector<T>& v, bool on) { return on ? std::vector<double>(v.begin(), v.end()) : std::vector<double>{}; };
  r.out = keep(out, true), r.h_last = keep(h_last, true), r.du = keep(du, true), r.ddelta = keep(ddelta, true);
  r.dA = keep(dA, true), r.dB = keep(dB, true), r.dC = keep(dC, true), r.dDskip = keep(dDskip, c.Dskip);
  r.dz = keep(dz, c.z), r.dbias = keep(dbias, c.bias), r.dh0 = keep(dh0, true);
  return r;
}

class FastScan : public ::testing::TestWithParam<FastScanCase> {};

// Norm-wise errors against the double reference no larger than twice the float
// reference's own (with a floor at float rounding: both are about 1e-7), and within
// 5e-7 of the float reference's results (measured: at most 2.2e-7).
TEST_P(FastScan, MatchesTheReferences) {
  const FastScanData d(GetParam());
  ScanResults exact = run<double>(d, Impl::kReference, SimdLevel::kBaseline, 1);
  ScanResults old_float = run<float>(d, Impl::kReference, SimdLevel::kBaseline, 2);
  ScanResults fast = run<float>(d, Impl::kFast);
  const auto e = exact.all(), o = old_float.all(), f = fast.all();
  for (size_t i = 0; i < e.size(); ++i) {
    if (e[i]->empty()) continue;
    for (double v : *f[i]) ASSERT_TRUE(std::isfinite(v)) << kNames[i];
    const double fast_err = test::rel_error(*f[i], *e[i]), old_err = test::rel_error(*o[i], *e[i]);
    EXPECT_LT(fast_err, std::max(2 * old_err, 3e-7)) << kNames[i] << " (float reference: " << old_err << ")";
    EXPECT_LT(test::rel_error(*f[i], *o[i]), 5e-7) << kNames[i];
  }
}

TEST_P(FastScan, FmaLevelsAgreeAndBaselineIsClose) {
  const FastScanData d(GetParam());
  ScanResults best = run<float>(d, Impl::kFast, best_simd_level());
  if (best_simd_level() == SimdLevel::kAvx512) {
    ScanResults avx2 = run<float>(d, Impl::kFast, SimdLevel::kAvx2, 3);
    const auto a = avx2.all(), b = best.all();
    for (size_t i = 0; i < a.size(); ++i) EXPECT_EQ(*a[i], *b[i]) << kNames[i];
  }
  ScanResults base = run<float>(d, Impl::kFast, SimdLevel::kBaseline);
  const auto a = base.all(), b = best.all();
  for (size_t i = 0; i < a.size(); ++i) {
    if (!b[i]->empty()) {
      EXPECT_LT(test::rel_error(*a[i], *b[i]), 5e-7) << kNames[i];
    }
  }
}

TEST_P(FastScan, ThreadCountAndCheckpointsChangeNoBit) {
  const FastScanData d(GetParam());
  ScanResults one = run<float>(d, Impl::kFast, best_simd_level(), 1, true);
  ScanResults three = run<float>(d, Impl::kFast, best_simd_level(), 3, true);
  ScanResults recomputed = run<float>(d, Impl::kFast, best_simd_level(), 2, false);
  const auto a = one.all(), b = three.all(), c = recomputed.all();
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_EQ(*a[i], *b[i]) << kNames[i];
    EXPECT_EQ(*a[i], *c[i]) << kNames[i];
  }
}

INSTANTIATE_TEST_SUITE_P(Cases, FastScan, ::testing::ValuesIn(kFastCases),
                         [](const auto& info) { return std::string(info.param.name); });

// A 1,048,576-step row: the forward cut anywhere and continued from h_last equals one
// pass, the checkpoints hold one state per kScanChunk steps, and the backward gives the
// same bits from them as when it recomputes them. One thread: with two channels there is
// one channel block, and a second thread would only wait at the 2048 span barriers.
TEST(FastScanLong, MillionStepRow) {
  const int64_t B = 1, D = 2, N = 4, L = int64_t{1} << 20;
  uint64_t state = 12345;
  auto uniform = [&](float lo, float hi) {  // xorshift: fast enough for 14 M values
    state ^= state << 13, state ^= state >> 7, state ^= state << 17;
    return lo + (hi - lo) * static_cast<float>(state >> 40) / static_cast<float>(1 << 24);
  };
  auto fill = [&](size_t n, float lo, float hi) {
    std::vector<float> v(n);
    for (float& x : v) x = uniform(lo, hi);
    return v;
  };
  const std::vector<float> u = fill(B * D * L, -1, 1), delta = fill(B * D * L, -3, 0.5), z = fill(B * D * L, -2, 2),
                           A = fill(D * N, -2, -0.2f), Bm = fill(B * N * L, -1, 1), Cm = fill(B * N * L, -1, 1),
                           dout = fill(B * D * L, -1, 1);
  std::vector<uint8_t> starts(B * L, 0);
  for (int64_t t = 0; t < L; t += 100003) starts[t] = 1;
  ScanRefInputs<float> in;
  in.u = dense_rows3<const float>(u.data(), D, L);
  in.delta = dense_rows3<const float>(delta.data(), D, L);
  in.A = A.data();
  in.B = dense_rows3<const float>(Bm.data(), N, L);
  in.C = dense_rows3<const float>(Cm.data(), N, L);
  in.z = dense_rows3<const float>(z.data(), D, L);
  in.seq_start = dense_rows2<const uint8_t>(starts.data(), L);
  const ScanDims dims{B, D, L, N};
  ASSERT_EQ(scan_checkpoint_numel(dims), B * D * (L / kScanChunk) * N);

  std::vector<float> out(B * D * L), h_last(B * D * N), checkpoints(scan_checkpoint_numel(dims));
  selective_scan_forward_fast(dims, in, dense_rows3<float>(out.data(), D, L), h_last.data(), checkpoints.data(), 1);

  // The same row in two calls, cut off the chunk grid; views keep the row stride.
  const int64_t cut = L / 2 + 77;
  std::vector<float> split_out(B * D * L), h_mid(B * D * N), h_end(B * D * N);
  for (int part = 0; part < 2; ++part) {
    const int64_t t0 = part ? cut : 0, len = part ? L - cut : cut;
    ScanRefInputs<float> p = in;
    p.u.data += t0, p.delta.data += t0, p.z.data += t0, p.B.data += t0, p.C.data += t0, p.seq_start.data += t0;
    p.h0 = part ? h_mid.data() : nullptr;
    Rows3<float> o = dense_rows3<float>(split_out.data(), D, L);
    o.data += t0;
    selective_scan_forward_fast({B, D, len, N}, p, o, part ? h_end.data() : h_mid.data(), nullptr, 1);
  }
  EXPECT_EQ(split_out, out);
  EXPECT_EQ(h_end, h_last);

  auto backward = [&](const float* ckpt) {
    std::vector<float> du(B * D * L), ddelta(B * D * L), dz(B * D * L), dA(D * N), dB(B * N * L), dC(B * N * L);
    ScanRefGrads<float> g;
    g.du = dense_rows3<float>(du.data(), D, L);
    g.ddelta = dense_rows3<float>(ddelta.data(), D, L);
    g.dz = dense_rows3<float>(dz.data(), D, L);
    g.dA = dA.data();
    g.dB = dense_rows3<float>(dB.data(), N, L);
    g.dC = dense_rows3<float>(dC.data(), N, L);
    selective_scan_backward_fast(dims, in, ckpt, dense_rows3<const float>(dout.data(), D, L), g, 1);
    return std::vector<std::vector<float>>{du, ddelta, dz, dA, dB, dC};
  };
  const auto from_checkpoints = backward(checkpoints.data());
  EXPECT_EQ(from_checkpoints, backward(nullptr));
  for (const auto& grad : from_checkpoints)
    for (float v : grad) ASSERT_TRUE(std::isfinite(v));
}

// A NaN in A or in delta reaches the same outputs as in the reference, and only those
// (the fast exp is only taken where the range of dt * A is known to be finite).
TEST(FastScanNaN, PropagatesLikeTheReference) {
  for (int where = 0; where < 2; ++where) {
    FastScanData d(kFastCases[1]);
    if (where == 0)
      d.A[3 * d.cfg.N + 5] = NAN;  // channel 3
    else
      d.delta[(0 * d.cfg.D + 7) * d.cfg.L + 300] = NAN;  // channel 7 from step 300 on
    ScanResults ref = run<float>(d, Impl::kReference, SimdLevel::kBaseline, 1);
    ScanResults fast = run<float>(d, Impl::kFast);
    const auto r = ref.all(), f = fast.all();
    for (size_t i = 0; i < r.size(); ++i) {
      size_t nans = 0;
      for (size_t k = 0; k < r[i]->size(); ++k) {
        EXPECT_EQ(std::isnan((*f[i])[k]), std::isnan((*r[i])[k])) << kNames[i] << " #" << k << " case " << where;
        nans += std::isnan((*r[i])[k]) ? 1 : 0;
      }
      if (i == 0) {
        EXPECT_GT(nans, 0u);  // the output did see the NaN
      }
    }
  }
}

TEST(FastScanLevels, ALevelBeyondAnyIsRefused) {
  const FastScanData d(kFastCases[2]);
  const SimdLevel beyond_any = static_cast<SimdLevel>(static_cast<int>(SimdLevel::kAvx512) + 1);
  EXPECT_THROW(run<float>(d, Impl::kFast, beyond_any), std::invalid_argument);
}

}  // namespace
}  // namespace gm
