// The CUDA selective scan (every variant) against the CPU reference: forward output and
// h_last, every gradient of the backward, at shapes that are not multiples of the chunk,
// L = 1, batch > 1, strided (narrowed) inputs, document resets, h0 / h_last streaming,
// z / D / delta_bias / softplus on and off, d_state 16 and below, f32 and bf16, dense
// resets on the kernels' slice, sub-chunk and chunk boundaries; plus bitwise determinism
// of the backward and equality of the saved / recomputed paths, the default variant's
// forward dispatch on each side of its boundary, and the serial forward's saved states.
// The oracle is the CPU reference math itself (mamba/cpu/selective_scan_ref.h, the
// plain templates behind gm::cpu's scan), so a change of the CPU op's fast path cannot
// move the goalposts.
#include "tests/test_cuda_support.h"

#ifdef GENOMAMBA_HAVE_CUDA
#include <algorithm>
#include <stdexcept>
#include <string>
#include <vector>

#include "mamba/cpu/selective_scan_ref.h"
#include "mamba/cuda/scan_segments.h"
#include "mamba/cuda/scan_variants.h"

namespace gm::test {
namespace {

using gm::cuda::ScanVariant;
using gm::cuda::scan_variant_name;

cpu::Rows3<const float> in_rows(const Tensor* t) {
  return t ? cpu::Rows3<const float>{t->data<float>(), t->stride(0), t->stride(1)} : cpu::Rows3<const float>{};
}
cpu::Rows3<float> out_rows(Tensor* t) {
  return t ? cpu::Rows3<float>{t->data<float>(), t->stride(0), t->stride(1)} : cpu::Rows3<float>{};
}
const float* ptr(const Tensor* t) { return t ? t->data<float>() : nullptr; }
float* ptr(Tensor* t) { return t ? t->data<float>() : nullptr; }

cpu::ScanDims dims_of(const ScanInputs& in) {
  return {in.u->size(0), in.u->size(1), in.u->size(2), in.A->size(1)};
}

cpu::ScanRefInputs<float> ref_inputs(const ScanInputs& in) {
  cpu::ScanRefInputs<float> v;
  v.u = in_rows(in.u);
  v.delta = in_rows(in.delta);
  v.A = ptr(in.A);
  v.B = in_rows(in.B);
  v.C = in_rows(in.C);
  v.Dskip = ptr(in.Dskip);
  v.z = in_rows(in.z);
  v.delta_bias = ptr(in.delta_bias);
  if (in.seq_start) v.seq_start = {in.seq_start->data<uint8_t>(), in.seq_start->stride(0)};
  v.h0 = ptr(in.h0);
  v.delta_softplus = in.delta_softplus;
  return v;
}

void ref_fwd(const ScanInputs& in, Tensor& out, Tensor* h_last, int threads) {
  cpu::selective_scan_forward_ref<float>(dims_of(in), ref_inputs(in), out_rows(&out), ptr(h_last), threads);
}

void ref_bwd(const ScanInputs& in, const Tensor& dout, const ScanGrads& g, int threads) {
  cpu::ScanRefGrads<float> r;
  r.du = out_rows(g.du);
  r.ddelta = out_rows(g.ddelta);
  r.dA = ptr(g.dA);
  r.dB = out_rows(g.dB);
  r.dC = out_rows(g.dC);
  r.dDskip = ptr(g.dDskip);
  r.dz = out_rows(g.dz);
  r.ddelta_bias = ptr(g.ddelta_bias);
  r.dh0 = ptr(g.dh0);
  cpu::selective_scan_backward_ref<float>(dims_of(in), ref_inputs(in), in_rows(&dout), r, threads);
}

struct ScanCase {
  int64_t B, D, L, N;
  bool z = true, dskip = true, bias = true, softplus = true, starts = true, h0 = true;
  bool strided = false;  // u, z, B, C as narrow()s of wider tensors (batch stride > D*L)
  int64_t bc_state_pitch = 0;  // > 0: B, C as views whose state rows are this many elements apart
  double reset_rate = 1.0 / 300;  // chance of a document start at each step (with `starts`)
  float bias_lo = -5.f, bias_hi = -1.f;  // delta_bias range with softplus (dt ~ 0.003-0.7)
  bool boundary_resets = false;   // also starts on and beside the 8/16/64/512-step boundaries
  DType dtype = DType::F32;
  std::string name() const {
    return "B" + std::to_string(B) + " D" + std::to_string(D) + " L" + std::to_string(L) + " N" + std::to_string(N) +
           (z ? " z" : "") + (dskip ? " D" : "") + (bias ? " bias" : "") + (softplus ? " softplus" : "") +
           (starts ? " starts" : "") + (boundary_resets ? "@boundaries" : "") + (h0 ? " h0" : "") +
           (strided ? " strided" : "") +
           (bc_state_pitch > 0 ? " B/C state pitch " + std::to_string(bc_state_pitch) : "") +
           (dtype == DType::BF16 ? " bf16" : " f32");
  }
};

// One tensor on both sides: host f32 (bf16-rounded when the case is bf16) and device.
struct Pair {
  Tensor h, d;
};

class CudaScan : public CudaTest {
 protected:
  // Activation [B, rows, L]; strided: a narrow of a [B, rows + 3, L] tensor at row 1.
  Pair act(const ScanCase& sc, int64_t rows, float lo, float hi, bool gaussian = false) {
    const int64_t wide = sc.strided ? rows + 3 : rows;
    Tensor h = gaussian ? normal({sc.B, wide, sc.L}) : uniform({sc.B, wide, sc.L}, lo, hi);
    if (sc.dtype == DType::BF16) round_bf16(h);
    Tensor d = upload(h, sc.dtype);
    if (!sc.strided) return {h, d};
    return {h.narrow(1, 1, rows), d.narrow(1, 1, rows)};
  }
  Pair param(const Tensor& h) { return {h, upload(h)}; }
  Pair out_act(const ScanCase& sc, int64_t rows) {
    Pair p{host({sc.B, rows, sc.L}), dev({sc.B, rows, sc.L}, sc.dtype)};
    poison(p.d);
    return p;
  }
  Pair out_f32(const Tensor::Shape& shape) {
    Pair p{host(shape), dev(shape, DType::F32)};
    poison(p.d);
    return p;
  }

  struct Inputs {
    Pair u, delta, A, B, C, Dskip, z, bias, starts, h0;
    ScanInputs host_in() {
      ScanInputs in;
      in.u = &u.h; in.delta = &delta.h; in.A = &A.h; in.B = &B.h; in.C = &C.h;
      in.Dskip = Dskip.h.defined() ? &Dskip.h : nullptr;
      in.z = z.h.defined() ? &z.h : nullptr;
      in.delta_bias = bias.h.defined() ? &bias.h : nullptr;
      in.seq_start = starts.h.defined() ? &starts.h : nullptr;
      in.h0 = h0.h.defined() ? &h0.h : nullptr;
      in.delta_softplus = softplus;
      return in;
    }
    ScanInputs dev_in() {
      ScanInputs in;
      in.u = &u.d; in.delta = &delta.d; in.A = &A.d; in.B = &B.d; in.C = &C.d;
      in.Dskip = Dskip.d.defined() ? &Dskip.d : nullptr;
      in.z = z.d.defined() ? &z.d : nullptr;
      in.delta_bias = bias.d.defined() ? &bias.d : nullptr;
      in.seq_start = starts.d.defined() ? &starts.d : nullptr;
      in.h0 = h0.d.defined() ? &h0.d : nullptr;
      in.delta_softplus = softplus;
      return in;
    }
    bool softplus = true;
  };

  Inputs make_inputs(const ScanCase& sc) {
    Inputs in;
    in.softplus = sc.softplus;
    in.u = act(sc, sc.D, -1.f, 1.f);
    // dt around the model's range: softplus(delta + bias) in ~(0.003, 0.7); without
    // softplus a positive dt of the same size keeps exp(dt A) below 1.
    in.delta = sc.softplus ? act(sc, sc.D, -1.f, 1.f) : act(sc, sc.D, 0.f, 0.2f);
    Tensor A = host({sc.D, sc.N});
    std::uniform_real_distribution<float> jitter(-0.3f, 0.3f);
    for (int64_t c = 0; c < sc.D; ++c)
      for (int64_t n = 0; n < sc.N; ++n) A.data<float>()[c * sc.N + n] = -std::exp(std::log(n + 1.f) + jitter(rng_));
    in.A = param(A);
    in.B = act(sc, sc.N, 0, 0, true);
    in.C = act(sc, sc.N, 0, 0, true);
    if (sc.bc_state_pitch > 0) {
      for (Pair* p : {&in.B, &in.C}) {
        Tensor wide = dev({sc.B, sc.N, sc.bc_state_pitch}, sc.dtype);
        Tensor view = wide.narrow(2, 0, sc.L);
        gm::cuda::copy(*gpu_, p->d, view);
        p->d = view;
      }
    }
    if (sc.dskip) in.Dskip = param(uniform({sc.D}, 0.5f, 1.5f));
    if (sc.z) in.z = act(sc, sc.D, -3.f, 3.f);
    if (sc.bias) in.bias = param(sc.softplus ? uniform({sc.D}, sc.bias_lo, sc.bias_hi) : uniform({sc.D}, 0.f, 0.1f));
    if (sc.starts) {
      Tensor s = flags({sc.B, sc.L}, sc.reset_rate);
      if (sc.L > 5) s.data<uint8_t>()[5] = 1;  // at least one reset inside the first chunk
      if (sc.boundary_resets) {
        for (int64_t b = 0; b < sc.B; ++b)
          for (int64_t t : {0, 7, 8, 15, 16, 17, 31, 32, 63, 64, 65, 127, 128, 511, 512, 513, 1023, 1024, 1040})
            if (t < sc.L) s.data<uint8_t>()[b * sc.L + t] = 1;
      }
      in.starts = param(s);
    }
    if (sc.h0) in.h0 = param(normal({sc.B, sc.D, sc.N}));
    return in;
  }

  void check(const char* what, const Tensor& got_dev, const Tensor& ref, double tol) {
    const double err = rel_error(download(got_dev), ref);
    EXPECT_LE(err, tol) << what;
  }

  // Forward and backward of one case on both backends, every output compared.
  void run_case(const ScanCase& sc, ScanVariant v) {
    SCOPED_TRACE(sc.name() + ", variant " + scan_variant_name(v) + ", " + seed_note());
    const bool bf = sc.dtype == DType::BF16;
    const double tol_act = bf ? 1e-2 : 1e-4;   // outputs stored in the activation dtype
    const double tol_f32 = bf ? 1e-3 : 1e-4;   // f32 outputs (states, parameter gradients)
    Inputs in = make_inputs(sc);
    ScanInputs hin = in.host_in(), din = in.dev_in();

    Pair out = out_act(sc, sc.D);
    Pair h_last = out_f32({sc.B, sc.D, sc.N});
    Tensor saved = dev({gm::cuda::selective_scan_saved_numel(*gpu_, sc.B, sc.D, sc.L, sc.N)}, DType::F32);
    poison(saved);
    ref_fwd(hin, out.h, &h_last.h, cpu_->threads());
    gm::cuda::selective_scan_fwd_variant(*gpu_, v, din, out.d, &h_last.d, &saved);
    check("out", out.d, out.h, tol_act);
    check("h_last", h_last.d, h_last.h, tol_f32);

    Pair dout = act(sc, sc.D, 0, 0, true);
    Pair du = out_act(sc, sc.D), ddelta = out_act(sc, sc.D), dz = out_act(sc, sc.D);
    Pair dB = out_act(sc, sc.N), dC = out_act(sc, sc.N);
    Pair dA = out_f32({sc.D, sc.N}), dD = out_f32({sc.D}), dbias = out_f32({sc.D});
    Pair dh0 = out_f32({sc.B, sc.D, sc.N});
    auto grads = [&](bool device) {
      auto pick = [&](Pair& p) { return device ? &p.d : &p.h; };
      ScanGrads g;
      g.du = pick(du);
      g.ddelta = pick(ddelta);
      g.dA = pick(dA);
      g.dB = pick(dB);
      g.dC = pick(dC);
      g.dDskip = sc.dskip ? pick(dD) : nullptr;
      g.dz = sc.z ? pick(dz) : nullptr;
      g.ddelta_bias = sc.bias ? pick(dbias) : nullptr;
      g.dh0 = pick(dh0);
      return g;
    };
    ref_bwd(hin, dout.h, grads(false), cpu_->threads());
    gm::cuda::selective_scan_bwd_variant(*gpu_, v, din, &saved, dout.d, grads(true));
    check("du", du.d, du.h, tol_act);
    check("ddelta", ddelta.d, ddelta.h, tol_act);
    check("dB", dB.d, dB.h, tol_act);
    check("dC", dC.d, dC.h, tol_act);
    check("dA", dA.d, dA.h, tol_f32);
    check("dh0", dh0.d, dh0.h, tol_f32);
    if (sc.z) check("dz", dz.d, dz.h, tol_act);
    if (sc.dskip) check("dDskip", dD.d, dD.h, tol_f32);
    if (sc.bias) check("ddelta_bias", dbias.d, dbias.h, tol_f32);
  }

  void run_all_variants(const ScanCase& sc) {
    for (ScanVariant v : gm::cuda::scan_variants()) run_case(sc, v);
  }
};

TEST_F(CudaScan, AllFeaturesTwoChunksNotMultiple) { run_all_variants({2, 40, 1000, 16}); }

// With one step, dB[b, n] = C[b, n] * sum_c dy[b, c] x[b, c] (and dC likewise): one sum per
// batch row, so with a single row every element of dB shares it, and a draw where that sum
// nearly cancels makes the norm-wise relative error large for any summation order (seen:
// 4.4e-4 in f32 for the pipelined variant). Four rows keep the norm away from that.
TEST_F(CudaScan, LengthOne) {
  ScanCase sc{4, 64, 1, 16};
  sc.starts = false;
  run_all_variants(sc);
  sc.starts = true;
  sc.B = 3;
  run_all_variants(sc);
}

TEST_F(CudaScan, FeaturesOffTailOfOneStep) {
  ScanCase sc{3, 33, 1537, 16};
  sc.z = sc.dskip = sc.bias = sc.softplus = sc.h0 = false;
  run_all_variants(sc);
}

TEST_F(CudaScan, SmallStateManyChannelsExactChunks) {
  ScanCase sc{1, 130, 2048, 8};
  sc.h0 = false;
  run_all_variants(sc);
  sc.N = 5;
  sc.z = false;
  sc.h0 = true;
  sc.L = 700;
  run_all_variants(sc);
}

TEST_F(CudaScan, OddLengthUnalignedRows) {
  run_all_variants({2, 16, 17, 16});
  ScanCase sc{2, 48, 1029, 16};
  sc.bias = false;
  run_all_variants(sc);
}

// Many document starts, several in most 8- and 16-step slices, and starts exactly on the
// slice, sub-chunk and chunk boundaries where the kernels switch between their paths.
TEST_F(CudaScan, DenseResetsOnBoundaries) {
  ScanCase sc{2, 36, 1300, 16};
  sc.reset_rate = 0.15;
  sc.boundary_resets = true;
  run_all_variants(sc);
  sc.dtype = DType::BF16;
  sc.reset_rate = 0.02;
  sc.L = 1041;
  run_all_variants(sc);
}

TEST_F(CudaScan, StridedInputs) {
  ScanCase sc{2, 40, 1100, 16};
  sc.strided = true;
  run_all_variants(sc);
}

TEST_F(CudaScan, Bf16) {
  ScanCase sc{2, 64, 1200, 16};
  sc.dtype = DType::BF16;
  run_all_variants(sc);
  sc = ScanCase{1, 256, 4096, 16};
  sc.dtype = DType::BF16;
  sc.starts = false;
  run_all_variants(sc);
  sc = ScanCase{2, 40, 777, 16};
  sc.dtype = DType::BF16;
  sc.strided = true;
  sc.softplus = false;
  run_all_variants(sc);
}

// B and C whose state rows lie 2^26 elements apart, as in a call over a sequence of ~2^26
// steps: the wide single-pass kernel's 32-bit B / C offsets do not reach them, so the default
// variant takes the chunked forward where its rule says G = 8 (6,144 rows), and forward and
// backward still match the CPU (the wide kernel refuses such a call).
TEST_F(CudaScan, DefaultTakesChunkedWhereWideOffsetsEnd) {
  ScanCase sc{1, 6144, 96, 2};
  sc.dtype = DType::BF16;  // 2 x 256 MB for the two views' buffers
  sc.bc_state_pitch = int64_t{1} << 26;
  ASSERT_EQ(gm::cuda::default_fwd_serial_lanes(sc.B, sc.D), 8);
  run_case(sc, ScanVariant::kDefault);
  // Asked for by name, the wide kernel refuses the call with the reason.
  Inputs in = make_inputs(sc);
  Tensor out = dev({sc.B, sc.D, sc.L}, sc.dtype);
  try {
    gm::cuda::selective_scan_fwd_variant(*gpu_, ScanVariant::kSerial8, in.dev_in(), out, nullptr, nullptr);
    ADD_FAILURE() << "the G = 8 single-pass forward took B / C state strides of 2^26";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("state strides"), std::string::npos) << e.what();
  }
}

// Two calls carried through h0 / h_last equal one call over the whole sequence.
TEST_F(CudaScan, StreamingEqualsOneCall) {
  SCOPED_TRACE(seed_note());
  const ScanCase sc{2, 48, 1500, 16};
  Inputs in = make_inputs(sc);
  for (ScanVariant v : gm::cuda::scan_variants()) {
    SCOPED_TRACE(scan_variant_name(v));
    ScanInputs full = in.dev_in();
    Tensor out = dev({sc.B, sc.D, sc.L}, DType::F32), h_end = dev({sc.B, sc.D, sc.N}, DType::F32);
    poison(out);
    gm::cuda::selective_scan_fwd_variant(*gpu_, v, full, out, &h_end, nullptr);
    const int64_t cut = 700;
    Tensor outs = dev({sc.B, sc.D, sc.L}, DType::F32), h_mid = dev({sc.B, sc.D, sc.N}, DType::F32),
           h_end2 = dev({sc.B, sc.D, sc.N}, DType::F32);
    poison(outs);
    for (int part = 0; part < 2; ++part) {
      const int64_t t0 = part ? cut : 0, len = part ? sc.L - cut : cut;
      Tensor u = in.u.d.narrow(2, t0, len), delta = in.delta.d.narrow(2, t0, len), B = in.B.d.narrow(2, t0, len),
             C = in.C.d.narrow(2, t0, len), z = in.z.d.narrow(2, t0, len), st = in.starts.d.narrow(1, t0, len);
      Tensor o = outs.narrow(2, t0, len);
      ScanInputs p = full;
      p.u = &u; p.delta = &delta; p.B = &B; p.C = &C; p.z = &z; p.seq_start = &st;
      p.h0 = part ? &h_mid : full.h0;
      gm::cuda::selective_scan_fwd_variant(*gpu_, v, p, o, part ? &h_end2 : &h_mid, nullptr);
    }
    EXPECT_LE(rel_error(download(outs), download(out)), 1e-5);
    EXPECT_LE(rel_error(download(h_end2), download(h_end)), 1e-5);
  }
}

// Same inputs twice: bitwise identical outputs and gradients; the backward without
// `saved` recomputes exactly the saved states.
TEST_F(CudaScan, DeterministicAndSavedEqualsRecomputed) {
  SCOPED_TRACE(seed_note());
  const ScanCase sc{2, 96, 3000, 16};
  Inputs in = make_inputs(sc);
  Tensor dout = upload(normal({sc.B, sc.D, sc.L}), DType::F32);
  for (ScanVariant v : gm::cuda::scan_variants()) {
    SCOPED_TRACE(scan_variant_name(v));
    std::vector<std::vector<Tensor>> runs;
    for (int run = 0; run < 3; ++run) {
      const bool use_saved = run < 2;
      ScanInputs din = in.dev_in();
      Tensor out = dev({sc.B, sc.D, sc.L}, DType::F32), hl = dev({sc.B, sc.D, sc.N}, DType::F32);
      Tensor saved = dev({gm::cuda::selective_scan_saved_numel(*gpu_, sc.B, sc.D, sc.L, sc.N)}, DType::F32);
      std::vector<Tensor> g = {dev({sc.B, sc.D, sc.L}, DType::F32), dev({sc.B, sc.D, sc.L}, DType::F32),
                               dev({sc.D, sc.N}, DType::F32),         dev({sc.B, sc.N, sc.L}, DType::F32),
                               dev({sc.B, sc.N, sc.L}, DType::F32),   dev({sc.D}, DType::F32),
                               dev({sc.B, sc.D, sc.L}, DType::F32),   dev({sc.D}, DType::F32),
                               dev({sc.B, sc.D, sc.N}, DType::F32)};
      for (Tensor& t : g) poison(t);
      gm::cuda::selective_scan_fwd_variant(*gpu_, v, din, out, &hl, &saved);
      ScanGrads grads{&g[0], &g[1], &g[2], &g[3], &g[4], &g[5], &g[6], &g[7], &g[8]};
      gm::cuda::selective_scan_bwd_variant(*gpu_, v, din, use_saved ? &saved : nullptr, dout, grads);
      std::vector<Tensor> host_copies;
      host_copies.push_back(download(out));
      for (Tensor& t : g) host_copies.push_back(download(t));
      runs.push_back(std::move(host_copies));
    }
    for (size_t i = 0; i < runs[0].size(); ++i) {
      EXPECT_TRUE(bitwise_equal(runs[0][i], runs[1][i])) << "output " << i << " differs between two runs";
      EXPECT_TRUE(bitwise_equal(runs[0][i], runs[2][i])) << "output " << i << " differs without saved states";
      EXPECT_LT(rel_error(runs[0][i], runs[0][i]), 1.0) << "output " << i << " holds NaN or Inf";
    }
  }
}

// The lean backward runs in windows of chunks when its sub-chunk flows would pass the
// context's budget (scan_segments.h, flow_window_chunks): windows of 1, 2 and 3 of the 6
// chunks give bitwise the gradients of one window, with document starts on and beside the
// sub-chunk and chunk boundaries, f32 and bf16; and the cut run matches the CPU.
TEST_F(CudaScan, BackwardWindowsEqualOneWindow) {
  SCOPED_TRACE(seed_note());
  struct RestoreBudget {
    Context& c;
    ~RestoreBudget() { c.scan_flow_budget = Context::kDefaultScanFlowBudget; }
  } restore{*gpu_};
  for (DType dtype : {DType::F32, DType::BF16}) {
    ScanCase sc{2, 40, 2900, 16};
    sc.boundary_resets = true;
    sc.dtype = dtype;
    SCOPED_TRACE(sc.name());
    const bool bf = dtype == DType::BF16;
    Inputs in = make_inputs(sc);
    ScanInputs hin = in.host_in(), din = in.dev_in();
    Pair out = out_act(sc, sc.D);
    Tensor saved = dev({gm::cuda::selective_scan_saved_numel(*gpu_, sc.B, sc.D, sc.L, sc.N)}, DType::F32);
    gm::cuda::selective_scan_fwd_variant(*gpu_, ScanVariant::kDefault, din, out.d, nullptr, &saved);
    Pair dout = act(sc, sc.D, 0, 0, true);
    const int64_t chunks = (sc.L + 511) / 512;
    ASSERT_EQ(chunks, 6);
    auto run = [&](int64_t window) {
      gpu_->scan_flow_budget = gm::cuda::scan::flow_bytes(sc.B, sc.D, window);
      EXPECT_EQ(gm::cuda::scan::flow_window_chunks(sc.B, sc.D, chunks, gpu_->scan_flow_budget),
                window == 4 ? 3 : window);
      std::vector<Tensor> g = {dev({sc.B, sc.D, sc.L}, dtype), dev({sc.B, sc.D, sc.L}, dtype),
                               dev({sc.D, sc.N}, DType::F32),   dev({sc.B, sc.N, sc.L}, dtype),
                               dev({sc.B, sc.N, sc.L}, dtype),   dev({sc.D}, DType::F32),
                               dev({sc.B, sc.D, sc.L}, dtype),   dev({sc.D}, DType::F32),
                               dev({sc.B, sc.D, sc.N}, DType::F32)};
      for (Tensor& t : g) poison(t);
      ScanGrads grads{&g[0], &g[1], &g[2], &g[3], &g[4], &g[5], &g[6], &g[7], &g[8]};
      gm::cuda::selective_scan_bwd_variant(*gpu_, ScanVariant::kDefault, din, &saved, dout.d, grads);
      std::vector<Tensor> host_copies;
      for (Tensor& t : g) host_copies.push_back(download(t));
      return host_copies;
    };
    const std::vector<Tensor> whole = run(chunks);
    for (int64_t window : {1, 2, 4}) {
      const std::vector<Tensor> cut = run(window);
      for (size_t i = 0; i < whole.size(); ++i) {
        EXPECT_TRUE(bitwise_equal(whole[i], cut[i])) << "gradient " << i << ", windows of " << window;
        EXPECT_LT(rel_error(cut[i], cut[i]), 1.0) << "gradient " << i << " holds NaN or Inf";
      }
    }
    // The cut run against the CPU: du, ddelta, dA, dB, dC, dD, dz, dbias, dh0.
    Tensor ref_out = host({sc.B, sc.D, sc.L});
    ref_fwd(hin, ref_out, nullptr, cpu_->threads());
    std::vector<Tensor> r = {host({sc.B, sc.D, sc.L}), host({sc.B, sc.D, sc.L}), host({sc.D, sc.N}),
                             host({sc.B, sc.N, sc.L}), host({sc.B, sc.N, sc.L}), host({sc.D}),
                             host({sc.B, sc.D, sc.L}), host({sc.D}),          host({sc.B, sc.D, sc.N})};
    ScanGrads rg{&r[0], &r[1], &r[2], &r[3], &r[4], &r[5], &r[6], &r[7], &r[8]};
    ref_bwd(hin, dout.h, rg, cpu_->threads());
    const std::vector<Tensor> cut = run(1);
    for (size_t i = 0; i < r.size(); ++i) {
      const bool f32_out = i == 2 || i == 5 || i == 7 || i == 8;
      EXPECT_LE(rel_error(cut[i], r[i]), f32_out ? (bf ? 1e-3 : 1e-4) : (bf ? 1e-2 : 1e-4)) << "gradient " << i;
    }
  }
}

// The default forward switches from the chunked (pipelined) kernels to the serial ones,
// and between lane counts of the serial one, at default_fwd_serial_lanes: a shape on each
// side of every switch against the CPU, and the default's output bitwise that of the
// kernel the rule names (so each switch is where the rule says, not only somewhere correct).
ScanVariant variant_of_lanes(int lanes) {
  switch (lanes) {
    case 0: return ScanVariant::kLeanBackward;  // the chunked (pipelined) forward
    case 1: return ScanVariant::kSerial1;
    case 2: return ScanVariant::kSerial2;
    case 4: return ScanVariant::kSerial4;
    case 8: return ScanVariant::kSerial8;
    case 16: return ScanVariant::kSerial16;
  }
  throw std::logic_error("no serial variant with " + std::to_string(lanes) + " lanes");
}

TEST_F(CudaScan, DefaultDispatchBoundary) {
  const int64_t batch = 2;
  std::vector<int64_t> switches;  // channels at which the default's forward kernel changes
  for (int64_t d = 2; d <= 65536; ++d)
    if (gm::cuda::default_fwd_serial_lanes(batch, d) != gm::cuda::default_fwd_serial_lanes(batch, d - 1))
      switches.push_back(d);
  ASSERT_FALSE(switches.empty()) << "the default never runs the serial forward at batch " << batch;
  ASSERT_EQ(gm::cuda::default_fwd_serial_lanes(batch, 1), 0) << "no chunked side below the boundary";
  ASSERT_TRUE(gm::cuda::default_fwd_is_serial(batch, switches.back()));
  for (int64_t first : switches) {
    for (int64_t D : {first - 1, first}) {
      const int lanes = gm::cuda::default_fwd_serial_lanes(batch, D);
      ASSERT_EQ(gm::cuda::default_fwd_is_serial(batch, D), lanes != 0);
      ScanCase sc{batch, D, 600, 16};
      run_case(sc, ScanVariant::kDefault);
      SCOPED_TRACE(sc.name() + ", " + seed_note());
      Inputs in = make_inputs(sc);
      ScanInputs din = in.dev_in();
      Tensor got = dev({sc.B, sc.D, sc.L}, DType::F32), want = dev({sc.B, sc.D, sc.L}, DType::F32);
      poison(got);
      poison(want);
      gm::cuda::selective_scan_fwd_variant(*gpu_, ScanVariant::kDefault, din, got, nullptr, nullptr);
      gm::cuda::selective_scan_fwd_variant(*gpu_, variant_of_lanes(lanes), din, want, nullptr, nullptr);
      EXPECT_TRUE(bitwise_equal(download(got), download(want))) << lanes << " lanes (0: chunked), D " << D;
    }
  }
}

// The serial forward's chunk-start states (`saved`) are those the chunked forward chains.
TEST_F(CudaScan, SerialSavedMatchesChunked) {
  SCOPED_TRACE(seed_note());
  ScanCase sc{3, 70, 1600, 16};
  sc.reset_rate = 0.01;
  Inputs in = make_inputs(sc);
  ScanInputs din = in.dev_in();
  const int64_t n = gm::cuda::selective_scan_saved_numel(*gpu_, sc.B, sc.D, sc.L, sc.N);
  Tensor out = dev({sc.B, sc.D, sc.L}, DType::F32), chunked = dev({n}, DType::F32);
  poison(chunked);
  gm::cuda::selective_scan_fwd_variant(*gpu_, ScanVariant::kLeanBackward, din, out, nullptr, &chunked);
  const Tensor want = download(chunked);
  for (ScanVariant v : {ScanVariant::kSerial16, ScanVariant::kSerial8, ScanVariant::kSerial4, ScanVariant::kSerial2,
                        ScanVariant::kSerial1}) {
    Tensor saved = dev({n}, DType::F32);
    poison(saved);
    gm::cuda::selective_scan_fwd_variant(*gpu_, v, din, out, nullptr, &saved);
    EXPECT_LE(rel_error(download(saved), want), 1e-5) << scan_variant_name(v);
  }
}

// Every lane count of the serial forward runs the same arithmetic per state (decay
// 2^(dt A log2 e), h = decay h + x B with one rounding of x B, dt and x once per step), so
// `saved` and h_last are bitwise the same for G = 16, 8, 4, 2, 1: with document starts
// (dense on the tile boundaries) and without, h0, a partial last tile, f32 and bf16, and
// rows that are not 16-byte aligned (L = 1537: the copies' bounded path). The G = 8
// kernel takes 128-step tiles for grids of one wave of at most 3 blocks per SM and 64-step
// tiles above: the second shape (414 blocks of G = 8 on 132 SMs) runs the 64-step ones,
// also against the CPU.
TEST_F(CudaScan, SerialStatesBitwiseAcrossLanes) {
  SCOPED_TRACE(seed_note());
  ScanCase shapes[] = {{2, 40, 1537, 16}, {3, 2200, 304, 16}, {1, 24, 1000, 16}};
  shapes[2].starts = false;
  for (const ScanCase& shape : shapes) {
    for (const DType dt : {DType::F32, DType::BF16}) {
      ScanCase sc = shape;
      sc.boundary_resets = sc.starts;
      sc.dtype = dt;
      SCOPED_TRACE(sc.name());
      Inputs in = make_inputs(sc);
      ScanInputs din = in.dev_in();
      const int64_t n = gm::cuda::selective_scan_saved_numel(*gpu_, sc.B, sc.D, sc.L, sc.N);
      Tensor out = dev({sc.B, sc.D, sc.L}, dt);
      Tensor want_saved, want_hl;
      for (ScanVariant v : {ScanVariant::kSerial4, ScanVariant::kSerial16, ScanVariant::kSerial8,
                            ScanVariant::kSerial2, ScanVariant::kSerial1}) {
        Tensor saved = dev({n}, DType::F32), hl = dev({sc.B, sc.D, sc.N}, DType::F32);
        poison(saved);
        poison(hl);
        gm::cuda::selective_scan_fwd_variant(*gpu_, v, din, out, &hl, &saved);
        if (!want_saved.defined()) {
          want_saved = download(saved);
          want_hl = download(hl);
          continue;
        }
        EXPECT_TRUE(bitwise_equal(download(saved), want_saved)) << scan_variant_name(v) << ": saved";
        EXPECT_TRUE(bitwise_equal(download(hl), want_hl)) << scan_variant_name(v) << ": h_last";
      }
    }
  }
  // The 64-step tiles of G = 8 (and G = 16 at many blocks) against the CPU.
  ScanCase sc{3, 2200, 304, 16};
  sc.boundary_resets = true;
  run_case(sc, ScanVariant::kSerial8);
  sc.dtype = DType::BF16;
  run_case(sc, ScanVariant::kSerial8);
  run_case(sc, ScanVariant::kSerial16);
}

// One long sequence of few channels: the default forward is the segmented one (the
// single-pass kernel over whole-chunk segments as rows, twice: states from zero, then from
// the chained segment starts). Right against the CPU (forward and backward) with the last
// segment running on past the last whole chunk (L = 40,000) and ending on one, and with
// bf16; bitwise the kSegmented variant; its `saved` and h_last those of the chunked
// forward up to rounding.
TEST_F(CudaScan, SegmentedForLongFewRows) {
  for (const int64_t L : {int64_t{40000}, int64_t{32768 + 3 * 512}}) {
    ScanCase sc{1, 48, L, 16};
    sc.boundary_resets = true;
    run_case(sc, ScanVariant::kSegmented);
    sc.dtype = DType::BF16;
    run_case(sc, ScanVariant::kSegmented);
    sc.dtype = DType::F32;
    SCOPED_TRACE(sc.name() + ", " + seed_note());
    Inputs in = make_inputs(sc);
    ScanInputs din = in.dev_in();
    const int64_t n = gm::cuda::selective_scan_saved_numel(*gpu_, sc.B, sc.D, sc.L, sc.N);
    Tensor y[3], hl[3], sv[3];
    const ScanVariant vs[3] = {ScanVariant::kDefault, ScanVariant::kSegmented, ScanVariant::kLeanBackward};
    for (int i = 0; i < 3; ++i) {
      y[i] = dev({sc.B, sc.D, sc.L}, DType::F32);
      hl[i] = dev({sc.B, sc.D, sc.N}, DType::F32);
      sv[i] = dev({n}, DType::F32);
      poison(y[i]);
      poison(hl[i]);
      poison(sv[i]);
      gm::cuda::selective_scan_fwd_variant(*gpu_, vs[i], din, y[i], &hl[i], &sv[i]);
    }
    EXPECT_TRUE(bitwise_equal(download(y[0]), download(y[1])));
    EXPECT_TRUE(bitwise_equal(download(hl[0]), download(hl[1])));
    // The segments' starts come from their chained sums, not the chunks' products: the
    // same states up to rounding.
    EXPECT_LE(rel_error(download(sv[1]), download(sv[2])), 1e-5);
    EXPECT_LE(rel_error(download(hl[1]), download(hl[2])), 1e-5);
    EXPECT_LE(rel_error(download(y[1]), download(y[2])), 1e-5);
  }
}

// The segmented forward's chain: with slow decays (dt ~ 1e-4-1e-3) a segment's start state
// still weighs at its end, so wrong segment starts (or a wrong sum of dt) show in y, `saved`
// and the gradients. Two sequences of 768 channels, 33,000 steps: on an H200 (132 SMs) 44
// segments each, 20 of 2 chunks and 24 of 1, the last running on for 232 steps past its
// chunk; h0; rare document starts (some segments have one, their decay to the next is then
// 0), and none.
TEST_F(CudaScan, SegmentedCarriesStatesAcrossSegments) {
  ScanCase sc{2, 768, 33000, 16};
  sc.bias_lo = -9.f;
  sc.bias_hi = -7.f;
  sc.reset_rate = 1.0 / 12000;
  run_case(sc, ScanVariant::kSegmented);
  sc.starts = false;
  run_case(sc, ScanVariant::kSegmented);
  sc.dtype = DType::BF16;
  run_case(sc, ScanVariant::kSegmented);
}

// The dispatcher reaches the CUDA twin for a CUDA context.
TEST_F(CudaScan, OpsDispatch) {
  SCOPED_TRACE(seed_note());
  const ScanCase sc{1, 32, 600, 16};
  Inputs in = make_inputs(sc);
  ScanInputs hin = in.host_in(), din = in.dev_in();
  Tensor ref = host({sc.B, sc.D, sc.L});
  Tensor out = dev({sc.B, sc.D, sc.L}, DType::F32);
  poison(out);
  ref_fwd(hin, ref, nullptr, cpu_->threads());
  gm::ops::selective_scan_fwd(*gpu_, din, out, nullptr, nullptr);
  EXPECT_LE(rel_error(download(out), ref), 1e-4);
}

}  // namespace
}  // namespace gm::test
#endif
