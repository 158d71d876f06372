// Model behaviour beyond the golden numbers: streaming in uneven chunks equals one
// pass, packed documents equal separate sequences, residual captures, recomputed
// layers give the same gradients as saved ones, gradient accumulation over
// micro-batches equals one batch, next-token batch conventions, input validation.
#include <gtest/gtest.h>

#include <cmath>

#include "mamba/batch.h"
#include "mamba/model.h"
#include "mamba/rng.h"
#include "tests/test_mamba_model_util.h"

namespace gm {
namespace {

class ModelBehaviour : public ::testing::Test {
 protected:
  void SetUp() override {
    cfg = test::small_config(16, 3);
    model = std::make_unique<MambaModel>(ctx, cfg);
    model->init_weights(ctx, 21);
    // Larger out_proj than at init so that later layers depend visibly on earlier ones.
    ParamStore& ps = model->params();
    Rng rng(9);
    for (size_t i = 0; i < ps.size(); ++i) {
      if (ps.infos()[i].name.find("out_proj") == std::string::npos) continue;
      std::vector<float> v = ps.download(ctx, static_cast<int>(i));
      for (float& x : v) x = static_cast<float>(rng.uniform(-0.3, 0.3));
      ps.upload(ctx, static_cast<int>(i), v);
    }
    ps.mark_updated();
  }

  // Logits of one pass over tokens [B, L] as a host vector [B*L*V].
  std::vector<float> logits_of(const std::vector<uint8_t>& tokens, int64_t B, int64_t L,
                               const std::vector<uint8_t>& seq_start = {}) {
    ForwardRequest req;
    req.tokens = upload_u8(ctx, tokens, {B, L});
    if (!seq_start.empty()) req.seq_start = upload_u8(ctx, seq_start, {B, L});
    return test::to_host(ctx, model->forward(ctx, req).logits);
  }

  CpuContext ctx{2};
  ModelConfig cfg;
  std::unique_ptr<MambaModel> model;
};

// Rows [B, L] of a host vector, columns [t0, t0 + n).
std::vector<uint8_t> columns(const std::vector<uint8_t>& x, int64_t B, int64_t L, int64_t t0, int64_t n) {
  std::vector<uint8_t> out;
  for (int64_t b = 0; b < B; ++b)
    out.insert(out.end(), x.begin() + b * L + t0, x.begin() + b * L + t0 + n);
  return out;
}

TEST_F(ModelBehaviour, StreamingInUnevenChunksEqualsOnePass) {
  const int64_t B = 2, L = 53, V = cfg.vocab;
  const std::vector<uint8_t> tokens = test::random_windows(1, B, L);
  std::vector<uint8_t> seq(static_cast<size_t>(B * L), 0);
  seq[static_cast<size_t>(L + 20)] = 1;  // row 1: a document starts exactly at a chunk boundary
  seq[static_cast<size_t>(33)] = 1;      // row 0: one inside a chunk
  const std::vector<float> full = logits_of(tokens, B, L, seq);

  StreamState state = model->new_stream_state(ctx, B);
  std::vector<float> streamed(full.size(), NAN);
  int64_t t0 = 0;
  for (int64_t n : {7, 1, 12, 29, 4}) {
    ForwardRequest req;
    req.tokens = upload_u8(ctx, columns(tokens, B, L, t0, n), {B, n});
    req.seq_start = upload_u8(ctx, columns(seq, B, L, t0, n), {B, n});
    req.state = &state;
    const std::vector<float> part = test::to_host(ctx, model->forward(ctx, req).logits);
    for (int64_t b = 0; b < B; ++b)
      for (int64_t t = 0; t < n; ++t)
        for (int64_t v = 0; v < V; ++v)
          streamed[static_cast<size_t>(((b * L) + t0 + t) * V + v)] = part[static_cast<size_t>((b * n + t) * V + v)];
    t0 += n;
  }
  ASSERT_EQ(t0, L);
  EXPECT_LE(test::rel_error(streamed, full), 1e-6);

  // Without carrying the state the chunks differ: the state is what makes them agree.
  ForwardRequest fresh;
  fresh.tokens = upload_u8(ctx, columns(tokens, B, L, 7, 1), {B, 1});
  const std::vector<float> cold = test::to_host(ctx, model->forward(ctx, fresh).logits);
  const std::vector<float> warm(full.begin() + 7 * V, full.begin() + 8 * V);
  EXPECT_GT(test::rel_error(std::vector<float>(cold.begin(), cold.begin() + V), warm), 1e-3);
}

TEST_F(ModelBehaviour, PackedDocumentsEqualSeparateSequences) {
  const int64_t La = 19, Lb = 14, L = La + Lb, V = cfg.vocab;
  const std::vector<uint8_t> a = test::random_windows(2, 1, La), b = test::random_windows(3, 1, Lb);
  std::vector<uint8_t> packed = a;
  packed.insert(packed.end(), b.begin(), b.end());
  std::vector<uint8_t> seq(static_cast<size_t>(L), 0);
  seq[static_cast<size_t>(La)] = 1;
  const std::vector<float> joint = logits_of(packed, 1, L, seq);
  const std::vector<float> alone_a = logits_of(a, 1, La), alone_b = logits_of(b, 1, Lb);
  const std::vector<float> joint_a(joint.begin(), joint.begin() + La * V), joint_b(joint.begin() + La * V, joint.end());
  EXPECT_LE(test::rel_error(joint_a, alone_a), 1e-6);
  EXPECT_LE(test::rel_error(joint_b, alone_b), 1e-6);
  // Without the mask, b sees a.
  const std::vector<float> unmasked = logits_of(packed, 1, L);
  EXPECT_GT(test::rel_error(std::vector<float>(unmasked.begin() + La * V, unmasked.end()), alone_b), 1e-3);
}

TEST_F(ModelBehaviour, CapturesAreTheResidualStream) {
  const int64_t B = 2, L = 9, d = cfg.d_model, V = cfg.vocab;
  const std::vector<uint8_t> tokens = test::random_windows(4, B, L);
  ForwardRequest req;
  req.tokens = upload_u8(ctx, tokens, {B, L});
  req.capture = {3, 0, 1, 3};
  const ForwardOutput out = model->forward(ctx, req);
  ASSERT_EQ(out.captured.size(), 4u);
  EXPECT_EQ(out.captured[0].shape(), (Tensor::Shape{B, L, d}));
  // 0: the embedding rows.
  const std::vector<float> emb = model->params().download(ctx, model->params().index("backbone.embedding.weight"));
  const std::vector<float> c0 = test::to_host(ctx, out.captured[1]);
  for (int64_t i = 0; i < B * L; ++i)
    for (int64_t j = 0; j < d; ++j)
      ASSERT_EQ(c0[static_cast<size_t>(i * d + j)], emb[static_cast<size_t>(tokens[static_cast<size_t>(i)] * d + j)]);
  // n_layer: the input of the final norm, so norm_f + tied head reproduce the logits.
  const std::vector<float> cn = test::to_host(ctx, out.captured[0]);
  EXPECT_EQ(cn, test::to_host(ctx, out.captured[3]));
  const std::vector<float> norm_f = model->params().download(ctx, model->params().index("backbone.norm_f.weight"));
  std::vector<double> logits;
  for (int64_t i = 0; i < B * L; ++i) {
    double ms = 0;
    for (int64_t j = 0; j < d; ++j) ms += double(cn[static_cast<size_t>(i * d + j)]) * cn[static_cast<size_t>(i * d + j)];
    const double rstd = 1 / std::sqrt(ms / static_cast<double>(d) + cfg.rms_eps);
    for (int64_t v = 0; v < V; ++v) {
      double acc = 0;
      for (int64_t j = 0; j < d; ++j)
        acc += cn[static_cast<size_t>(i * d + j)] * rstd * norm_f[static_cast<size_t>(j)] * emb[static_cast<size_t>(v * d + j)];
      logits.push_back(acc);
    }
  }
  EXPECT_LE(test::rel_error(test::to_host(ctx, out.logits), logits), 1e-5);
  // Layer 1's capture differs from the embedding and from the last one.
  const std::vector<float> c1 = test::to_host(ctx, out.captured[2]);
  EXPECT_GT(test::rel_error(c1, c0), 1e-3);
  EXPECT_GT(test::rel_error(cn, c1), 1e-3);

  // Captures only, no logits.
  req.want_logits = false;
  req.capture = {2};
  const ForwardOutput only = model->forward(ctx, req);
  EXPECT_FALSE(only.logits.defined());
  EXPECT_EQ(only.captured.size(), 1u);
}

TEST_F(ModelBehaviour, RecomputedLayersGiveBitwiseTheSameGradients) {
  const int64_t B = 2, W = 24;
  const NextTokenBatch batch = NextTokenBatch::from_windows(test::random_windows(5, B, W), {}, B, W);
  const TokenInputs in = batch.upload(ctx, 1.f);
  const float scale = static_cast<float>(1.0 / batch.weight_sum(1.f));
  ParamStore& ps = model->params();
  auto grads_with = [&](std::vector<bool> recompute) {
    ps.zero_grads(ctx);
    TrainOptions opt;
    opt.recompute = std::move(recompute);
    const double loss = model->forward_backward(ctx, in, scale, opt);
    return std::make_pair(loss, ps.download_flat(ctx, ps.grads()));
  };
  const auto saved = grads_with({});
  const auto all = grads_with({true, true, true});
  const auto mixed = grads_with({false, true, false});
  EXPECT_EQ(saved.first, all.first);
  EXPECT_EQ(saved.second, all.second);
  EXPECT_EQ(saved.second, mixed.second);
  EXPECT_THROW(grads_with({true}), std::invalid_argument);  // one entry per layer
}

TEST_F(ModelBehaviour, MicroBatchesAccumulateToTheFullBatchGradient) {
  const int64_t B = 4, W = 20;
  const std::vector<uint8_t> windows = test::random_windows(6, B, W);
  const NextTokenBatch full = NextTokenBatch::from_windows(windows, {}, B, W);
  const double weight = full.weight_sum(1.f);
  ParamStore& ps = model->params();
  ps.zero_grads(ctx);
  const double loss_full = model->forward_backward(ctx, full.upload(ctx, 1.f), static_cast<float>(1.0 / weight));
  const std::vector<float> g_full = ps.download_flat(ctx, ps.grads());

  ps.zero_grads(ctx);
  double loss_parts = 0;
  for (int64_t half = 0; half < 2; ++half) {
    const std::vector<uint8_t> part(windows.begin() + half * 2 * W, windows.begin() + (half + 1) * 2 * W);
    const NextTokenBatch mb = NextTokenBatch::from_windows(part, {}, 2, W);
    loss_parts += model->forward_backward(ctx, mb.upload(ctx, 1.f), static_cast<float>(1.0 / weight));
  }
  EXPECT_NEAR(loss_parts, loss_full, 1e-6 * loss_full);
  EXPECT_LE(test::rel_error(ps.download_flat(ctx, ps.grads()), g_full), 1e-6);
  // And the training loss equals the evaluation path's.
  EXPECT_NEAR(model->loss_sum(ctx, full.upload(ctx, 1.f)), loss_full, 1e-6 * loss_full);
}

TEST(NextTokenBatch, WindowsBecomeInputsTargetsAndMasks) {
  // Row 0: A C G T N A with the G soft-masked; row 1: T T | C A G C, a document starting at 2.
  const std::vector<uint8_t> windows = {7, 8, 9, 10, 11, 7, 10, 10, 8, 7, 9, 8};
  std::vector<uint8_t> flags(12, 0);
  flags[2] = kTokenSoftMasked;
  flags[6 + 2] = kTokenDocStart;
  const NextTokenBatch b = NextTokenBatch::from_windows(windows, flags, 2, 6);
  EXPECT_EQ(b.length, 5);
  EXPECT_EQ(b.inputs, (std::vector<uint8_t>{7, 8, 9, 10, 11, 10, 10, 8, 7, 9}));
  // The target at the document start becomes PAD: never predicted across documents.
  EXPECT_EQ(b.targets, (std::vector<uint8_t>{8, 9, 10, 11, 7, 10, kTokenPad, 7, 9, 8}));
  EXPECT_EQ(b.seq_start, (std::vector<uint8_t>{0, 0, 0, 0, 0, 0, 0, 1, 0, 0}));
  EXPECT_EQ(b.target_flags, (std::vector<uint8_t>{0, 1, 0, 0, 0, 0, 0, 0, 0, 0}));
  // Weights: 8 base targets, one soft-masked at 0.25; N and PAD weigh 0.
  EXPECT_DOUBLE_EQ(b.weight_sum(0.25f), 7.25);
  EXPECT_THROW(NextTokenBatch::from_windows(windows, flags, 2, 5), std::invalid_argument);
}

TEST_F(ModelBehaviour, RejectsBadInputs) {
  ForwardRequest req;
  req.tokens = ctx.empty({2, 5}, DType::F32);
  EXPECT_THROW(model->forward(ctx, req), std::invalid_argument);
  req.tokens = upload_u8(ctx, test::random_windows(1, 2, 5), {2, 5});
  req.capture = {4};  // n_layer = 3
  EXPECT_THROW(model->forward(ctx, req), std::invalid_argument);
  req.capture = {};
  StreamState one_row = model->new_stream_state(ctx, 1);
  req.state = &one_row;
  EXPECT_THROW(model->forward(ctx, req), std::invalid_argument);
  req.state = nullptr;
  req.seq_start = upload_u8(ctx, std::vector<uint8_t>(5, 0), {1, 5});
  EXPECT_THROW(model->forward(ctx, req), std::invalid_argument);
  TokenInputs in;
  in.tokens = req.tokens;
  EXPECT_THROW(model->forward_backward(ctx, in, 1.f), std::invalid_argument);  // no targets
}

}  // namespace
}  // namespace gm
