// Optimizer: AdamW steps against a hand computation (decay mask, bias correction,
// clipping), skipped non-finite steps, the decay mask of the real model, LR schedule.
#include <gtest/gtest.h>

#include <cmath>
#include <numbers>

#include "mamba/model.h"
#include "mamba/optim.h"
#include "tests/test_mamba_model_util.h"

namespace gm {
namespace {

// Hand AdamW (PyTorch's formula) on one value, in double.
struct HandAdam {
  double p, m = 0, v = 0;
  void step(double g, double lr, double wd, int t, double b1 = 0.9, double b2 = 0.95, double eps = 1e-8) {
    p *= 1 - lr * wd;
    m = b1 * m + (1 - b1) * g;
    v = b2 * v + (1 - b2) * g * g;
    const double mhat = m / (1 - std::pow(b1, t)), vhat = v / (1 - std::pow(b2, t));
    p -= lr * mhat / (std::sqrt(vhat) + eps);
  }
};

class Optim : public ::testing::Test {
 protected:
  void SetUp() override {
    store = ParamStore(ctx, {{"w", {2, 3}, true}, {"b", {3}, false}});
    store.upload(ctx, 0, {0.5f, -1.f, 2.f, 0.f, 3.f, -0.25f});
    store.upload(ctx, 1, {1.f, -2.f, 0.125f});
  }
  void set_grads(const std::vector<float>& gw, const std::vector<float>& gb) {
    std::vector<float> flat(static_cast<size_t>(store.flat_numel()), 0.f);
    std::copy(gw.begin(), gw.end(), flat.begin() + store.infos()[0].offset);
    std::copy(gb.begin(), gb.end(), flat.begin() + store.infos()[1].offset);
    store.upload_flat(ctx, flat, store.grads());
  }
  CpuContext ctx{1};
  ParamStore store;
};

TEST_F(Optim, TwoStepsMatchHandAdamW) {
  AdamWConfig cfg;
  cfg.weight_decay = 0.1;
  cfg.max_grad_norm = 0;  // no clipping here
  AdamW opt(ctx, store, cfg);
  std::vector<HandAdam> hw, hb;
  for (float x : store.download(ctx, 0)) hw.push_back({x});
  for (float x : store.download(ctx, 1)) hb.push_back({x});
  const std::vector<std::vector<float>> gws = {{0.1f, -0.2f, 0.3f, 0.f, 1.f, -1.f}, {0.2f, 0.2f, -0.3f, 1e-3f, 0.5f, 2.f}};
  const std::vector<std::vector<float>> gbs = {{0.5f, -0.5f, 0.01f}, {-0.1f, 0.4f, 0.02f}};
  const double lrs[] = {1e-2, 5e-3};
  for (int t = 0; t < 2; ++t) {
    set_grads(gws[static_cast<size_t>(t)], gbs[static_cast<size_t>(t)]);
    const StepReport r = opt.step(ctx, lrs[t]);
    EXPECT_TRUE(r.applied);
    EXPECT_EQ(r.adam_step, t + 1);
    EXPECT_EQ(r.clip_scale, 1.0);
    for (size_t i = 0; i < 6; ++i) hw[i].step(gws[static_cast<size_t>(t)][i], lrs[t], 0.1, t + 1);
    for (size_t i = 0; i < 3; ++i) hb[i].step(gbs[static_cast<size_t>(t)][i], lrs[t], 0.0, t + 1);  // no decay
  }
  const auto w = store.download(ctx, 0), b = store.download(ctx, 1);
  for (size_t i = 0; i < 6; ++i) EXPECT_NEAR(w[i], hw[i].p, 1e-6 * std::max(1.0, std::abs(hw[i].p))) << i;
  for (size_t i = 0; i < 3; ++i) EXPECT_NEAR(b[i], hb[i].p, 1e-6 * std::max(1.0, std::abs(hb[i].p))) << i;
  EXPECT_EQ(opt.steps_taken(), 2);
  // Padding between parameters stays exactly zero.
  const auto flat = store.download_flat(ctx, store.values());
  for (int64_t i = store.infos()[0].offset + 6; i < store.infos()[1].offset; ++i)
    EXPECT_EQ(flat[static_cast<size_t>(i)], 0.f);
}

TEST_F(Optim, ClipsTheGlobalNorm) {
  AdamWConfig cfg;
  cfg.weight_decay = 0;
  cfg.max_grad_norm = 1.0;
  AdamW opt(ctx, store, cfg);
  // Global norm 5 over both tensors: sqrt(3^2 + 4^2).
  set_grads({3.f, 0, 0, 0, 0, 0}, {0, 4.f, 0});
  const StepReport r = opt.step(ctx, 0.1);
  ASSERT_TRUE(r.applied);
  EXPECT_NEAR(r.grad_norm, 5.0, 1e-6);
  EXPECT_NEAR(r.clip_scale, 1.0 / (5.0 + 1e-6), 1e-9);
  // After clipping, the first moment is (1 - b1) * g * scale.
  const auto m = store.download_flat(ctx, opt.exp_avg());
  EXPECT_NEAR(m[static_cast<size_t>(store.infos()[0].offset)], 0.1 * 3.0 / 5.0, 1e-6);
  EXPECT_NEAR(m[static_cast<size_t>(store.infos()[1].offset + 1)], 0.1 * 4.0 / 5.0, 1e-6);
  // A norm below the threshold is left alone.
  set_grads({0.3f, 0, 0, 0, 0, 0}, {0, 0.4f, 0});
  EXPECT_EQ(opt.step(ctx, 0.1).clip_scale, 1.0);
}

TEST_F(Optim, SkipsNonFiniteGradients) {
  AdamW opt(ctx, store, AdamWConfig{});
  const auto before = store.download_flat(ctx, store.values());
  for (float bad : {std::nanf(""), INFINITY}) {
    set_grads({0.1f, bad, 0, 0, 0, 0}, {0, 0, 0});
    const StepReport r = opt.step(ctx, 0.1);
    EXPECT_FALSE(r.applied);
    EXPECT_EQ(r.adam_step, 0);
  }
  EXPECT_EQ(store.download_flat(ctx, store.values()), before);
  EXPECT_EQ(opt.steps_taken(), 0);
  const auto m = store.download_flat(ctx, opt.exp_avg());
  for (float x : m) EXPECT_EQ(x, 0.f);
}

TEST(OptimDecayMask, FollowsTheRecipePerParameterName) {
  CpuContext ctx(1);
  ModelConfig c = test::small_config(16, 2);
  c.tie_embeddings = false;
  MambaModel model(ctx, c);
  for (const ParamInfo& p : model.params().infos()) {
    const bool expect = p.name.ends_with("embedding.weight") || p.name.ends_with("lm_head.weight") ||
                        p.name.ends_with("in_proj.weight") || p.name.ends_with("conv1d.weight") ||
                        p.name.ends_with("x_proj.weight") || p.name.ends_with("dt_proj.weight") ||
                        p.name.ends_with("out_proj.weight");
    EXPECT_EQ(p.weight_decay, expect) << p.name;
  }
  // Decayed parameters are laid out first: AdamW runs as two calls.
  const auto spans = model.params().decay_spans();
  ASSERT_EQ(spans.size(), 2u);
  EXPECT_TRUE(spans[0].weight_decay);
  EXPECT_FALSE(spans[1].weight_decay);
  EXPECT_EQ(spans[0].offset, 0);
  EXPECT_GE(spans[1].offset, spans[0].offset + spans[0].numel);
}

TEST(LrSchedule, WarmupThenCosineToTheFloor) {
  const LrSchedule s{2e-3, 20, 200, 0.1};  // PEERS.md recipe
  auto expected = [](int64_t step) {
    return 2e-3 * std::min(1.0, (step + 1) / 20.0) *
           (0.1 + 0.9 * 0.5 * (1 + std::cos(std::numbers::pi * static_cast<double>(step) / 200)));
  };
  for (int64_t step : {0, 1, 10, 19, 20, 50, 100, 150, 199, 200}) EXPECT_DOUBLE_EQ(s.at(step), expected(step)) << step;
  EXPECT_DOUBLE_EQ(s.at(0), 2e-3 / 20);
  EXPECT_NEAR(s.at(100), 2e-3 * 0.55, 1e-15);
  EXPECT_NEAR(s.at(200), 2e-4, 1e-15);
  EXPECT_NEAR(s.at(1000), 2e-4, 1e-15);  // stays at the floor after `total`
  const LrSchedule flat{1e-3, 0, 0, 1.0};
  EXPECT_DOUBLE_EQ(flat.at(5), 1e-3);
}

}  // namespace
}  // namespace gm
