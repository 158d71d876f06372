// The whole model's loss gradient against central finite differences (float32 model,
// so differences use a step large enough to rise above rounding), a few random
// entries per parameter tensor plus each tensor's largest gradient entry.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>

#include "mamba/batch.h"
#include "mamba/model.h"
#include "mamba/rng.h"
#include "tests/test_mamba_model_util.h"

namespace gm {
namespace {

TEST(ModelGradCheck, LossGradientMatchesFiniteDifferences) {
  CpuContext ctx(2);
  ModelConfig cfg = test::small_config(16, 2);
  MambaModel model(ctx, cfg);
  model.init_weights(ctx, 11);
  ParamStore& ps = model.params();
  // Move away from the symmetric init (D = 1, norms = 1, tiny out_proj) so every
  // parameter has a gradient of its own.
  Rng rng(5);
  for (size_t i = 0; i < ps.size(); ++i) {
    std::vector<float> v = ps.download(ctx, static_cast<int>(i));
    const bool small_init = ps.infos()[i].name.find("out_proj") != std::string::npos;
    for (float& x : v) x += static_cast<float>(rng.normal(0, small_init ? 0.2 : 0.1));
    ps.upload(ctx, static_cast<int>(i), v);
  }
  ps.mark_updated();

  const int64_t B = 2, W = 14;
  std::vector<uint8_t> windows = test::random_windows(3, B, W);
  std::vector<uint8_t> flags(windows.size(), 0);
  flags[static_cast<size_t>(W + 6)] = kTokenDocStart;  // row 1 packs two documents
  flags[3] = kTokenSoftMasked;
  const NextTokenBatch batch = NextTokenBatch::from_windows(windows, flags, B, W);
  const TokenInputs in = batch.upload(ctx, 0.5f);
  const double weight = batch.weight_sum(0.5f);
  auto mean_loss = [&] { return model.loss_sum(ctx, in) / weight; };

  ps.zero_grads(ctx);
  model.forward_backward(ctx, in, static_cast<float>(1.0 / weight));

  double num = 0, den = 0;
  for (size_t i = 0; i < ps.size(); ++i) {
    const ParamInfo& p = ps.infos()[i];
    SCOPED_TRACE(p.name);
    const std::vector<float> grad = test::to_host(ctx, ps.grad(static_cast<int>(i)));
    std::vector<size_t> picks = {static_cast<size_t>(
        std::max_element(grad.begin(), grad.end(), [](float a, float b) { return std::abs(a) < std::abs(b); }) -
        grad.begin())};
    for (int k = 0; k < 3; ++k) picks.push_back(static_cast<size_t>(rng.below(static_cast<uint64_t>(p.numel))));
    std::vector<float> values = ps.download(ctx, static_cast<int>(i));
    for (size_t j : picks) {
      const float orig = values[j];
      const float h = 1e-2f * std::max(1.f, std::abs(orig));
      values[j] = orig + h;
      ps.upload(ctx, static_cast<int>(i), values);
      ps.mark_updated();
      const double up = mean_loss();
      values[j] = orig - h;
      ps.upload(ctx, static_cast<int>(i), values);
      ps.mark_updated();
      const double down = mean_loss();
      values[j] = orig;
      ps.upload(ctx, static_cast<int>(i), values);
      ps.mark_updated();
      const double fd = (up - down) / (2.0 * h);
      const double an = grad[j];
      ASSERT_TRUE(std::isfinite(fd) && std::isfinite(an));
      EXPECT_NEAR(an, fd, 0.01 * std::abs(fd) + 5e-6) << "entry " << j;
      num += (an - fd) * (an - fd);
      den += fd * fd;
    }
  }
  ASSERT_GT(den, 0);
  EXPECT_LE(std::sqrt(num / den), 5e-3);
}

}  // namespace
}  // namespace gm
