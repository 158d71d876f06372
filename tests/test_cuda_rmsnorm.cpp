// CUDA residual add + RMSNorm forward / backward against the CPU twin: x absent, f32 or
// bf16; out / dout f32 or bf16; row counts that are not multiples of the block; the
// dweight reduction bitwise deterministic.
#include "tests/test_cuda_support.h"

#ifdef GENOMAMBA_HAVE_CUDA
namespace gm::test {
namespace {

using CudaRmsNorm = CudaTest;

TEST_F(CudaRmsNorm, MatchesCpu) {
  SCOPED_TRACE(seed_note());
  const float eps = 1e-5f;
  for (auto [M, d] : {std::pair<int64_t, int64_t>{1, 64}, {1000, 256}, {4097, 96}, {130, 1000}, {77, 512}, {33, 128}}) {
    for (DType act : {DType::F32, DType::BF16}) {
      for (int xmode = 0; xmode < 3; ++xmode) {  // no x, f32 x, act x
        SCOPED_TRACE("M" + std::to_string(M) + " d" + std::to_string(d) + " " + dtype_name(act) + " x mode " +
                     std::to_string(xmode));
        const double tol = act == DType::BF16 ? 1e-2 : 1e-5;
        const DType xdt = xmode == 2 ? act : DType::F32;
        Tensor x = normal({M, d}), res = normal({M, d}), w = uniform({d}, 0.5f, 1.5f);
        if (xdt == DType::BF16) round_bf16(x);
        Tensor dx = upload(x, xdt), dres = upload(res), dw = upload(w);
        Tensor out = host({M, d}), rstd = host({M});
        Tensor dout_ = dev({M, d}, act), drstd = dev({M}, DType::F32);
        poison(dout_);
        poison(drstd);
        gm::cpu::add_rmsnorm_fwd(*cpu_, xmode ? &x : nullptr, res, w, eps, out, rstd);
        gm::cuda::add_rmsnorm_fwd(*gpu_, xmode ? &dx : nullptr, dres, dw, eps, dout_, drstd);
        EXPECT_LE(rel_error(download(dres), res), 1e-6);
        EXPECT_LE(rel_error(download(drstd), rstd), 1e-5);
        EXPECT_LE(rel_error(download(dout_), out), tol);

        Tensor g = normal({M, d});
        if (act == DType::BF16) round_bf16(g);
        Tensor dr = normal({M, d}), dwt = normal({d});
        Tensor dg = upload(g, act), ddr = upload(dr), ddwt = upload(dwt), ddwt2 = upload(dwt), ddr2 = upload(dr);
        gm::cpu::add_rmsnorm_bwd(*cpu_, g, res, w, rstd, dr, dwt);
        gm::cuda::add_rmsnorm_bwd(*gpu_, dg, dres, dw, drstd, ddr, ddwt);
        gm::cuda::add_rmsnorm_bwd(*gpu_, dg, dres, dw, drstd, ddr2, ddwt2);
        EXPECT_LE(rel_error(download(ddr), dr), 1e-5);
        const Tensor gw = download(ddwt);
        EXPECT_LE(rel_error(gw, dwt), 1e-5);
        EXPECT_TRUE(bitwise_equal(gw, download(ddwt2)));
      }
    }
  }
}

}  // namespace
}  // namespace gm::test
#endif
