// The CPU model against the float64 PyTorch reference of tests/golden/make_model_golden.py:
// logits, loss and every parameter gradient, norm-wise relative error <= 1e-5.
#include <gtest/gtest.h>

#include <string>

#include "mamba/batch.h"
#include "mamba/checkpoint.h"
#include "mamba/model.h"
#include "mamba/safetensors.h"
#include "tests/test_mamba_model_util.h"
#include "tests/test_support.h"

namespace gm {
namespace {

constexpr double kTolerance = 1e-5;

std::string golden(const std::string& name) { return (test::source_dir() / "tests" / "golden" / name).string(); }

std::vector<uint8_t> read_u8(const SafetensorsFile& f, const std::string& name) {
  const auto& e = f.entry(name);
  EXPECT_EQ(e.dtype, "U8");
  const uint8_t* p = f.raw(name);
  return std::vector<uint8_t>(p, p + e.numel());
}

class ModelGolden : public ::testing::Test {
 protected:
  void SetUp() override {
    model = load_model(ctx, golden("model_golden.weights.safetensors"));
    io = std::make_unique<SafetensorsFile>(SafetensorsFile::open(golden("model_golden.io.safetensors")));
    const auto& shape = io->entry("windows").shape;
    ASSERT_EQ(shape.size(), 2u);
    batch = NextTokenBatch::from_windows(read_u8(*io, "windows"), read_u8(*io, "flags"), shape[0], shape[1]);
    soft_weight = io->read_f32("soft_weight")[0];
  }

  CpuContext ctx{2};
  std::unique_ptr<MambaModel> model;
  std::unique_ptr<SafetensorsFile> io;
  NextTokenBatch batch;
  float soft_weight = 1;
};

TEST_F(ModelGolden, ConfigIsTheReferenceModel) {
  EXPECT_EQ(model->config().d_model, 24);
  EXPECT_EQ(model->config().n_layer, 2);
  EXPECT_EQ(model->config().rank(), 2);
  EXPECT_EQ(batch.batch, 2);
  EXPECT_EQ(batch.length, 37);
  // The reference packs two documents in row 1: the golden data exercises the reset.
  TokenInputs in = batch.upload(ctx, soft_weight);
  EXPECT_TRUE(in.seq_start.defined());
  EXPECT_TRUE(in.target_flags.defined());
}

TEST_F(ModelGolden, LogitsMatch) {
  TokenInputs in = batch.upload(ctx, soft_weight);
  ForwardRequest req;
  req.tokens = in.tokens;
  req.seq_start = in.seq_start;
  const ForwardOutput out = model->forward(ctx, req);
  const std::vector<float> logits = test::to_host(ctx, out.logits);
  const std::vector<float> ref = io->read_f32("logits");
  const double err = test::rel_error(logits, ref);
  EXPECT_LE(err, kTolerance);
}

TEST_F(ModelGolden, LossAndEveryGradientMatch) {
  TokenInputs in = batch.upload(ctx, soft_weight);
  const double weight = batch.weight_sum(soft_weight);
  ASSERT_GT(weight, 0);
  model->params().zero_grads(ctx);
  const double loss = model->forward_backward(ctx, in, static_cast<float>(1.0 / weight)) / weight;
  const double ref_loss = io->read_f32("loss")[0];
  EXPECT_LE(std::abs(loss - ref_loss) / std::abs(ref_loss), kTolerance) << loss << " vs " << ref_loss;
  // The evaluation path agrees with the training path.
  EXPECT_LE(std::abs(model->loss_sum(ctx, in) / weight - ref_loss) / std::abs(ref_loss), kTolerance);

  const ParamStore& ps = model->params();
  ASSERT_EQ(ps.size(), 2u + 2u * 10u);
  for (size_t i = 0; i < ps.size(); ++i) {
    const ParamInfo& p = ps.infos()[i];
    SCOPED_TRACE(p.name);
    ASSERT_TRUE(io->has("grad." + p.name));
    const std::vector<float> ref = io->read_f32("grad." + p.name, p.shape);
    const std::vector<float> got = test::to_host(ctx, ps.grad(static_cast<int>(i)));
    const double err = test::rel_error(got, ref);
    EXPECT_LE(err, kTolerance) << p.name;
  }
}

}  // namespace
}  // namespace gm
