// The same model code on CUDA against the CPU reference: fp32 mode tightly, bf16 mode
// (bf16 activations and weight copies) loosely, the bf16 weight copy refreshed after
// an optimizer step, recomputed layers against saved ones, and streaming on the GPU.
// Skipped without a CUDA device.
#include <gtest/gtest.h>

#include "mamba/batch.h"
#include "mamba/checkpoint.h"
#include "mamba/model.h"
#include "mamba/optim.h"
#include "tests/test_mamba_model_util.h"
#include "tests/test_support.h"

namespace gm {
namespace {

struct RunResult {
  double loss = 0;
  std::vector<float> logits;
  std::vector<std::vector<float>> grads;  // per parameter
};

class ModelCuda : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!cuda_available()) GTEST_SKIP() << "no CUDA device: the CUDA model was not compared with the CPU model";
    cpu_model = std::make_unique<MambaModel>(cpu, test::small_config(64, 2));
    cpu_model->init_weights(cpu, 5);
    weights = dir / "model.safetensors";
    save_weights(cpu, *cpu_model, weights);
    std::vector<uint8_t> windows = test::random_windows(8, B, W), flags(windows.size(), 0);
    flags[static_cast<size_t>(W + 40)] = kTokenDocStart;
    for (size_t i = 10; i < 30; ++i) flags[i] |= kTokenSoftMasked;
    batch = NextTokenBatch::from_windows(windows, flags, B, W);
  }

  RunResult run(Context& ctx, MambaModel& model) {
    RunResult r;
    const TokenInputs in = batch.upload(ctx, 0.5f);
    const double weight = batch.weight_sum(0.5f);
    model.params().zero_grads(ctx);
    r.loss = model.forward_backward(ctx, in, static_cast<float>(1.0 / weight)) / weight;
    ForwardRequest req;
    req.tokens = in.tokens;
    req.seq_start = in.seq_start;
    r.logits = test::to_host(ctx, model.forward(ctx, req).logits);
    for (size_t i = 0; i < model.params().size(); ++i)
      r.grads.push_back(test::to_host(ctx, model.params().grad(static_cast<int>(i))));
    return r;
  }

  void compare(Precision precision, double loss_tol, double logits_tol, double grad_tol) {
    auto ctx = Context::create(Device::cuda(0), 0, precision);
    std::unique_ptr<MambaModel> gpu_model = load_model(*ctx, weights);
    const RunResult ref = run(cpu, *cpu_model), got = run(*ctx, *gpu_model);
    EXPECT_LE(std::abs(got.loss - ref.loss) / ref.loss, loss_tol) << got.loss << " vs " << ref.loss;
    EXPECT_LE(test::rel_error(got.logits, ref.logits), logits_tol);
    for (size_t i = 0; i < ref.grads.size(); ++i)
      EXPECT_LE(test::rel_error(got.grads[i], ref.grads[i]), grad_tol) << cpu_model->params().infos()[i].name;
  }

  static constexpr int64_t B = 2, W = 97;
  CpuContext cpu{2};
  std::unique_ptr<MambaModel> cpu_model;
  test::TempDir dir;
  std::string weights;
  NextTokenBatch batch;
};

TEST_F(ModelCuda, Fp32MatchesTheCpu) { compare(Precision::FP32, 1e-5, 1e-5, 1e-4); }

TEST_F(ModelCuda, Bf16IsCloseToTheCpu) { compare(Precision::BF16, 1e-2, 3e-2, 1e-1); }

TEST_F(ModelCuda, Bf16WeightCopyFollowsOptimizerSteps) {
  auto ctx = Context::create(Device::cuda(0), 0, Precision::BF16);
  std::unique_ptr<MambaModel> gpu_model = load_model(*ctx, weights);
  const RunResult before = run(cpu, *cpu_model);
  run(*ctx, *gpu_model);  // same gradients (up to bf16) on both
  AdamWConfig acfg;
  AdamW cpu_opt(cpu, cpu_model->params(), acfg), gpu_opt(*ctx, gpu_model->params(), acfg);
  ASSERT_TRUE(cpu_opt.step(cpu, 5e-2).applied);
  ASSERT_TRUE(gpu_opt.step(*ctx, 5e-2).applied);
  const RunResult cpu_after = run(cpu, *cpu_model), gpu_after = run(*ctx, *gpu_model);
  const double moved = test::rel_error(before.logits, cpu_after.logits);
  ASSERT_GT(moved, 0.1);
  // Stale bf16 weights would leave the GPU logits where they were before the step.
  EXPECT_LT(test::rel_error(gpu_after.logits, cpu_after.logits), 0.25 * moved);
}

// Recomputed layers run their forward again into buffers shared by all layers (y over x,
// delta over dx): a wrong alias would move the gradients far more than these bounds. Kept
// layers recompute nothing in the backward.
TEST_F(ModelCuda, RecomputedLayersGiveTheSavedGradients) {
  for (Precision precision : {Precision::FP32, Precision::BF16}) {
    auto ctx = Context::create(Device::cuda(0), 0, precision);
    std::unique_ptr<MambaModel> gpu_model = load_model(*ctx, weights);
    const TokenInputs in = batch.upload(*ctx, 0.5f);
    const float scale = static_cast<float>(1.0 / batch.weight_sum(0.5f));
    auto grads_with = [&](std::vector<bool> recompute, std::vector<bool> keep = {}) {
      gpu_model->params().zero_grads(*ctx);
      TrainOptions opt;
      opt.recompute = std::move(recompute);
      opt.keep = std::move(keep);
      const double loss = gpu_model->forward_backward(*ctx, in, scale, opt);
      return std::make_pair(loss, gpu_model->params().download_flat(*ctx, gpu_model->params().grads()));
    };
    const auto saved = grads_with({false, false}), all = grads_with({true, true}), mixed = grads_with({true, false});
    const double tol = precision == Precision::FP32 ? 1e-6 : 1e-3;
    EXPECT_NEAR(all.first, saved.first, tol * std::abs(saved.first)) << precision_name(precision);
    EXPECT_LE(test::rel_error(all.second, saved.second), tol) << precision_name(precision);
    EXPECT_LE(test::rel_error(mixed.second, saved.second), tol) << precision_name(precision);
    // The same plan twice: bitwise the same.
    EXPECT_EQ(grads_with({true, true}).second, all.second) << precision_name(precision);
    // Kept layers use the forward's xc, delta and norm output instead of recomputing them
    // with the same kernels on the same inputs: bitwise the saved gradients.
    const auto kept = grads_with({false, false}, {true, true}), one = grads_with({true, false}, {false, true});
    EXPECT_EQ(kept.first, saved.first) << precision_name(precision);
    EXPECT_EQ(kept.second, saved.second) << precision_name(precision);
    EXPECT_EQ(one.second, mixed.second) << precision_name(precision);
  }
}

TEST_F(ModelCuda, StreamingMatchesOnePass) {
  auto ctx = Context::create(Device::cuda(0), 0, Precision::FP32);
  std::unique_ptr<MambaModel> gpu_model = load_model(*ctx, weights);
  const int64_t L = batch.length, V = 16;
  ForwardRequest full;
  full.tokens = upload_u8(*ctx, batch.inputs, {B, L});
  const std::vector<float> one = test::to_host(*ctx, gpu_model->forward(*ctx, full).logits);
  StreamState state = gpu_model->new_stream_state(*ctx, B);
  std::vector<float> streamed(one.size(), NAN);
  int64_t t0 = 0;
  for (int64_t n : {31, 2, 63}) {
    std::vector<uint8_t> part;
    for (int64_t b = 0; b < B; ++b)
      part.insert(part.end(), batch.inputs.begin() + b * L + t0, batch.inputs.begin() + b * L + t0 + n);
    ForwardRequest req;
    req.tokens = upload_u8(*ctx, part, {B, n});
    req.state = &state;
    const std::vector<float> logits = test::to_host(*ctx, gpu_model->forward(*ctx, req).logits);
    for (int64_t b = 0; b < B; ++b)
      std::copy(logits.begin() + b * n * V, logits.begin() + (b + 1) * n * V, streamed.begin() + (b * L + t0) * V);
    t0 += n;
  }
  ASSERT_EQ(t0, L);
  EXPECT_LE(test::rel_error(streamed, one), 1e-5);
}

}  // namespace
}  // namespace gm
