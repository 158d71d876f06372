// Initialisation: every parameter follows mamba_ssm's rule (ranges, means, spreads),
// deterministically in the seed, with independent streams per tensor.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <numeric>

#include "mamba/model.h"
#include "tests/test_mamba_model_util.h"

namespace gm {
namespace {

struct Stats {
  double mean = 0, var = 0, min = 0, max = 0;
};

Stats stats_of(const std::vector<float>& v) {
  Stats s;
  s.min = *std::min_element(v.begin(), v.end());
  s.max = *std::max_element(v.begin(), v.end());
  for (float x : v) s.mean += x;
  s.mean /= static_cast<double>(v.size());
  for (float x : v) s.var += (x - s.mean) * (x - s.mean);
  s.var /= static_cast<double>(v.size());
  return s;
}

// U(-b, b): inside the bounds, reaching near them, mean 0 and variance b^2/3 within
// sampling error (5 standard errors).
void expect_uniform(const std::vector<float>& v, double b, const std::string& name) {
  SCOPED_TRACE(name);
  const Stats s = stats_of(v);
  const double n = static_cast<double>(v.size());
  EXPECT_GE(s.min, -b);
  EXPECT_LE(s.max, b);
  EXPECT_LT(s.min, -0.95 * b);
  EXPECT_GT(s.max, 0.95 * b);
  EXPECT_NEAR(s.mean, 0.0, 5 * b / std::sqrt(3 * n));
  EXPECT_NEAR(s.var, b * b / 3, 5 * b * b * std::sqrt(4.0 / 45.0 / n));
}

class ModelInit : public ::testing::Test {
 protected:
  void SetUp() override {
    cfg = test::small_config(64, 4);
    cfg.d_state = 16;
    cfg = cfg.resolved();
    model = std::make_unique<MambaModel>(ctx, cfg);
    model->init_weights(ctx, 7);
  }
  std::vector<float> get(const std::string& name) {
    return model->params().download(ctx, model->params().index(name));
  }
  CpuContext ctx{2};
  ModelConfig cfg;
  std::unique_ptr<MambaModel> model;
};

TEST_F(ModelInit, FollowsMambaSsmRules) {
  const double d = 64, D = 128, K = 4, R = 4;
  ASSERT_EQ(cfg.rank(), 4);
  const std::vector<float> emb = get("backbone.embedding.weight");
  const Stats e = stats_of(emb);
  EXPECT_NEAR(e.mean, 0.0, 5 * 0.02 / std::sqrt(static_cast<double>(emb.size())));
  EXPECT_NEAR(std::sqrt(e.var), 0.02, 0.02 * 0.15);
  for (int i = 0; i < cfg.n_layer; ++i) {
    const std::string p = "backbone.layers." + std::to_string(i) + ".";
    expect_uniform(get(p + "mixer.in_proj.weight"), 1 / std::sqrt(d), p + "in_proj");
    expect_uniform(get(p + "mixer.conv1d.weight"), 1 / std::sqrt(K), p + "conv1d.weight");
    expect_uniform(get(p + "mixer.conv1d.bias"), 1 / std::sqrt(K), p + "conv1d.bias");
    expect_uniform(get(p + "mixer.x_proj.weight"), 1 / std::sqrt(D), p + "x_proj");
    expect_uniform(get(p + "mixer.dt_proj.weight"), 1 / std::sqrt(R), p + "dt_proj.weight");
    expect_uniform(get(p + "mixer.out_proj.weight"), 1 / std::sqrt(D) / std::sqrt(4.0), p + "out_proj");

    // dt = softplus(bias) is log-uniform in [dt_min, dt_max].
    std::vector<float> log_dt;
    for (float b : get(p + "mixer.dt_proj.bias")) {
      const double dt = std::log1p(std::exp(static_cast<double>(b)));
      EXPECT_GE(dt, cfg.dt_min * (1 - 1e-5));
      EXPECT_LE(dt, cfg.dt_max * (1 + 1e-5));
      log_dt.push_back(static_cast<float>(std::log(dt)));
    }
    const Stats l = stats_of(log_dt);
    const double lo = std::log(cfg.dt_min), hi = std::log(cfg.dt_max), half = (hi - lo) / 2;
    EXPECT_NEAR(l.mean, (lo + hi) / 2, 5 * half / std::sqrt(3 * D));
    EXPECT_LT(l.min, lo + 0.1 * (hi - lo));
    EXPECT_GT(l.max, hi - 0.1 * (hi - lo));

    const std::vector<float> a_log = get(p + "mixer.A_log");
    for (int64_t c = 0; c < 128; ++c)
      for (int64_t n = 0; n < 16; ++n)
        ASSERT_EQ(a_log[static_cast<size_t>(c * 16 + n)], static_cast<float>(std::log(n + 1.0)));
    for (float x : get(p + "mixer.D")) ASSERT_EQ(x, 1.f);
    for (float x : get(p + "norm.weight")) ASSERT_EQ(x, 1.f);
  }
  for (float x : get("backbone.norm_f.weight")) ASSERT_EQ(x, 1.f);
}

TEST_F(ModelInit, DeterministicPerSeedAndIndependentPerTensor) {
  MambaModel same(ctx, cfg), other(ctx, cfg);
  same.init_weights(ctx, 7);
  other.init_weights(ctx, 8);
  const auto a = model->params().download_flat(ctx, model->params().values());
  EXPECT_EQ(a, same.params().download_flat(ctx, same.params().values()));
  EXPECT_NE(a, other.params().download_flat(ctx, other.params().values()));
  // Two layers draw different values (one stream per tensor name).
  EXPECT_NE(get("backbone.layers.0.mixer.in_proj.weight"), get("backbone.layers.1.mixer.in_proj.weight"));
}

TEST(ModelInitUntied, LmHeadIsLinearDefault) {
  CpuContext ctx(1);
  ModelConfig c = test::small_config(32, 1);
  c.tie_embeddings = false;
  MambaModel m(ctx, c);
  m.init_weights(ctx, 1);
  expect_uniform(m.params().download(ctx, m.params().index("lm_head.weight")), 1 / std::sqrt(32.0), "lm_head");
}

}  // namespace
}  // namespace gm
