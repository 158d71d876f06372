// MambaModel: parameter layout, training forward/backward, inference and streaming.
// Initialisation is in model_init.cpp.
#include "mamba/model.h"

#include <algorithm>
#include <stdexcept>
#include <string>

#include "mamba/cuda/scan_segments.h"
#include "mamba/device_memory.h"
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
  // output and rstd are recomputed from it in the backward. Undefined for layer 0, whose
  // input (the embedding output) is gathered again instead.
  Tensor residual;
  // Views: storage of this layer (saved) or the shared recompute buffers (recomputed).
  MixerActivations act;
  bool recompute = false;
  // Kept layers (TrainOptions::keep): act.xc and act.delta are this layer's own, and its
  // norm's output and rstd, which are otherwise recomputed in the backward.
  bool keep = false;
  Tensor norm_out, rstd;
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

// Memory layout of a training step (B x L tokens, D = d_inner, "slot" = one act [B, D, L]):
// - per layer i >= 1: its residual r_i (f32 [M, d]; add_rmsnorm_fwd_out writes r_i
//   beside r_{i-1}, so keeping it costs no copy). Layer 0's input is the embedding
//   output, gathered again in the backward.
// - per saved layer: xz (2 slots), y (1), x_dbl and the scan's checkpoints; xc and delta
//   are recomputed (a depthwise conv, a rank-R product: mamba_ssm's checkpoint level 1).
// - shared by all layers: xc (1 slot); the backward's dxz (2), dxc (1), ddelta (1), dx_dbl;
//   delta lives in dx's half of dxz (its last use, the scan backward, precedes dx).
// - shared by the recomputed layers: xz (2 slots; y is written over x), x_dbl and the
//   scan's checkpoints. A recomputed layer runs its whole forward again in the backward
//   (the scan included) and computes xz a third time for the conv's backward.
// - per kept layer (a saved layer with memory to spare): its own xc and delta (2 slots)
//   and its norm's output and rstd, so that its backward recomputes none of them.
// So every layer recomputed: 7 slots + the residuals; every layer saved: 5 slots + 3 per
// layer + the residuals; every layer kept: 3 slots + 5 per layer + the residuals and norm
// outputs.
double MambaModel::forward_backward(Context& ctx, const TokenInputs& in, float grad_scale, const TrainOptions& opt) {
  check_token_tensor(ctx, in.tokens);
  check_tokens(in.tokens, in.targets, "targets");
  check_tokens(in.tokens, in.seq_start, "seq_start");
  check_tokens(in.tokens, in.target_flags, "target_flags");
  if (!in.targets.defined()) throw std::invalid_argument("model input: training needs targets");

  const int64_t B = in.tokens.size(0), L = in.tokens.size(1), M = B * L;
  const int64_t d = cfg_.d_model, D = cfg_.d_inner(), N = cfg_.d_state, X = cfg_.rank() + 2 * cfg_.d_state;
  const int n_layer = static_cast<int>(cfg_.n_layer);
  const DType act = ctx.act_dtype();
  const float eps = static_cast<float>(cfg_.rms_eps);
  const MixerDims md = dims(B, L);
  const Tensor* seq = in.seq_start.defined() ? &in.seq_start : nullptr;
  const StepPlan plan = plan_step(ctx, B, L, opt);
  const std::vector<bool>& recompute = plan.recompute;
  // The scan backward's flows take what the plan gives them (fewer windows of chunks: 2-3%
  // of the scan's time at the PEERS.md rows, bench/RESULTS.md), for this step only.
  struct FlowBudget {
    Context& c;
    int64_t before;
    ~FlowBudget() { c.scan_flow_budget = before; }
  } flow_budget{ctx, ctx.scan_flow_budget};
  ctx.scan_flow_budget = std::max(ctx.scan_flow_budget, plan.scan_flow_budget);
  const bool any_recompute = std::find(recompute.begin(), recompute.end(), true) != recompute.end();
  const int64_t scan_saved_numel = ops::selective_scan_saved_numel(ctx, B, D, L, N);
  const Tensor emb_w = params_.value(embedding_);
  auto gather_embedding = [&]() {
    Tensor r = ctx.empty({M, d}, DType::F32);
    Tensor r3 = r.reshape({B, L, d});
    ops::embedding_fwd(ctx, in.tokens, emb_w, r3);
    return r;
  };

  // ---- buffers shared by every layer ----
  MixerGradWorkspace ws = MixerGradWorkspace::allocate(ctx, md);
  MixerActivations shared;
  shared.xc = channel_major(ctx, md, D, act);
  shared.delta = ws.dx();
  if (any_recompute) {
    shared.xz = channel_major(ctx, md, 2 * D, act);
    shared.y = shared.x();
    shared.x_dbl = channel_major(ctx, md, X, act);
    shared.scan_saved = ctx.empty({scan_saved_numel}, DType::F32);
  }

  // ---- forward, keeping what the backward needs ----
  Tensor residual = gather_embedding();
  Tensor h = ctx.empty({M, d}, act);
  Tensor rstd = ctx.empty({M}, DType::F32);
  Tensor mix_out = ctx.empty({M, d}, act);
  std::vector<SavedLayer> saved(static_cast<size_t>(n_layer));
  for (int i = 0; i < n_layer; ++i) {
    SavedLayer& s = saved[static_cast<size_t>(i)];
    s.recompute = recompute[static_cast<size_t>(i)];
    s.keep = plan.keep[static_cast<size_t>(i)];
    if (s.keep) {
      s.norm_out = ctx.empty({M, d}, act);
      s.rstd = ctx.empty({M}, DType::F32);
    }
    Tensor& h_in = s.keep ? s.norm_out : h;
    Tensor& rstd_in = s.keep ? s.rstd : rstd;
    const Tensor norm_w = params_.value(layers_[static_cast<size_t>(i)].norm);
    if (i == 0) {
      ops::add_rmsnorm_fwd(ctx, nullptr, residual, norm_w, eps, h_in, rstd_in);
    } else {
      Tensor next = ctx.empty({M, d}, DType::F32);
      ops::add_rmsnorm_fwd_out(ctx, &mix_out, residual, next, norm_w, eps, h_in, rstd_in);
      residual = next;
      s.residual = next;
    }
    if (s.recompute) {
      s.act = shared;
    } else {
      s.act.xz = channel_major(ctx, md, 2 * D, act);
      s.act.xc = s.keep ? channel_major(ctx, md, D, act) : shared.xc;
      s.act.delta = s.keep ? channel_major(ctx, md, D, act) : shared.delta;
      s.act.y = channel_major(ctx, md, D, act);
      s.act.x_dbl = channel_major(ctx, md, X, act);
      s.act.scan_saved = ctx.empty({scan_saved_numel}, DType::F32);
    }
    s.act.A = ctx.empty({D, N}, DType::F32);
    mixer_forward(ctx, md, layer_compute(ctx, i), layer_values(i), h_in, seq, nullptr, s.act, &mix_out);
  }
  // The final norm's input gets its own buffer: the last layer's input stays saved.
  Tensor residual_f = ctx.empty({M, d}, DType::F32);
  const Tensor norm_f_w = params_.value(norm_f_);
  ops::add_rmsnorm_fwd_out(ctx, &mix_out, residual, residual_f, norm_f_w, eps, h, rstd);
  residual = Tensor();

  // ---- LM head and loss, fused: no logits tensor ----
  // The loss is summed (which waits for the device) only once the backward is queued.
  const int head = lm_head_index();
  Tensor dh = ctx.empty({M, d}, act);
  Tensor losses = ctx.empty({M}, DType::F32);
  {
    const Tensor targets = in.targets.reshape({M});
    const Tensor flags = in.target_flags.defined() ? in.target_flags.reshape({M}) : Tensor();
    Tensor g_head = params_.grad(head);
    ops::lm_head_cross_entropy(ctx, h, compute_view(ctx, head), targets, flags.defined() ? &flags : nullptr,
                               in.soft_weight, grad_scale, losses, dh, g_head);
  }

  // ---- backward ----
  Tensor dres = ctx.empty({M, d}, DType::F32);  // gradient reaching the residual stream
  ops::fill(ctx, dres, 0.f);
  // The mixer's output gradient is the residual-stream gradient (the add passes it
  // through); in bf16 the norm backward hands it out as a bf16 copy, into mix_out's
  // buffer (the forward's mixer outputs are no longer needed).
  Tensor dmix = act == DType::F32 ? dres : mix_out;
  auto norm_backward = [&](const Tensor& res, const Tensor& norm_w, const Tensor& r, int param, bool need_dmix) {
    Tensor g = params_.grad(param);
    if (need_dmix && act != DType::F32)
      ops::add_rmsnorm_bwd_act(ctx, dh, res, norm_w, r, dres, g, dmix);
    else
      ops::add_rmsnorm_bwd(ctx, dh, res, norm_w, r, dres, g);
  };
  norm_backward(residual_f, norm_f_w, rstd, norm_f_, true);
  residual_f = Tensor();
  for (int i = n_layer - 1; i >= 0; --i) {
    SavedLayer& s = saved[static_cast<size_t>(i)];
    const int norm_param = layers_[static_cast<size_t>(i)].norm;
    const Tensor norm_w = params_.value(norm_param);
    const MixerParams w = layer_compute(ctx, i), w_f32 = layer_values(i);
    Tensor res = i == 0 ? gather_embedding() : s.residual;
    // Same ops on the same inputs as the forward: bitwise the same values (add_rmsnorm_fwd_out
    // runs add_rmsnorm_fwd's kernel on the sum it stores).
    if (!s.keep) ops::add_rmsnorm_fwd(ctx, nullptr, res, norm_w, eps, h, rstd);
    const Tensor& h_in = s.keep ? s.norm_out : h;
    if (s.recompute)
      mixer_forward(ctx, md, w, w_f32, h_in, seq, nullptr, s.act, nullptr);
    else if (!s.keep)
      mixer_recompute_cheap(ctx, md, w, w_f32, seq, s.act);
    mixer_backward(ctx, md, w, w_f32, layer_grads(i), h_in, seq, s.act, dmix, ws, dh);
    norm_backward(res, norm_w, s.keep ? s.rstd : rstd, norm_param, i > 0);
    s = SavedLayer();  // release this layer's activations
  }
  Tensor g_emb = params_.grad(embedding_);
  ops::embedding_bwd(ctx, in.tokens, dres.reshape({B, L, d}), g_emb);
  return ops::sum(ctx, losses);
}

namespace {

// Bytes the CUDA scan backward's sub-chunk flows take for one layer of B x L with D
// channels under a flow budget (one window of chunks: scan_segments.h).
int64_t scan_flow_bytes(int64_t batch, int64_t channels, int64_t length, int64_t budget) {
  const int64_t chunks = (length + cuda::scan::kChunk - 1) / cuda::scan::kChunk;
  return cuda::scan::flow_bytes(batch, channels, cuda::scan::flow_window_chunks(batch, channels, chunks, budget));
}

}  // namespace

TrainMemoryEstimate MambaModel::train_memory_estimate(int64_t batch, int64_t length, DType act) const {
  const int64_t a = static_cast<int64_t>(dtype_size(act)), f = 4;
  const int64_t M = batch * length, d = cfg_.d_model, D = cfg_.d_inner(), N = cfg_.d_state, K = cfg_.d_conv;
  const int64_t X = cfg_.rank() + 2 * N, V = cfg_.vocab;
  // Channel-major activations take batch x pitch elements per row (MixerDims::pitch).
  const int64_t rows_len = batch * dims(batch, length).pitch();
  const int64_t slot = rows_len * D * a, x_dbl = rows_len * X * a;
  // The CUDA scan's layout: states of 16 lanes before every 512-step chunk; its backward
  // keeps three such tensors more and per-chunk partials, sums dB, dC over groups of 32
  // channels in [2, B, D/32, 16, L] f32 (the largest scratch of the step), and holds the
  // sub-chunk flows of one window of chunks (at most the CUDA context's default budget).
  const int64_t chunks = (length + cuda::scan::kChunk - 1) / cuda::scan::kChunk;
  const int64_t scan_states = batch * chunks * D * 16 * f;
  const int64_t scan_bwd = 2 * batch * ((D + 31) / 32) * 16 * length * f + 4 * scan_states +
                           2 * batch * chunks * D * f +
                           scan_flow_bytes(batch, D, length, Context::kDefaultScanFlowBudget);
  TrainMemoryEstimate e;
  e.per_recomputed_layer = M * d * f + D * N * f;
  e.per_saved_layer = e.per_recomputed_layer + 3 * slot + x_dbl + scan_states;
  e.per_kept_layer = 2 * slot + M * d * a + M * f;
  e.recompute_shared = 2 * slot + x_dbl + scan_states;
  const int64_t workspace = 5 * slot + x_dbl;                  // xc, dxz, dxc, ddelta; dx_dbl
  const int64_t stream = 2 * M * d * f + 3 * M * d * a;        // dres, final residual; h, dh, mix_out
  const int64_t head = M * f + 1024 * V * d * f;               // losses, dweight partials
  const int64_t op_scratch = scan_bwd + (M + 63) / 64 * d * f + batch * ((length + 1023) / 1024) * D * (K + 1) * f;
  e.shared = workspace + stream + head + op_scratch + (int64_t(64) << 20);
  return e;
}

namespace {

// The bytes a training step may take: opt.memory_budget, else 90% of the device's free
// memory (the rest: allocator rounding, cuBLAS, fragmentation); 0 = no limit known (CPU).
int64_t step_budget(Context& ctx, const TrainOptions& opt) {
  if (opt.memory_budget > 0) return opt.memory_budget;
  return std::max<int64_t>(0, device_memory_available(ctx) / 10 * 9);
}

}  // namespace

StepPlan MambaModel::plan_step(Context& ctx, int64_t batch, int64_t length, const TrainOptions& opt) const {
  const size_t n = static_cast<size_t>(cfg_.n_layer);
  if (!opt.recompute.empty() && opt.recompute.size() != n)
    throw std::invalid_argument("TrainOptions::recompute must have one entry per layer");
  if (!opt.keep.empty() && opt.keep.size() != n)
    throw std::invalid_argument("TrainOptions::keep must have one entry per layer");
  StepPlan plan;
  plan.recompute = opt.recompute.empty() ? std::vector<bool>(n, false) : opt.recompute;
  plan.keep = opt.keep.empty() ? std::vector<bool>(n, false) : opt.keep;
  plan.scan_flow_budget = Context::kDefaultScanFlowBudget;
  for (size_t i = 0; i < n; ++i)
    if (plan.keep[i] && plan.recompute[i])
      throw std::invalid_argument("TrainOptions::keep: layer " + std::to_string(i) +
                                  " is recomputed, so it has nothing to keep");
  const int64_t budget = step_budget(ctx, opt);
  if (budget <= 0) return plan;
  const TrainMemoryEstimate e = train_memory_estimate(batch, length, ctx.act_dtype());
  if (opt.recompute.empty()) {
    size_t k = 0;
    while (k < n && e.total(static_cast<int64_t>(n - k), static_cast<int64_t>(k)) > budget) ++k;
    std::fill(plan.recompute.begin(), plan.recompute.begin() + static_cast<std::ptrdiff_t>(k), true);
  }
  const int64_t recomputed = std::count(plan.recompute.begin(), plan.recompute.end(), true);
  const int64_t saved = static_cast<int64_t>(n) - recomputed;
  const int64_t left = budget - e.total(saved, recomputed);
  plan.scan_flow_budget = Context::kDefaultScanFlowBudget + std::max<int64_t>(0, left) / 2;
  if (opt.keep.empty() && left > 0 && e.per_kept_layer > 0) {
    // What the flows take beyond the default window that the estimate counts.
    const int64_t D = cfg_.d_inner();
    const int64_t rest = left - (scan_flow_bytes(batch, D, length, plan.scan_flow_budget) -
                                 scan_flow_bytes(batch, D, length, Context::kDefaultScanFlowBudget));
    int64_t can_keep = std::max<int64_t>(0, rest) / e.per_kept_layer;
    for (size_t i = n; i-- > 0 && can_keep > 0;)
      if (!plan.recompute[i]) {
        plan.keep[i] = true;
        --can_keep;
      }
  }
  return plan;
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
  MixerActivations scratch = MixerActivations::allocate_inference(ctx, md);
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
                  &mix_out);
  }
  scratch = MixerActivations();
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
