// Checkpoints: model weights and training state, both as safetensors files.
//
// Weights file: one F32 tensor per parameter under mamba_ssm's MambaLMHeadModel
// names (backbone.embedding.weight, backbone.layers.N.mixer.in_proj.weight, ...; a
// tied lm_head is not stored); __metadata__ holds
//   "format" = "genomamba.weights", "format_version" = "1",
//   "config" = ModelConfig JSON (mamba_ssm MambaConfig keys, see config.h),
//   and the caller's provenance strings (tool version, command line, data, ...).
// Training-state file: "exp_avg.<param>" and "exp_avg_sq.<param>" F32 tensors (AdamW
// moments); __metadata__ holds "format" = "genomamba.train_state", "step",
// "adam_step", "rng_state" (decimal), "data_cursor", "config", and the caller's extras.
//
// Both are written atomically (temporary name, fsync, rename); loading validates the
// file (a truncated one is rejected) and that its config matches the model, with
// errors naming the file.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "mamba/config.h"
#include "mamba/context.h"
#include "mamba/model.h"
#include "mamba/optim.h"
#include "mamba/safetensors.h"

namespace gm {

// config.json beside a checkpoint (mamba_ssm's file name and layout), written atomically.
void save_config_json(const ModelConfig& config, const std::string& path);
ModelConfig load_config_json(const std::string& path);

// Keys of __metadata__ owned by genomamba; provenance/extras may not use them.
bool is_reserved_checkpoint_key(const std::string& key);

void save_weights(Context& ctx, const MambaModel& model, const std::string& path, const StringMap& provenance = {});

// The config stored in a weights (or train-state) file.
ModelConfig read_checkpoint_config(const std::string& path);
// All metadata strings of a checkpoint file (config and provenance).
StringMap read_checkpoint_metadata(const std::string& path);

// Builds a model from the file's config and loads its weights.
std::unique_ptr<MambaModel> load_model(Context& ctx, const std::string& path);
// Loads weights into an existing model; the file's config must equal model.config().
void load_weights(Context& ctx, MambaModel& model, const std::string& path);

struct TrainState {
  int64_t step = 0;          // optimizer steps completed (the next step's 0-based index)
  uint64_t rng_state = 0;    // the data sampler's Rng::state()
  std::string data_cursor;   // opaque position of the data pipeline
  StringMap extra;           // anything else the caller wants back on resume
};

void save_train_state(Context& ctx, const AdamW& optimizer, const ModelConfig& config, const TrainState& state,
                      const std::string& path);
// Restores the optimizer's moments and bias-correction count; returns the rest.
TrainState load_train_state(Context& ctx, AdamW& optimizer, const ModelConfig& config, const std::string& path);

}  // namespace gm
