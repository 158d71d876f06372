// CUDA causal depthwise conv1d (+ SiLU) forward / backward against the CPU twin: widths
// 2..4, with and without bias / SiLU / document starts / streaming state, lengths that
// are not multiples of the block (and L = 1), strided inputs, f32 and bf16; the vector
// kernels equal the general ones bitwise (the forward's also with starts and state); and
// two chunked calls carried through state_out / state_in equal one call.
#include "tests/test_cuda_support.h"

#ifdef GENOMAMBA_HAVE_CUDA
namespace gm::test {
namespace {

using CudaConv1d = CudaTest;

struct ConvCase {
  int64_t B, D, L, K;
  bool bias, silu, starts, state;
  DType dtype;
};

TEST_F(CudaConv1d, MatchesCpu) {
  SCOPED_TRACE(seed_note());
  const ConvCase cases[] = {
      {2, 8, 1, 4, true, true, false, true, DType::F32},     {3, 20, 1500, 4, true, true, true, true, DType::F32},
      {1, 7, 2049, 3, false, false, true, false, DType::F32}, {2, 5, 300, 2, true, false, true, true, DType::F32},
      {2, 16, 1100, 4, true, true, true, true, DType::BF16},  {1, 3, 5, 4, false, true, true, true, DType::F32},
      // No starts, no state, L % 8 == 0: the vector kernels.
      {2, 16, 2048, 4, true, true, false, false, DType::BF16}, {3, 10, 1200, 4, true, false, false, false, DType::F32},
      {1, 6, 8, 3, false, true, false, false, DType::BF16},    {2, 4, 3000, 2, true, true, false, false, DType::F32},
      // L % 8 == 0 with starts and / or state: the forward's vector kernel, the backward's general one.
      {2, 16, 2048, 4, true, true, true, true, DType::BF16},   {3, 10, 1200, 4, true, false, false, true, DType::F32},
      {1, 6, 16, 3, false, true, true, false, DType::BF16},
  };
  for (const ConvCase& cc : cases) {
    SCOPED_TRACE("B" + std::to_string(cc.B) + " D" + std::to_string(cc.D) + " L" + std::to_string(cc.L) + " K" +
                 std::to_string(cc.K) + " " + dtype_name(cc.dtype));
    const bool bf = cc.dtype == DType::BF16;
    const double tol = bf ? 1e-2 : 1e-5;
    // x as a narrow of a [B, D + 2, L] tensor (the mixer's split of in_proj).
    Tensor xw = normal({cc.B, cc.D + 2, cc.L});
    if (bf) round_bf16(xw);
    Tensor dxw = upload(xw, cc.dtype);
    Tensor x = xw.narrow(1, 2, cc.D), dx_in = dxw.narrow(1, 2, cc.D);
    Tensor w = normal({cc.D, cc.K}, 0.5f), bias = normal({cc.D});
    Tensor starts = flags({cc.B, cc.L}, 0.01);
    if (cc.L > 3) starts.data<uint8_t>()[2] = 1;
    Tensor state_in = normal({cc.B, cc.D, cc.K - 1});
    Tensor dw = upload(w), dbias = upload(bias), dstarts = upload(starts), dstate_in = upload(state_in);
    const Tensor* hb = cc.bias ? &bias : nullptr;
    const Tensor* db = cc.bias ? &dbias : nullptr;
    const Tensor* hs = cc.starts ? &starts : nullptr;
    const Tensor* ds = cc.starts ? &dstarts : nullptr;
    const Tensor* hst = cc.state ? &state_in : nullptr;
    const Tensor* dst = cc.state ? &dstate_in : nullptr;

    Tensor out = host({cc.B, cc.D, cc.L}), state_out = host({cc.B, cc.D, cc.K - 1});
    Tensor dout_ = dev({cc.B, cc.D, cc.L}, cc.dtype), dstate_out = dev({cc.B, cc.D, cc.K - 1}, DType::F32);
    poison(dout_);
    poison(dstate_out);
    gm::cpu::conv1d_fwd(*cpu_, x, w, hb, hs, hst, cc.silu, out, &state_out);
    gm::cuda::conv1d_fwd(*gpu_, dx_in, dw, db, ds, dst, cc.silu, dout_, &dstate_out);
    EXPECT_LE(rel_error(download(dout_), out), tol);
    EXPECT_LE(rel_error(download(dstate_out), state_out), 1e-6);

    Tensor g = normal({cc.B, cc.D, cc.L});
    if (bf) round_bf16(g);
    Tensor dwg = normal({cc.D, cc.K}), dbg = normal({cc.D});
    const Tensor dwg0 = upload(dwg);  // the accumulator's start, kept for the determinism check
    Tensor dg = upload(g, cc.dtype), ddwg = upload(dwg), ddbg = upload(dbg), ddwg2 = upload(dwg);
    Tensor gx = host({cc.B, cc.D, cc.L}), dgx = dev({cc.B, cc.D, cc.L}, cc.dtype);
    poison(dgx);
    gm::cpu::conv1d_bwd(*cpu_, g, x, w, hb, hs, hst, cc.silu, gx, dwg, cc.bias ? &dbg : nullptr);
    gm::cuda::conv1d_bwd(*gpu_, dg, dx_in, dw, db, ds, dst, cc.silu, dgx, ddwg, cc.bias ? &ddbg : nullptr);
    EXPECT_LE(rel_error(download(dgx), gx), tol);
    EXPECT_LE(rel_error(download(ddwg), dwg), 1e-5);
    if (cc.bias) {
      EXPECT_LE(rel_error(download(ddbg), dbg), 1e-5);
    }
    Tensor dgx2 = dev({cc.B, cc.D, cc.L}, cc.dtype);
    gm::cuda::conv1d_bwd(*gpu_, dg, dx_in, dw, db, ds, dst, cc.silu, dgx2, ddwg2, nullptr);
    const Tensor once = download(ddwg2);
    Tensor ddwg3 = dev({cc.D, cc.K}, DType::F32);
    gm::cuda::copy(*gpu_, dwg0, ddwg3);
    gm::cuda::conv1d_bwd(*gpu_, dg, dx_in, dw, db, ds, dst, cc.silu, dgx2, ddwg3, nullptr);
    EXPECT_TRUE(bitwise_equal(once, download(ddwg3)));
  }
}

// An all-zero start mask sends the same problem through the general kernels.
TEST_F(CudaConv1d, VectorKernelsEqualTheGeneralOnesBitwise) {
  SCOPED_TRACE(seed_note());
  for (DType dtype : {DType::BF16, DType::F32}) {
    for (int64_t K : {int64_t(2), int64_t(4)}) {
      SCOPED_TRACE(std::string(dtype_name(dtype)) + " K" + std::to_string(K));
      const int64_t B = 2, D = 6, L = 1600;
      Tensor xw = normal({B, 2 * D, L});
      Tensor dxw = upload(xw, dtype);
      const Tensor x = dxw.narrow(1, 0, D);  // the mixer's x: half of xz
      Tensor w = upload(normal({D, K}, 0.5f)), bias = upload(normal({D}));
      Tensor zeros = dev({B, L}, DType::U8);
      gm::cuda::fill(*gpu_, zeros, 0.f);
      Tensor out_v = dev({B, D, L}, dtype), out_g = dev({B, D, L}, dtype);
      gm::cuda::conv1d_fwd(*gpu_, x, w, &bias, nullptr, nullptr, true, out_v, nullptr);
      gm::cuda::conv1d_fwd(*gpu_, x, w, &bias, &zeros, nullptr, true, out_g, nullptr);
      EXPECT_TRUE(bitwise_equal(download(out_v), download(out_g)));
      Tensor g = upload(normal({B, D, L}), dtype);
      Tensor dx_v = dev({B, D, L}, dtype), dx_g = dev({B, D, L}, dtype);
      Tensor dw_v = dev({D, K}, DType::F32), dw_g = dev({D, K}, DType::F32);
      Tensor db_v = dev({D}, DType::F32), db_g = dev({D}, DType::F32);
      for (Tensor* t : {&dw_v, &dw_g, &db_v, &db_g}) gm::cuda::fill(*gpu_, *t, 0.f);
      gm::cuda::conv1d_bwd(*gpu_, g, x, w, &bias, nullptr, nullptr, true, dx_v, dw_v, &db_v);
      gm::cuda::conv1d_bwd(*gpu_, g, x, w, &bias, &zeros, nullptr, true, dx_g, dw_g, &db_g);
      EXPECT_TRUE(bitwise_equal(download(dx_v), download(dx_g)));
      EXPECT_TRUE(bitwise_equal(download(dw_v), download(dw_g)));
      EXPECT_TRUE(bitwise_equal(download(db_v), download(db_g)));
    }
  }
}

// The forward's vector kernel with document starts and stream state: bitwise the general
// kernel, which rows that are not 16-byte aligned (a stride of L + 2) take.
TEST_F(CudaConv1d, VectorForwardWithStartsAndStateEqualsTheGeneralOneBitwise) {
  SCOPED_TRACE(seed_note());
  for (DType dtype : {DType::BF16, DType::F32}) {
    for (int64_t K : {int64_t(2), int64_t(4)}) {
      SCOPED_TRACE(std::string(dtype_name(dtype)) + " K" + std::to_string(K));
      const int64_t B = 2, D = 6, L = 1600;
      const Tensor padded = upload(normal({B, D, L + 2}), dtype);
      const Tensor x_g = padded.narrow(2, 0, L);
      Tensor x_v = dev({B, D, L}, dtype);
      gm::cuda::copy(*gpu_, x_g, x_v);
      Tensor w = upload(normal({D, K}, 0.5f)), bias = upload(normal({D}));
      Tensor starts_h = flags({B, L}, 0.01);
      starts_h.data<uint8_t>()[0] = 1;  // a start at a thread's first position
      starts_h.data<uint8_t>()[L + 9] = 1;
      const Tensor starts = upload(starts_h), state = upload(normal({B, D, K - 1}));
      for (int mode = 0; mode < 3; ++mode) {  // starts, state, both
        const Tensor* st = mode != 1 ? &starts : nullptr;
        const Tensor* si = mode != 0 ? &state : nullptr;
        Tensor out_v = dev({B, D, L}, dtype), out_g = dev({B, D, L}, dtype);
        Tensor so_v = dev({B, D, K - 1}, DType::F32), so_g = dev({B, D, K - 1}, DType::F32);
        gm::cuda::conv1d_fwd(*gpu_, x_v, w, &bias, st, si, true, out_v, &so_v);
        gm::cuda::conv1d_fwd(*gpu_, x_g, w, &bias, st, si, true, out_g, &so_g);
        EXPECT_TRUE(bitwise_equal(download(out_v), download(out_g))) << "mode " << mode;
        EXPECT_TRUE(bitwise_equal(download(so_v), download(so_g))) << "mode " << mode;
      }
    }
  }
}

TEST_F(CudaConv1d, StreamingEqualsOneCall) {
  SCOPED_TRACE(seed_note());
  const int64_t B = 2, D = 12, L = 3000, K = 4, cut = 1234;
  Tensor x = upload(normal({B, D, L})), w = upload(normal({D, K})), bias = upload(normal({D}));
  Tensor starts = upload(flags({B, L}, 0.002));
  Tensor full = dev({B, D, L}, DType::F32), parts = dev({B, D, L}, DType::F32);
  Tensor s_end = dev({B, D, K - 1}, DType::F32), s_mid = dev({B, D, K - 1}, DType::F32),
         s_end2 = dev({B, D, K - 1}, DType::F32);
  poison(full);
  poison(parts);
  gm::cuda::conv1d_fwd(*gpu_, x, w, &bias, &starts, nullptr, true, full, &s_end);
  for (int part = 0; part < 2; ++part) {
    const int64_t t0 = part ? cut : 0, len = part ? L - cut : cut;
    Tensor xs = x.narrow(2, t0, len), ss = starts.narrow(1, t0, len), os = parts.narrow(2, t0, len);
    gm::cuda::conv1d_fwd(*gpu_, xs, w, &bias, &ss, part ? &s_mid : nullptr, true, os, part ? &s_end2 : &s_mid);
  }
  EXPECT_TRUE(bitwise_equal(download(parts), download(full)));
  EXPECT_TRUE(bitwise_equal(download(s_end2), download(s_end)));
}

}  // namespace
}  // namespace gm::test
#endif
