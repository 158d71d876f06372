// Memory of a training step: the recompute plan follows the budget (none recomputed when
// everything fits, the first layers first, all when nothing fits, an explicit plan kept),
// kept layers take what the plan and the flows leave (the last ones first), the estimate
// bounds the allocator's measured high-water mark for saved, recomputed and kept layers,
// recomputing lowers that mark and keeping raises it, and planned or kept steps give the
// saved step's gradients bitwise.
#include <gtest/gtest.h>

#include <algorithm>

#include "mamba/batch.h"
#include "mamba/model.h"
#include "tests/test_mamba_model_util.h"

namespace gm {
namespace {

class ModelMemory : public ::testing::Test {
 protected:
  void SetUp() override {
    model = std::make_unique<MambaModel>(ctx, test::small_config(32, 4));
    model->init_weights(ctx, 3);
    batch = NextTokenBatch::from_windows(test::random_windows(9, B, W), {}, B, W);
    in = batch.upload(ctx, 1.f);
    scale = static_cast<float>(1.0 / batch.weight_sum(1.f));
  }

  // The allocator's high-water mark above what was in use before the step.
  int64_t step_peak(const TrainOptions& opt) {
    model->params().zero_grads(ctx);
    const size_t before = ctx.allocator().bytes_in_use();
    ctx.allocator().reset_peak();
    model->forward_backward(ctx, in, scale, opt);
    return static_cast<int64_t>(ctx.allocator().peak_bytes() - before);
  }

  static constexpr int64_t B = 2, W = 1201;  // 1200 inputs: more than two scan chunks
  CpuContext ctx{2};
  std::unique_ptr<MambaModel> model;
  NextTokenBatch batch;
  TokenInputs in;
  float scale = 1;
};

// The CUDA scan backward's flow budget for a step: the default that the estimate counts,
// plus half of what the planned step leaves of the budget; the default without a budget.
TEST_F(ModelMemory, ScanFlowBudgetTakesHalfOfWhatThePlanLeaves) {
  const int64_t L = W - 1;
  const TrainMemoryEstimate e = model->train_memory_estimate(B, L, DType::F32);
  auto flows = [&](int64_t budget, const std::vector<bool>& plan) {
    TrainOptions opt;
    opt.memory_budget = budget;
    opt.recompute = plan;
    return model->plan_step(ctx, B, L, opt).scan_flow_budget;
  };
  const std::vector<bool> saved(4, false), half{true, true, false, false};
  EXPECT_EQ(flows(0, saved), Context::kDefaultScanFlowBudget) << "no budget on the CPU";
  EXPECT_EQ(flows(e.total(4, 0), saved), Context::kDefaultScanFlowBudget);
  EXPECT_EQ(flows(e.total(4, 0) + 6000, saved), Context::kDefaultScanFlowBudget + 3000);
  EXPECT_EQ(flows(e.total(2, 2) + 100, half), Context::kDefaultScanFlowBudget + 50);
  EXPECT_EQ(flows(1, half), Context::kDefaultScanFlowBudget) << "over budget: nothing more";
}

TEST_F(ModelMemory, PlanFollowsTheBudget) {
  const int64_t L = W - 1;
  const TrainMemoryEstimate e = model->train_memory_estimate(B, L, DType::F32);
  ASSERT_GT(e.per_saved_layer, e.per_recomputed_layer);
  ASSERT_GT(e.per_recomputed_layer, 0);
  auto plan = [&](int64_t budget) {
    TrainOptions opt;
    opt.memory_budget = budget;
    return model->plan_step(ctx, B, L, opt).recompute;
  };
  EXPECT_EQ(plan(0), std::vector<bool>(4, false)) << "no budget on the CPU: nothing recomputed";
  EXPECT_EQ(plan(e.total(4, 0)), std::vector<bool>(4, false));
  EXPECT_EQ(plan(e.total(4, 0) - 1), (std::vector<bool>{true, false, false, false}));
  EXPECT_EQ(plan(e.total(2, 2)), (std::vector<bool>{true, true, false, false}));
  EXPECT_EQ(plan(1), std::vector<bool>(4, true)) << "nothing fits: everything recomputed";
  TrainOptions fixed;
  fixed.recompute = {false, true, true, false};
  fixed.memory_budget = 1;
  EXPECT_EQ(model->plan_step(ctx, B, L, fixed).recompute, fixed.recompute);
  fixed.recompute = {true};
  EXPECT_THROW(model->plan_step(ctx, B, L, fixed), std::invalid_argument);
}

// Kept layers (nothing recomputed in their backward) take what the recompute plan and the
// flows leave, the last layers first. Here the flows of every chunk fit the default, so
// they take nothing more whatever their budget.
TEST_F(ModelMemory, KeptLayersTakeWhatThePlanLeaves) {
  const int64_t L = W - 1;
  const TrainMemoryEstimate e = model->train_memory_estimate(B, L, DType::F32);
  ASSERT_GT(e.per_kept_layer, 0);
  ASSERT_GT(e.per_saved_layer - e.per_recomputed_layer, e.per_kept_layer)
      << "keeping must cost less than what recomputing a layer saves";
  auto plan = [&](int64_t budget) {
    TrainOptions opt;
    opt.memory_budget = budget;
    return model->plan_step(ctx, B, L, opt);
  };
  const std::vector<bool> none(4, false);
  EXPECT_EQ(plan(0).keep, none) << "no budget on the CPU: nothing kept";
  EXPECT_EQ(plan(e.total(4, 0) + e.per_kept_layer - 1).keep, none);
  EXPECT_EQ(plan(e.total(4, 0) + e.per_kept_layer).keep, (std::vector<bool>{false, false, false, true}));
  EXPECT_EQ(plan(e.total(4, 0) + 3 * e.per_kept_layer + 5).keep, (std::vector<bool>{false, true, true, true}));
  EXPECT_EQ(plan(e.total(4, 0) + 100 * e.per_kept_layer).keep, std::vector<bool>(4, true));
  const StepPlan tight = plan(e.total(2, 2) + e.per_kept_layer);
  EXPECT_EQ(tight.recompute, (std::vector<bool>{true, true, false, false}));
  EXPECT_EQ(tight.keep, (std::vector<bool>{false, false, false, true})) << "a recomputed layer keeps nothing";
  EXPECT_EQ(plan(e.total(2, 2)).keep, none);
  // Explicit plans: kept as given, checked.
  TrainOptions fixed;
  fixed.memory_budget = 1;
  fixed.recompute = {true, false, false, false};
  fixed.keep = {false, true, false, true};
  EXPECT_EQ(model->plan_step(ctx, B, L, fixed).keep, fixed.keep);
  fixed.keep = {true, false, false, false};
  EXPECT_THROW(model->plan_step(ctx, B, L, fixed), std::invalid_argument) << "keeps a recomputed layer";
  fixed.keep = {true};
  EXPECT_THROW(model->plan_step(ctx, B, L, fixed), std::invalid_argument) << "one entry per layer";
}

TEST_F(ModelMemory, EstimateBoundsTheMeasuredPeakAndRecomputingLowersIt) {
  const int64_t L = W - 1;
  const TrainMemoryEstimate e = model->train_memory_estimate(B, L, DType::F32);
  TrainOptions saved, recomputed, kept;
  saved.recompute = std::vector<bool>(4, false);
  recomputed.recompute = std::vector<bool>(4, true);
  kept.keep = std::vector<bool>(4, true);
  const int64_t peak_saved = step_peak(saved), peak_recomputed = step_peak(recomputed), peak_kept = step_peak(kept);
  EXPECT_LE(peak_saved, e.total(4, 0));
  EXPECT_LE(peak_recomputed, e.total(0, 4));
  EXPECT_LE(peak_kept, e.total(4, 0, 4));
  // Recomputing frees most of three [B, D, L] activations per layer but the last; keeping
  // holds two more per layer (xc, delta), but the shared ones the others use.
  const int64_t slot = B * L * model->config().d_inner() * 4;
  EXPECT_LT(peak_recomputed, peak_saved - 2 * slot) << peak_recomputed << " vs " << peak_saved;
  EXPECT_GT(peak_kept, peak_saved + 5 * slot) << peak_kept << " vs " << peak_saved;
}

TEST_F(ModelMemory, BudgetedAndKeptStepsGiveTheSavedGradientsBitwise) {
  const int64_t L = W - 1;
  const TrainMemoryEstimate e = model->train_memory_estimate(B, L, DType::F32);
  auto grads = [&](const TrainOptions& opt) {
    model->params().zero_grads(ctx);
    const double loss = model->forward_backward(ctx, in, scale, opt);
    return std::make_pair(loss, model->params().download_flat(ctx, model->params().grads()));
  };
  TrainOptions budgeted, kept, mixed;
  budgeted.memory_budget = e.total(2, 2);
  kept.keep = std::vector<bool>(4, true);
  mixed.recompute = {true, false, false, true};
  mixed.keep = {false, true, false, false};
  const auto a = grads({}), b = grads(budgeted), c = grads(kept), m = grads(mixed);
  EXPECT_EQ(a.first, b.first);
  EXPECT_EQ(a.second, b.second);
  EXPECT_EQ(a.first, c.first);
  EXPECT_EQ(a.second, c.second) << "kept layers";
  EXPECT_EQ(a.second, m.second) << "recomputed, kept and saved layers in one step";
}

}  // namespace
}  // namespace gm
