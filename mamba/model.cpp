// MambaModel: parameter layout, training forward/backward, inference and streaming.
// Initialisation is in model_init.cpp.
#include "mamba/model.h"

#include <algorithm>
#include <stdexcept>
#include <string>

#include "mamba/ops.h"
#include "mamba/optim.h"

namespace gm {

namespace {

std::string layer_prefix(int i) { return "backbone.layers." + std::to_string(i) + "."; }

std::vector<ParamSpec> parameter_specs(const ModelConfig& c) {
  const int64_t d = c.d_model, D = c.d_inner(), N = c.d_state, R = c.rank(), K = c.d_conv, V = c.vocab;
  std::vector<ParamSpec> specs;
  auto add = [&](std::string name, Tensor::Shape shape) {
    const bool decay = default_weight_decay(name, shape);
    specs.push_back({std::move(name), std::move(shape), decay});
  };
  add("backbone.embedding.weight", {V, d});
  for (int i = 0; i < c.n_layer; ++i) {
    const std::string p = layer_prefix(i);
    add(p + "norm.weight", {d});
    add(p + "mixer.in_proj.weight", {2 * D, d});
    add(p + "mixer.conv1d.weight", {D, 1, K});
    if (c.conv_bias) add(p + "mixer.conv1d.bias", {D});
    add(p + "mixer.x_proj.weight", {R + 2 * N, D});
    add(p + "mixer.dt_proj.weight", {D, R});
    add(p + "mixer.dt_proj.bias", {D});
    add(p + "mixer.A_log", {D, N});
    add(p + "mixer.D", {D});
    add(p + "mixer.out_proj.weight", {d, D});
  }
  add("backbone.norm_f.weight", {d});
  if (!c.tie_embeddings) add("lm_head.weight", {V, d});
  return specs;
}

}  // namespace

struct MambaModel::SavedLayer {
  // The input of this layer's norm (after the residual add), f32 [M, d]: the norm's
  // output and rstd are recomputed from it in the backward.
  Tensor residual;
  // Mixer intermediates (MixerActivations::allocate_saved); undefined when recomputed.
  MixerActivations act;
  bool recompute = false;
};

MambaModel::MambaModel(Context& ctx, const ModelConfig& cfg) : cfg_(cfg.resolved()) {
  cfg_.validate();
  params_ = ParamStore(ctx, parameter_specs(cfg_));
  embedding_ = params_.index("backbone.embedding.weight");
  norm_f_ = params_.index("backbone.norm_f.weight");
  lm_head_ = params_.find("lm_head.weight");
  for (int i = 0; i < cfg_.n_layer; ++i) {
    const std::string p = layer_prefix(i);
    LayerIndex li{};
    li.norm = params_.index(p + "norm.weight");
    li.in_proj = params_.index(p + "mixer.in_proj.weight");
    li.conv_w = params_.index(p + "mixer.conv1d.weight");
    li.conv_b = params_.find(p + "mixer.conv1d.bias");
    li.x_proj = params_.index(p + "mixer.x_proj.weight");
    li.dt_w = params_.index(p + "mixer.dt_proj.weight");
    li.dt_b = params_.index(p + "mixer.dt_proj.bias");
    li.A_log = params_.index(p + "mixer.A_log");
    li.Dskip = params_.index(p + "mixer.D");
    li.out_proj = params_.index(p + "mixer.out_proj.weight");
    layers_.push_back(li);
  }
}

MixerDims MambaModel::dims(int64_t batch, int64_t length) const {
  MixerDims m;
  m.batch = batch;
  m.length = length;
  m.d_model = cfg_.d_model;
  m.d_inner = cfg_.d_inner();
  m.d_state = cfg_.d_state;
  m.dt_rank = cfg_.rank();
  m.d_conv = cfg_.d_conv;
  return m;
}

MixerParams MambaModel::layer_params(const Tensor& flat, int layer) const {
  const LayerIndex& li = layers_.at(static_cast<size_t>(layer));
  MixerParams p;
  p.in_proj = params_.view_of(flat, li.in_proj);
  p.conv_w = params_.view_of(flat, li.conv_w).reshape({cfg_.d_inner(), cfg_.d_conv});
  if (li.conv_b >= 0) p.conv_b = params_.view_of(flat, li.conv_b);
  p.x_proj = params_.view_of(flat, li.x_proj);
  p.dt_w = params_.view_of(flat, li.dt_w);
  p.dt_b = params_.view_of(flat, li.dt_b);
  p.A_log = params_.view_of(flat, li.A_log);
  p.Dskip = params_.view_of(flat, li.Dskip);
  p.out_proj = params_.view_of(flat, li.out_proj);
  return p;
}

const Tensor& MambaModel::compute_weights(Context& ctx) {
  const DType act = ctx.act_dtype();
  if (act == DType::F32) return params_.values();
  if (!compute_flat_.defined() || compute_dtype_ != act || compute_version_ != params_.version()) {
    if (!compute_flat_.defined() || compute_dtype_ != act)
      compute_flat_ = ctx.empty(params_.values().shape(), act);
    ops::copy(ctx, params_.values(), compute_flat_);
    compute_dtype_ = act;
    compute_version_ = params_.version();
  }
  return compute_flat_;
}

MixerParams MambaModel::layer_compute(Context& ctx, int layer) { return layer_params(compute_weights(ctx), layer); }

Tensor MambaModel::compute_view(Context& ctx, int param) { return params_.view_of(compute_weights(ctx), param); }

void MambaModel::check_tokens(const Tensor& tokens, const Tensor& other, const char* what) const {
  if (!other.defined()) return;
  if (other.dtype() != DType::U8 || other.shape() != tokens.shape() || other.device() != tokens.device())
    throw std::invalid_argument(std::string("model input: ") + what + " must be u8 " + tokens.describe() +
                                ", got " + other.describe());
}

namespace {

void check_token_tensor(Context& ctx, const Tensor& tokens) {
  if (!tokens.defined() || tokens.ndim() != 2 || tokens.dtype() != DType::U8 || !tokens.is_contiguous() ||
      tokens.size(0) < 1 || tokens.size(1) < 1)
    throw std::invalid_argument("model input: tokens must be a non-empty contiguous u8 [B, L] tensor, got " +
                                (tokens.defined() ? tokens.describe() : std::string("nothing")));
  if (tokens.device() != ctx.device())
    throw std::invalid_argument("model input: tokens are on " + tokens.device().str() + ", the model on " +
                                ctx.device().str());
}

}  // namespace

double MambaModel::forward_backward(Context& ctx, const TokenInputs& in, float grad_scale, const TrainOptions& opt) {
  check_token_tensor(ctx, in.tokens);
  check_tokens(in.tokens, in.targets, "targets");
  check_tokens(in.tokens, in.seq_start, "seq_start");
  check_tokens(in.tokens, in.target_flags, "target_flags");
  if (!in.targets.defined()) throw std::invalid_argument("model input: training needs targets");
  if (!opt.recompute.empty() && opt.recompute.size() != static_cast<size_t>(cfg_.n_layer))
    throw std::invalid_argument("TrainOptions::recompute must have one entry per layer");

  const int64_t B = in.tokens.size(0), L = in.tokens.size(1), M = B * L;
  const int64_t d = cfg_.d_model, V = cfg_.vocab;
  const int n_layer = static_cast<int>(cfg_.n_layer);
  const DType act = ctx.act_dtype();
  const float eps = static_cast<float>(cfg_.rms_eps);
  const MixerDims md = dims(B, L);
  const Tensor* seq = in.seq_start.defined() ? &in.seq_start : nullptr;

  // ---- forward, saving what the backward needs ----
  Tensor residual = ctx.empty({M, d}, DType::F32);
  {
    Tensor residual3 = residual.reshape({B, L, d});
    ops::embedding_fwd(ctx, in.tokens, params_.value(embedding_), residual3);
  }
  Tensor mix_out = ctx.empty({M, d}, act);
  // Shared by all layers: the norm output and rstd (recomputed in the backward), the
  // cheap mixer intermediates of saved layers, all intermediates of recomputed layers.
  Tensor h = ctx.empty({M, d}, act);
  Tensor rstd = ctx.empty({M}, DType::F32);
  MixerActivations scratch = MixerActivations::allocate(ctx, md, true);
  std::vector<SavedLayer> saved(static_cast<size_t>(n_layer));
  for (int i = 0; i < n_layer; ++i) {
    SavedLayer& s = saved[static_cast<size_t>(i)];
    s.recompute = !opt.recompute.empty() && opt.recompute[static_cast<size_t>(i)];
    if (!s.recompute) s.act = MixerActivations::allocate_saved(ctx, md, scratch);
    const Tensor norm_w = params_.value(layers_[static_cast<size_t>(i)].norm);
    ops::add_rmsnorm_fwd(ctx, i ? &mix_out : nullptr, residual, norm_w, eps, h, rstd);
    s.residual = ctx.empty({M, d}, DType::F32);
    ops::copy(ctx, residual, s.residual);
    mixer_forward(ctx, md, layer_compute(ctx, i), layer_values(i), h, seq, nullptr, s.recompute ? scratch : s.act,
                  mix_out);
  }
  // The final norm's output and rstd live in h and rstd until its backward is done.
  Tensor& hf = h;
  Tensor& rstd_f = rstd;
  ops::add_rmsnorm_fwd(ctx, &mix_out, residual, params_.value(norm_f_), eps, hf, rstd_f);

  // logits (M x V) = hf (M x d) @ W_head^T (W_head stored V x d)
  const int head = lm_head_index();
  Tensor logits = ctx.empty({M, V}, DType::F32);
  ops::gemm(ctx, false, true, M, V, d, 1.f, hf, d, 0, compute_view(ctx, head), d, 0, 0.f, logits, V, 0, 1);
  Tensor losses = ctx.empty({M}, DType::F32);
  Tensor dlogits = ctx.empty({M, V}, DType::F32);
  const Tensor targets = in.targets.reshape({M});
  const Tensor flags = in.target_flags.defined() ? in.target_flags.reshape({M}) : Tensor();
  ops::cross_entropy(ctx, logits, targets, flags.defined() ? &flags : nullptr, in.soft_weight, grad_scale, losses,
                     &dlogits);
  const double loss = ops::sum(ctx, losses);
  logits = Tensor();
  losses = Tensor();

  // ---- backward ----
  Tensor dres = ctx.empty({M, d}, DType::F32);  // gradient reaching the residual stream
  ops::fill(ctx, dres, 0.f);
  Tensor dh = ctx.empty({M, d}, act);
  // Matrix operands in the act dtype, like every other product of the model.
  Tensor dlogits_act = dlogits;
  if (act != DType::F32) {
    dlogits_act = ctx.empty({M, V}, act);
    ops::copy(ctx, dlogits, dlogits_act);
  }
  // dhf (M x d) = dlogits (M x V) @ W_head (V x d).
  ops::gemm(ctx, false, false, M, d, V, 1.f, dlogits_act, V, 0, compute_view(ctx, head), d, 0, 0.f, dh, d, 0, 1);
  // dW_head (V x d) += dlogits^T (stored M x V) @ hf (M x d).
  Tensor g_head = params_.grad(head);
  ops::gemm(ctx, true, false, V, d, M, 1.f, dlogits_act, V, 0, hf, d, 0, 1.f, g_head, d, 0, 1);
  dlogits = Tensor();
  dlogits_act = Tensor();
  Tensor g_norm_f = params_.grad(norm_f_);
  ops::add_rmsnorm_bwd(ctx, dh, residual, params_.value(norm_f_), rstd_f, dres, g_norm_f);

  // The mixer's output gradient is the residual-stream gradient (the add passes it through).
  Tensor dmix = act == DType::F32 ? dres : ctx.empty({M, d}, act);
  MixerGradWorkspace ws = MixerGradWorkspace::allocate(ctx, md);
  for (int i = n_layer - 1; i >= 0; --i) {
    SavedLayer& s = saved[static_cast<size_t>(i)];
    const Tensor norm_w = params_.value(layers_[static_cast<size_t>(i)].norm);
    const MixerParams w = layer_compute(ctx, i), w_f32 = layer_values(i);
    // Same ops on the same inputs as the forward: bitwise the same values.
    ops::add_rmsnorm_fwd(ctx, nullptr, s.residual, norm_w, eps, h, rstd);
    if (s.recompute) {
      mixer_forward(ctx, md, w, w_f32, h, seq, nullptr, scratch, mix_out);
    } else {
      mixer_recompute_cheap(ctx, md, w, w_f32, seq, s.act);
    }
    if (act != DType::F32) ops::copy(ctx, dres, dmix);
    mixer_backward(ctx, md, w, w_f32, layer_grads(i), h, seq, s.recompute ? scratch : s.act, dmix, ws, dh);
    Tensor g_norm = params_.grad(layers_[static_cast<size_t>(i)].norm);
    ops::add_rmsnorm_bwd(ctx, dh, s.residual, norm_w, rstd, dres, g_norm);
    s = SavedLayer();  // release this layer's activations
  }
  Tensor g_emb = params_.grad(embedding_);
  ops::embedding_bwd(ctx, in.tokens, dres.reshape({B, L, d}), g_emb);
  return loss;
}

ForwardOutput MambaModel::forward(Context& ctx, const ForwardRequest& req) {
  check_token_tensor(ctx, req.tokens);
  check_tokens(req.tokens, req.seq_start, "seq_start");
  const int64_t B = req.tokens.size(0), L = req.tokens.size(1), M = B * L;
  const int64_t d = cfg_.d_model, V = cfg_.vocab;
  const int n_layer = static_cast<int>(cfg_.n_layer);
  for (int k : req.capture)
    if (k < 0 || k > n_layer)
      throw std::invalid_argument("capture point " + std::to_string(k) + " outside [0, " +
                                  std::to_string(n_layer) + "]");
  if (req.state) {
    if (req.state->batch != B || req.state->conv.size() != static_cast<size_t>(n_layer) ||
        req.state->ssm.size() != static_cast<size_t>(n_layer))
      throw std::invalid_argument("stream state is for " + std::to_string(req.state->batch) + " rows and " +
                                  std::to_string(req.state->conv.size()) + " layers; the input has " +
                                  std::to_string(B) + " rows, the model " + std::to_string(n_layer) + " layers");
  }
  const DType act = ctx.act_dtype();
  const float eps = static_cast<float>(cfg_.rms_eps);
  const MixerDims md = dims(B, L);
  const Tensor* seq = req.seq_start.defined() ? &req.seq_start : nullptr;

  ForwardOutput out;
  out.captured.resize(req.capture.size());
  Tensor residual = ctx.empty({M, d}, DType::F32);
  auto capture = [&](int k) {
    for (size_t j = 0; j < req.capture.size(); ++j) {
      if (req.capture[j] != k) continue;
      out.captured[j] = ctx.empty({B, L, d}, DType::F32);
      ops::copy(ctx, residual.reshape({B, L, d}), out.captured[j]);
    }
  };

  {
    Tensor residual3 = residual.reshape({B, L, d});
    ops::embedding_fwd(ctx, req.tokens, params_.value(embedding_), residual3);
  }
  capture(0);
  MixerActivations scratch = MixerActivations::allocate(ctx, md, false);
  Tensor h = ctx.empty({M, d}, act);
  Tensor rstd = ctx.empty({M}, DType::F32);
  Tensor mix_out = ctx.empty({M, d}, act);
  for (int i = 0; i < n_layer; ++i) {
    ops::add_rmsnorm_fwd(ctx, i ? &mix_out : nullptr, residual, params_.value(layers_[static_cast<size_t>(i)].norm),
                         eps, h, rstd);
    if (i > 0) capture(i);
    MixerStreamState stream;
    if (req.state) stream = {&req.state->conv[static_cast<size_t>(i)], &req.state->ssm[static_cast<size_t>(i)]};
    mixer_forward(ctx, md, layer_compute(ctx, i), layer_values(i), h, seq, req.state ? &stream : nullptr, scratch,
                  mix_out);
  }
  ops::add_rmsnorm_fwd(ctx, &mix_out, residual, params_.value(norm_f_), eps, h, rstd);
  capture(n_layer);
  if (req.want_logits) {
    out.logits = ctx.empty({M, V}, DType::F32);
    ops::gemm(ctx, false, true, M, V, d, 1.f, h, d, 0, compute_view(ctx, lm_head_index()), d, 0, 0.f, out.logits,
              V, 0, 1);
  }
  return out;
}

double MambaModel::loss_sum(Context& ctx, const TokenInputs& in) {
  if (!in.targets.defined()) throw std::invalid_argument("model input: the loss needs targets");
  check_tokens(in.tokens, in.targets, "targets");
  check_tokens(in.tokens, in.target_flags, "target_flags");
  ForwardRequest req;
  req.tokens = in.tokens;
  req.seq_start = in.seq_start;
  ForwardOutput out = forward(ctx, req);
  const int64_t M = in.tokens.numel();
  Tensor losses = ctx.empty({M}, DType::F32);
  const Tensor flags = in.target_flags.defined() ? in.target_flags.reshape({M}) : Tensor();
  ops::cross_entropy(ctx, out.logits, in.targets.reshape({M}), flags.defined() ? &flags : nullptr, in.soft_weight,
                     1.f, losses, nullptr);
  return ops::sum(ctx, losses);
}

StreamState MambaModel::new_stream_state(Context& ctx, int64_t batch) const {
  StreamState s;
  s.batch = batch;
  for (int i = 0; i < cfg_.n_layer; ++i) {
    Tensor conv = ctx.empty({batch, cfg_.d_inner(), cfg_.d_conv - 1}, DType::F32);
    Tensor ssm = ctx.empty({batch, cfg_.d_inner(), cfg_.d_state}, DType::F32);
    ops::fill(ctx, conv, 0.f);
    ops::fill(ctx, ssm, 0.f);
    s.conv.push_back(conv);
    s.ssm.push_back(ssm);
  }
  return s;
}

}  // namespace gm
