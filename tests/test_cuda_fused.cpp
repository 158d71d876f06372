// CUDA fused ops of the training step against their CPU twins: the out-of-place residual
// add + RMSNorm (and bitwise equality with the in-place CUDA op), the norm backward with
// the act copy of the residual gradient, and the LM head + cross-entropy (f32 and bf16,
// row counts past one grid of tiles, d not a multiple of 32, the unfused path for V > 16),
// with dweight bitwise deterministic.
#include "tests/test_cuda_support.h"

#ifdef GENOMAMBA_HAVE_CUDA
namespace gm::test {
namespace {

using CudaFused = CudaTest;

TEST_F(CudaFused, ResidualNormOutOfPlaceMatchesCpuAndTheInPlaceOp) {
  SCOPED_TRACE(seed_note());
  const float eps = 1e-5f;
  for (auto [M, d] : {std::pair<int64_t, int64_t>{1, 64}, {4097, 256}, {130, 1000}}) {
    for (DType act : {DType::F32, DType::BF16}) {
      for (bool with_x : {false, true}) {
        SCOPED_TRACE("M" + std::to_string(M) + " d" + std::to_string(d) + " " + dtype_name(act) +
                     (with_x ? " x" : " no x"));
        Tensor x = normal({M, d}), r_in = normal({M, d}), w = uniform({d}, 0.5f, 1.5f);
        if (act == DType::BF16) round_bf16(x);
        Tensor r_out = host({M, d}), out = host({M, d}), rstd = host({M});
        gm::cpu::add_rmsnorm_fwd_out(*cpu_, with_x ? &x : nullptr, r_in, r_out, w, eps, out, rstd);
        Tensor dx = upload(x, act), dr_in = upload(r_in), dw = upload(w);
        Tensor dr_out = dev({M, d}, DType::F32), dout = dev({M, d}, act), drstd = dev({M}, DType::F32);
        poison(dr_out);
        poison(dout);
        poison(drstd);
        gm::cuda::add_rmsnorm_fwd_out(*gpu_, with_x ? &dx : nullptr, dr_in, dr_out, dw, eps, dout, drstd);
        EXPECT_TRUE(bitwise_equal(download(dr_in), r_in)) << "residual_in changed";
        EXPECT_LE(rel_error(download(dr_out), r_out), 1e-6);
        EXPECT_LE(rel_error(download(drstd), rstd), 1e-5);
        EXPECT_LE(rel_error(download(dout), out), act == DType::BF16 ? 1e-2 : 1e-5);
        // The in-place op on a copy of residual_in gives bitwise the same three outputs.
        Tensor dr_inplace = upload(r_in), dout2 = dev({M, d}, act), drstd2 = dev({M}, DType::F32);
        gm::cuda::add_rmsnorm_fwd(*gpu_, with_x ? &dx : nullptr, dr_inplace, dw, eps, dout2, drstd2);
        EXPECT_TRUE(bitwise_equal(download(dr_inplace), download(dr_out)));
        EXPECT_TRUE(bitwise_equal(download(dout2), download(dout)));
        EXPECT_TRUE(bitwise_equal(download(drstd2), download(drstd)));
      }
    }
  }
}

TEST_F(CudaFused, NormBackwardWithActCopyMatchesCpu) {
  SCOPED_TRACE(seed_note());
  for (auto [M, d] : {std::pair<int64_t, int64_t>{1000, 256}, {4097, 96}, {300, 512}}) {
    for (DType act : {DType::F32, DType::BF16}) {
      SCOPED_TRACE("M" + std::to_string(M) + " d" + std::to_string(d) + " " + dtype_name(act));
      Tensor res = normal({M, d}), w = uniform({d}, 0.5f, 1.5f), out = host({M, d}), rstd = host({M});
      gm::cpu::add_rmsnorm_fwd(*cpu_, nullptr, res, w, 1e-5f, out, rstd);
      Tensor g = normal({M, d});
      if (act == DType::BF16) round_bf16(g);
      Tensor dr = normal({M, d}), dwt = normal({d}), dr_act = host({M, d});
      Tensor dg = upload(g, act), dres = upload(res), dw = upload(w), drstd = upload(rstd);
      Tensor ddr = upload(dr), ddwt = upload(dwt), ddr_act = dev({M, d}, act);
      Tensor ddr2 = upload(dr), ddwt2 = upload(dwt);
      poison(ddr_act);
      gm::cpu::add_rmsnorm_bwd_act(*cpu_, g, res, w, rstd, dr, dwt, dr_act);
      gm::cuda::add_rmsnorm_bwd_act(*gpu_, dg, dres, dw, drstd, ddr, ddwt, ddr_act);
      gm::cuda::add_rmsnorm_bwd(*gpu_, dg, dres, dw, drstd, ddr2, ddwt2);
      const Tensor got_dr = download(ddr);
      EXPECT_LE(rel_error(got_dr, dr), 1e-5);
      EXPECT_LE(rel_error(download(ddwt), dwt), 1e-5);
      EXPECT_TRUE(bitwise_equal(got_dr, download(ddr2)));
      EXPECT_TRUE(bitwise_equal(download(ddwt), download(ddwt2)));
      // The act copy is the updated dresidual, rounded to act.
      Tensor expect = got_dr;
      if (act == DType::BF16) round_bf16(expect);
      EXPECT_TRUE(bitwise_equal(download(ddr_act), expect));
    }
  }
}

TEST_F(CudaFused, LmHeadCrossEntropyMatchesCpu) {
  SCOPED_TRACE(seed_note());
  struct Shape {
    int64_t M, d, V;
  };
  // bf16 with d a multiple of 16 (<= 1,024) takes the tensor-core kernel: d 64, 256, 512, 1024,
  // V 12 and 16, M not a multiple of its 128-row tiles.
  for (Shape s : {Shape{1, 64, 16}, Shape{1000, 256, 16}, Shape{70001, 300, 16}, Shape{3001, 520, 16},
                  Shape{2000, 1030, 12}, Shape{999, 64, 40}, Shape{4099, 512, 12}, Shape{300, 1024, 16}}) {
    for (DType act : {DType::F32, DType::BF16}) {
      SCOPED_TRACE("M" + std::to_string(s.M) + " d" + std::to_string(s.d) + " V" + std::to_string(s.V) + " " +
                   dtype_name(act));
      Tensor h = normal({s.M, s.d}), w = normal({s.V, s.d}, 0.1f);
      if (act == DType::BF16) {
        round_bf16(h);
        round_bf16(w);
      }
      Tensor targets = host({s.M}, DType::U8), fl = flags({s.M}, 0.3);
      std::uniform_int_distribution<int> tok(0, 15);
      for (int64_t i = 0; i < s.M; ++i) targets.data<uint8_t>()[i] = static_cast<uint8_t>(tok(rng_));
      Tensor losses = host({s.M}), dh = host({s.M, s.d}), dw = normal({s.V, s.d});
      Tensor dh_ = upload(h, act), dw_ = upload(w, act), dt = upload(targets), dfl = upload(fl);
      Tensor dlosses = dev({s.M}, DType::F32), ddh = dev({s.M, s.d}, act), ddw = upload(dw), ddw2 = upload(dw);
      poison(dlosses);
      poison(ddh);
      gm::cpu::lm_head_cross_entropy(*cpu_, h, w, targets, &fl, 0.25f, 1e-3f, losses, dh, dw);
      gm::cuda::lm_head_cross_entropy(*gpu_, dh_, dw_, dt, &dfl, 0.25f, 1e-3f, dlosses, ddh, ddw);
      EXPECT_LE(rel_error(download(dlosses), losses), 1e-5);
      EXPECT_LE(rel_error(download(ddh), dh), act == DType::BF16 ? 1e-2 : 1e-5);
      const Tensor got_dw = download(ddw);
      EXPECT_LE(rel_error(got_dw, dw), 1e-4);
      gm::cuda::lm_head_cross_entropy(*gpu_, dh_, dw_, dt, &dfl, 0.25f, 1e-3f, dlosses, ddh, ddw2);
      EXPECT_TRUE(bitwise_equal(download(ddw2), got_dw)) << "dweight differs between two runs";
    }
  }
}

}  // namespace
}  // namespace gm::test
#endif
