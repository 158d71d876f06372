// MambaModel: the causal Mamba-1 language model (mamba_ssm's MambaLMHeadModel) on
// top of gm::ops, so the same code runs on the CPU reference and on CUDA.
//
//   residual = embedding(tokens)
//   for each layer: residual += mixer_out (not for layer 0); h = RMSNorm(residual);
//                   mixer_out = Mixer(h)
//   residual += mixer_out; h = norm_f(residual); logits = h @ embedding^T (tied)
//
// Conventions
// - Parameters (f32, mamba_ssm names) live in one ParamStore; gradients are
//   ACCUMULATED into its flat grad buffer (zero them between optimizer steps).
// - Activations are ctx.act_dtype(); the residual stream, norms' rstd, logits and
//   losses are f32. When act is bf16, matrix operands use a bf16 copy of the weights
//   refreshed automatically after every weight update (ParamStore::version()).
// - Token tensors are u8 [B, L] on the context's device; seq_start is u8 0/1
//   [B, L] (1 = a document starts at this input position: conv and scan reset).
// - Residual-stream capture points k in [0, n_layer]: k = 0 is the embedding output,
//   k >= 1 the residual after adding the mixer output of the k-th layer (1-based,
//   i.e. backbone.layers.{k-1}); k = n_layer is the input of the final norm.
#pragma once

#include <cstdint>
#include <vector>

#include "mamba/config.h"
#include "mamba/context.h"
#include "mamba/mixer.h"
#include "mamba/params.h"
#include "mamba/tensor.h"

namespace gm {

// Inputs of a training or evaluation step, on the model's device.
struct TokenInputs {
  Tensor tokens;        // u8 [B, L] input ids
  Tensor targets;       // u8 [B, L] next-token ids (ids outside A/C/G/T get weight 0)
  Tensor seq_start;     // u8 [B, L] 0/1, optional
  Tensor target_flags;  // u8 [B, L] bit 0 = soft-masked target, optional
  float soft_weight = 1.f;
};

// Per-layer conv and SSM states of a stream of B rows (f32, zero = fresh). A row
// restarts (forgets its state) where the next chunk's seq_start is 1 at position 0.
struct StreamState {
  int64_t batch = 0;
  std::vector<Tensor> conv;  // [B, D, K-1] per layer
  std::vector<Tensor> ssm;   // [B, D, N] per layer
};

struct ForwardRequest {
  Tensor tokens;                 // u8 [B, L]
  Tensor seq_start;              // u8 [B, L] 0/1, optional
  StreamState* state = nullptr;  // continued from and updated in place when given
  bool want_logits = true;
  std::vector<int> capture;      // residual-stream points to return, each in [0, n_layer]
};

struct ForwardOutput {
  Tensor logits;                 // f32 [B*L, V] when asked
  std::vector<Tensor> captured;  // f32 [B, L, d], in the order of ForwardRequest::capture
};

struct TrainOptions {
  // recompute[i] = true: layer i keeps only its input (the residual) during the
  // forward and recomputes its activations (the scan's forward included) in the
  // backward; false: it keeps x, z, y, x_dbl and the scan's checkpoints. Gradients are
  // bitwise the same either way. Empty = planned from memory_budget (plan_step).
  std::vector<bool> recompute;
  // keep[i] = true (a saved layer only): layer i also keeps what the backward would
  // otherwise recompute cheaply (the conv output xc, delta, its norm's output and rstd),
  // which saves a conv, a rank-R product and a norm per layer in the backward for two
  // [B, D, L] activations and a [B, L, d] one more. Gradients are bitwise the same either
  // way. Empty = planned from what the budget leaves (plan_step).
  std::vector<bool> keep;
  // Bytes the step may take on its device beyond what is allocated when it starts
  // (parameters, gradients, optimizer moments). 0 = what the device has free (the
  // CUDA allocator's cached blocks included); on the CPU 0 means no limit.
  int64_t memory_budget = 0;
};

// What a training step of B x L tokens takes beyond the model's own buffers, by the
// layout of forward_backward (see model.cpp). An estimate built from the sizes of
// the tensors the step allocates, including the CUDA scan's backward scratch.
struct TrainMemoryEstimate {
  int64_t per_saved_layer = 0;       // x, z, y, x_dbl, the scan's checkpoints, the residual
  int64_t per_recomputed_layer = 0;  // the residual
  int64_t per_kept_layer = 0;        // what a kept layer adds to a saved one: xc, delta, h, rstd
  int64_t recompute_shared = 0;      // xz, x_dbl, checkpoints shared by the recomputed layers
  int64_t shared = 0;                // workspace, residual stream, LM head, op scratch
  int64_t total(int64_t saved_layers, int64_t recomputed_layers, int64_t kept_layers = 0) const {
    return shared + saved_layers * per_saved_layer + recomputed_layers * per_recomputed_layer +
           (recomputed_layers > 0 ? recompute_shared : 0) + kept_layers * per_kept_layer;
  }
};

// How forward_backward lays out one step (MambaModel::plan_step).
struct StepPlan {
  std::vector<bool> recompute;  // TrainOptions::recompute
  std::vector<bool> keep;       // TrainOptions::keep
  int64_t scan_flow_budget = 0;  // Context::scan_flow_budget for the step
};

class MambaModel {
 public:
  // Allocates the parameters (zero) on ctx's device; validates cfg.
  MambaModel(Context& ctx, const ModelConfig& cfg);
  // Copies would share parameter storage, and an AdamW holds a pointer to params().
  MambaModel(const MambaModel&) = delete;
  MambaModel& operator=(const MambaModel&) = delete;

  const ModelConfig& config() const { return cfg_; }
  ParamStore& params() { return params_; }
  const ParamStore& params() const { return params_; }

  // mamba_ssm's initialisation (PEERS.md "Training quality"), deterministic in seed.
  void init_weights(Context& ctx, uint64_t seed);

  // Forward, loss and backward of one micro-batch: gradients += d(loss_sum * grad_scale).
  // Pass grad_scale = 1 / (total loss weight of the whole optimizer step) so that the
  // accumulated gradient is that of the step's mean loss. Returns the weighted loss sum.
  double forward_backward(Context& ctx, const TokenInputs& in, float grad_scale, const TrainOptions& opt = {});

  // Weighted loss sum of a batch without gradients (no training activations kept).
  double loss_sum(Context& ctx, const TokenInputs& in);

  // Inference: logits and/or residual-stream captures, optionally streaming.
  ForwardOutput forward(Context& ctx, const ForwardRequest& req);

  // A zeroed stream state for `batch` rows.
  StreamState new_stream_state(Context& ctx, int64_t batch) const;

  // Memory of a training step (recomputing layers adds the shared recompute buffers).
  TrainMemoryEstimate train_memory_estimate(int64_t batch, int64_t length, DType act) const;
  // The plan of a step under `opt`, from one reading of the budget (opt.memory_budget, or
  // 90% of the device's free memory; none known on the CPU):
  // - recompute: opt.recompute when given, else the fewest layers (the first ones) that
  //   make the estimate fit; every layer when nothing fits; none without a budget;
  // - scan_flow_budget: what the CUDA scan backward may hold for its flows: the default
  //   (which the estimate counts) plus half of what `recompute` leaves of the budget;
  // - keep: opt.keep when given, else as many saved layers as the rest holds (the last
  //   ones first) once the flows have what their budget lets them take; none without a
  //   budget.
  // Throws std::invalid_argument for an explicit plan of the wrong size or one that keeps
  // a recomputed layer.
  StepPlan plan_step(Context& ctx, int64_t batch, int64_t length, const TrainOptions& opt) const;

 private:
  struct LayerIndex {
    int norm, in_proj, conv_w, conv_b, x_proj, dt_w, dt_b, A_log, Dskip, out_proj;
  };
  struct SavedLayer;

  MixerDims dims(int64_t batch, int64_t length) const;
  MixerParams layer_params(const Tensor& flat, int layer) const;
  // f32 views into values, act-dtype views for matrix products, grad views.
  MixerParams layer_values(int layer) const { return layer_params(params_.values(), layer); }
  MixerParams layer_compute(Context& ctx, int layer);
  MixerParams layer_grads(int layer) const { return layer_params(params_.grads(), layer); }
  // Act-dtype copy of the whole flat buffer (the f32 buffer itself when act is f32).
  const Tensor& compute_weights(Context& ctx);
  Tensor compute_view(Context& ctx, int param);
  int lm_head_index() const { return cfg_.tie_embeddings ? embedding_ : lm_head_; }
  void check_tokens(const Tensor& tokens, const Tensor& other, const char* what) const;

  ModelConfig cfg_;
  ParamStore params_;
  int embedding_ = -1, norm_f_ = -1, lm_head_ = -1;
  std::vector<LayerIndex> layers_;
  Tensor compute_flat_;  // bf16 copy of params_.values() when act is bf16
  uint64_t compute_version_ = 0;
  DType compute_dtype_ = DType::F32;
};

}  // namespace gm
