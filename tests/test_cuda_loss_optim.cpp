// CUDA cross-entropy (loss mask, soft-mask weight, gradient) and AdamW against the CPU
// twins.
#include "tests/test_cuda_support.h"

#ifdef GENOMAMBA_HAVE_CUDA
namespace gm::test {
namespace {

using CudaLossOptim = CudaTest;

TEST_F(CudaLossOptim, CrossEntropyMatchesCpu) {
  SCOPED_TRACE(seed_note());
  for (int64_t V : {int64_t(16), int64_t(40)}) {
    for (bool with_flags : {false, true}) {
      const int64_t M = 10007;
      Tensor logits = normal({M, V}, 3.f);
      Tensor targets = host({M}, DType::U8), fl = flags({M}, 0.3);
      std::uniform_int_distribution<int> tok(0, 15);
      for (int64_t i = 0; i < M; ++i) targets.data<uint8_t>()[i] = static_cast<uint8_t>(tok(rng_));
      Tensor losses = host({M}), dl = host({M, V});
      Tensor dlogits = upload(logits), dtargets = upload(targets), dfl = upload(fl);
      Tensor dlosses = dev({M}, DType::F32), ddl = dev({M, V}, DType::F32);
      poison(dlosses);
      poison(ddl);
      gm::cpu::cross_entropy(*cpu_, logits, targets, with_flags ? &fl : nullptr, 0.25f, 1e-3f, losses, &dl);
      gm::cuda::cross_entropy(*gpu_, dlogits, dtargets, with_flags ? &dfl : nullptr, 0.25f, 1e-3f, dlosses, &ddl);
      EXPECT_LE(rel_error(download(dlosses), losses), 1e-5) << "V " << V;
      EXPECT_LE(rel_error(download(ddl), dl), 1e-5) << "V " << V;
      // Without dlogits the losses are unchanged.
      poison(dlosses);
      gm::cuda::cross_entropy(*gpu_, dlogits, dtargets, with_flags ? &dfl : nullptr, 0.25f, 1e-3f, dlosses, nullptr);
      EXPECT_LE(rel_error(download(dlosses), losses), 1e-5) << "V " << V;
    }
  }
}

TEST_F(CudaLossOptim, AdamWMatchesCpu) {
  SCOPED_TRACE(seed_note());
  for (int64_t n : {int64_t(1), int64_t(100003)}) {
    Tensor p = normal({n}), g = normal({n}), m = normal({n}, 0.1f), v = uniform({n}, 0.f, 0.01f);
    Tensor dp = upload(p), dg = upload(g), dm = upload(m), dv = upload(v);
    for (int64_t step = 1; step <= 3; ++step) {
      AdamWStep s;
      s.lr = 2e-3f;
      s.weight_decay = 0.1f;
      s.step = step;
      s.grad_scale = 0.7f;
      gm::cpu::adamw(*cpu_, p, g, m, v, s);
      gm::cuda::adamw(*gpu_, dp, dg, dm, dv, s);
    }
    EXPECT_LE(rel_error(download(dp), p), 1e-6);
    EXPECT_LE(rel_error(download(dm), m), 1e-6);
    EXPECT_LE(rel_error(download(dv), v), 1e-6);
  }
}

}  // namespace
}  // namespace gm::test
#endif
