// CUDA memory and elementwise ops against the CPU twins: copies (host<->device, casts,
// strided views), fill, axpy, scale, neg_exp, mul, the deterministic reductions and
// has_nonfinite.
#include "tests/test_cuda_support.h"

#ifdef GENOMAMBA_HAVE_CUDA
namespace gm::test {
namespace {

using CudaElementwise = CudaTest;

TEST_F(CudaElementwise, CopiesRoundTripAndCastLikeTheHost) {
  SCOPED_TRACE(seed_note());
  Tensor h = normal({3, 5, 77});
  Tensor d = upload(h, DType::F32);
  EXPECT_TRUE(bitwise_equal(download(d), h));
  // f32 -> bf16 on the device rounds exactly as the host bf16 does, and back.
  Tensor db = dev({3, 5, 77}, DType::BF16);
  poison(db);
  gm::cuda::copy(*gpu_, d, db);
  Tensor hb = host({3, 5, 77}, DType::BF16);
  gm::cpu::copy(*cpu_, h, hb);
  Tensor got = host({3, 5, 77}, DType::BF16);
  gm::cuda::copy(*gpu_, db, got);
  EXPECT_TRUE(bitwise_equal(got, hb));
  Tensor back = dev({3, 5, 77}, DType::F32);
  poison(back);
  gm::cuda::copy(*gpu_, db, back);
  Tensor hback = host({3, 5, 77});
  gm::cpu::copy(*cpu_, hb, hback);
  EXPECT_TRUE(bitwise_equal(download(back), hback));
}

TEST_F(CudaElementwise, StridedCopies) {
  SCOPED_TRACE(seed_note());
  Tensor h = normal({4, 10, 33});
  Tensor d = upload(h, DType::F32);
  // device narrow -> host dense, host narrow -> device dense, device narrow -> device narrow
  Tensor dn = d.narrow(1, 3, 5);
  Tensor hn = h.narrow(1, 3, 5);
  Tensor ref = host({4, 5, 33});
  gm::cpu::copy(*cpu_, hn, ref);
  EXPECT_TRUE(bitwise_equal(download(dn), ref));
  Tensor d2 = dev({4, 5, 33}, DType::F32);
  poison(d2);
  gm::cuda::copy(*gpu_, hn, d2);
  EXPECT_TRUE(bitwise_equal(download(d2), ref));
  Tensor wide = dev({4, 12, 33}, DType::BF16);
  poison(wide);
  Tensor wn = wide.narrow(1, 7, 5);
  gm::cuda::copy(*gpu_, dn, wn);  // strided f32 -> strided bf16
  Tensor refb = host({4, 5, 33}, DType::BF16);
  gm::cpu::copy(*cpu_, hn, refb);
  Tensor refbf = host({4, 5, 33});
  gm::cpu::copy(*cpu_, refb, refbf);
  EXPECT_TRUE(bitwise_equal(download(wn), refbf));
}

TEST_F(CudaElementwise, FillEveryDtype) {
  for (DType dt : {DType::F32, DType::BF16, DType::I32, DType::U8}) {
    Tensor d = dev({3, 1001}, dt);
    gm::cuda::fill(*gpu_, d, 7.f);
    Tensor h = host({3, 1001}, dt), ref = host({3, 1001}, dt);
    gm::cuda::copy(*gpu_, d, h);
    gm::cpu::fill(*cpu_, ref, 7.f);
    EXPECT_TRUE(bitwise_equal(h, ref)) << dtype_name(dt);
  }
}

TEST_F(CudaElementwise, ArithmeticMatchesCpu) {
  SCOPED_TRACE(seed_note());
  for (int64_t n : {int64_t(1), int64_t(1000), int64_t(1) << 20}) {
    Tensor x = normal({n}), y = normal({n}), a = uniform({n}, -3.f, 2.f);
    Tensor dx = upload(x), dy = upload(y), da = upload(a);
    gm::cpu::axpy(*cpu_, 0.37f, x, y);
    gm::cuda::axpy(*gpu_, 0.37f, dx, dy);
    EXPECT_LE(rel_error(download(dy), y), 1e-6) << "axpy n=" << n;
    gm::cpu::scale(*cpu_, y, -1.5f);
    gm::cuda::scale(*gpu_, dy, -1.5f);
    EXPECT_LE(rel_error(download(dy), y), 1e-6) << "scale n=" << n;
    Tensor e = host({n}), de = dev({n}, DType::F32);
    poison(de);
    gm::cpu::neg_exp(*cpu_, a, e);
    gm::cuda::neg_exp(*gpu_, da, de);
    EXPECT_LE(rel_error(download(de), e), 1e-6) << "neg_exp n=" << n;
    Tensor m = host({n}), dm = dev({n}, DType::F32);
    poison(dm);
    gm::cpu::mul(*cpu_, x, a, m);
    gm::cuda::mul(*gpu_, dx, da, dm);
    EXPECT_LE(rel_error(download(dm), m), 1e-6) << "mul n=" << n;
  }
}

TEST_F(CudaElementwise, ReductionsAreExactEnoughAndDeterministic) {
  SCOPED_TRACE(seed_note());
  for (int64_t n : {int64_t(1), int64_t(777), int64_t(3) << 20}) {
    Tensor x = normal({n});
    Tensor dx = upload(x);
    const double s_cpu = gm::cpu::sum(*cpu_, x), q_cpu = gm::cpu::sum_squares(*cpu_, x);
    const double s1 = gm::cuda::sum(*gpu_, dx), s2 = gm::cuda::sum(*gpu_, dx);
    const double q1 = gm::cuda::sum_squares(*gpu_, dx), q2 = gm::cuda::sum_squares(*gpu_, dx);
    EXPECT_EQ(s1, s2);
    EXPECT_EQ(q1, q2);
    EXPECT_NEAR(s1, s_cpu, 1e-9 * (q_cpu + 1));
    EXPECT_NEAR(q1, q_cpu, 1e-12 * q_cpu);
    EXPECT_FALSE(gm::cuda::has_nonfinite(*gpu_, dx));
  }
  // A strided view reduces over its own elements only.
  Tensor w = normal({2, 6, 50});
  Tensor dw = upload(w);
  Tensor ref = host({2, 3, 50});
  gm::cpu::copy(*cpu_, w.narrow(1, 2, 3), ref);
  EXPECT_NEAR(gm::cuda::sum(*gpu_, dw.narrow(1, 2, 3)), gm::cpu::sum(*cpu_, ref), 1e-9);
}

TEST_F(CudaElementwise, NonFiniteIsFound) {
  for (float bad : {std::numeric_limits<float>::quiet_NaN(), std::numeric_limits<float>::infinity(),
                    -std::numeric_limits<float>::infinity()}) {
    Tensor x = normal({100000});
    x.data<float>()[77777] = bad;
    EXPECT_TRUE(gm::cuda::has_nonfinite(*gpu_, upload(x)));
  }
}

}  // namespace
}  // namespace gm::test
#endif
