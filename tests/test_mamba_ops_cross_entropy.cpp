// Cross-entropy against the direct formula (only ACGT targets count, soft-masked
// targets weighted), its gradient against finite differences of the double
// reference, and the f32 op against the double reference.
#include <gtest/gtest.h>

#include <cmath>

#include "mamba/cpu/cross_entropy_ref.h"
#include "mamba/ops.h"
#include "tests/test_mamba_ops_helpers.h"

namespace gm {
namespace {

using test::Rng;

constexpr int64_t kVocab = 16;

struct LossData {
  int64_t M;
  std::vector<double> logits;
  std::vector<uint8_t> targets, flags;
  LossData(int64_t m, uint64_t seed) : M(m) {
    Rng rng(seed);
    logits = test::float_exact(rng.normal(M * kVocab, 2.0));
    targets.resize(M);
    flags.resize(M);
    for (int64_t i = 0; i < M; ++i) {
      targets[i] = static_cast<uint8_t>(rng.index(kVocab));  // special ids and N included
      flags[i] = static_cast<uint8_t>(rng.index(4));         // bit 0 = soft-masked, bit 1 ignored
    }
  }
};

TEST(CrossEntropy, MatchesTheDirectFormulaAndIgnoresNonBases) {
  LossData data(200, 1);
  const float soft = 0.3f;
  CpuContext ctx(2);
  Tensor logits = test::f32_tensor(ctx, {data.M, kVocab}, data.logits);
  Tensor targets = test::u8_tensor(ctx, {data.M}, data.targets), flags = test::u8_tensor(ctx, {data.M}, data.flags);
  Tensor losses = ctx.empty({data.M}, DType::F32), dlogits = ctx.empty({data.M, kVocab}, DType::F32);
  cpu::cross_entropy(ctx, logits, targets, &flags, soft, 0.5f, losses, &dlogits);
  int counted = 0;
  for (int64_t i = 0; i < data.M; ++i) {
    const uint8_t t = data.targets[i];
    const bool base = t >= 7 && t <= 10;
    const double w = !base ? 0.0 : (data.flags[i] & 1) ? soft : 1.0;
    double z = 0;
    for (int64_t j = 0; j < kVocab; ++j) z += std::exp(data.logits[i * kVocab + j]);
    const double expected = base ? w * (std::log(z) - data.logits[i * kVocab + t]) : 0.0;
    EXPECT_NEAR(losses.data<float>()[i], expected, 1e-5 * (1 + std::fabs(expected))) << "row " << i;
    for (int64_t j = 0; j < kVocab; ++j) {
      const double p = std::exp(data.logits[i * kVocab + j]) / z;
      const double g = 0.5 * w * (p - (j == t ? 1.0 : 0.0));
      EXPECT_NEAR(dlogits.data<float>()[i * kVocab + j], g, 1e-6) << "row " << i << " col " << j;
    }
    counted += base;
  }
  EXPECT_GT(counted, 20);
  EXPECT_LT(counted, data.M);
}

TEST(CrossEntropy, GradientMatchesFiniteDifferences) {
  LossData data(12, 2);
  const double soft = 0.4, scale = 0.7;
  auto loss = [&] {
    std::vector<double> losses(data.M);
    cpu::cross_entropy_ref<double>(data.logits.data(), data.targets.data(), data.flags.data(), data.M, kVocab, soft,
                                   scale, losses.data(), nullptr, 1);
    double s = 0;
    for (double l : losses) s += l;
    return scale * s;  // dlogits is grad_scale times the gradient of the summed losses
  };
  std::vector<double> losses(data.M), dlogits(data.M * kVocab);
  cpu::cross_entropy_ref<double>(data.logits.data(), data.targets.data(), data.flags.data(), data.M, kVocab, soft,
                                 scale, losses.data(), dlogits.data(), 1);
  const auto r = test::check_gradient(loss, data.logits, dlogits);
  EXPECT_LT(test::rel_error(r.analytic, r.numeric), 1e-7);
}

TEST(CrossEntropy, FloatOpWithoutFlagsMatchesDoubleReference) {
  LossData data(500, 3);
  CpuContext ctx(3);
  Tensor logits = test::f32_tensor(ctx, {data.M, kVocab}, data.logits);
  Tensor targets = test::u8_tensor(ctx, {data.M}, data.targets);
  Tensor losses = ctx.empty({data.M}, DType::F32);
  cpu::cross_entropy(ctx, logits, targets, nullptr, 0.1f, 1.0f, losses, nullptr);
  std::vector<double> ref(data.M);
  cpu::cross_entropy_ref<double>(data.logits.data(), data.targets.data(), nullptr, data.M, kVocab, 0.1, 1.0,
                                 ref.data(), nullptr, 1);
  EXPECT_LT(test::rel_error(test::values(losses), ref), 1e-6);
}

}  // namespace
}  // namespace gm
