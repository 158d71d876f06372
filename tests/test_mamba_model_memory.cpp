// Memory of a training step: the recompute plan follows the budget (none recomputed when
// everything fits, the first layers first, all when nothing fits, an explicit plan kept),
// the estimate bounds the allocator's measured high-water mark for saved and recomputed
// layers, recomputing lowers that mark, and a planned step gives the saved step's
// gradients bitwise.
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
    return model->scan_flow_budget_for(ctx, B, L, opt, plan);
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
    return model->plan_recompute(ctx, B, L, opt);
  };
  EXPECT_EQ(plan(0), std::vector<bool>(4, false)) << "no budget on the CPU: nothing recomputed";
  EXPECT_EQ(plan(e.total(4, 0)), std::vector<bool>(4, false));
  EXPECT_EQ(plan(e.total(4, 0) - 1), (std::vector<bool>{true, false, false, false}));
  EXPECT_EQ(plan(e.total(2, 2)), (std::vector<bool>{true, true, false, false}));
  EXPECT_EQ(plan(1), std::vector<bool>(4, true)) << "nothing fits: everything recomputed";
  TrainOptions fixed;
  fixed.recompute = {false, true, true, false};
  fixed.memory_budget = 1;
  EXPECT_EQ(model->plan_recompute(ctx, B, L, fixed), fixed.recompute);
  fixed.recompute = {true};
  EXPECT_THROW(model->plan_recompute(ctx, B, L, fixed), std::invalid_argument);
}

TEST_F(ModelMemory, EstimateBoundsTheMeasuredPeakAndRecomputingLowersIt) {
  const int64_t L = W - 1;
  const TrainMemoryEstimate e = model->train_memory_estimate(B, L, DType::F32);
  TrainOptions saved, recomputed;
  saved.recompute = std::vector<bool>(4, false);
  recomputed.recompute = std::vector<bool>(4, true);
  const int64_t peak_saved = step_peak(saved), peak_recomputed = step_peak(recomputed);
  EXPECT_LE(peak_saved, e.total(4, 0));
  EXPECT_LE(peak_recomputed, e.total(0, 4));
  // Recomputing frees most of three [B, D, L] activations per layer but the last.
  const int64_t slot = B * L * model->config().d_inner() * 4;
  EXPECT_LT(peak_recomputed, peak_saved - 2 * slot) << peak_recomputed << " vs " << peak_saved;
}

TEST_F(ModelMemory, BudgetedStepGivesTheSavedGradientsBitwise) {
  const int64_t L = W - 1;
  const TrainMemoryEstimate e = model->train_memory_estimate(B, L, DType::F32);
  auto grads = [&](const TrainOptions& opt) {
    model->params().zero_grads(ctx);
    const double loss = model->forward_backward(ctx, in, scale, opt);
    return std::make_pair(loss, model->params().download_flat(ctx, model->params().grads()));
  };
  TrainOptions budgeted;
  budgeted.memory_budget = e.total(2, 2);
  const auto a = grads({}), b = grads(budgeted);
  EXPECT_EQ(a.first, b.first);
  EXPECT_EQ(a.second, b.second);
}

}  // namespace
}  // namespace gm
