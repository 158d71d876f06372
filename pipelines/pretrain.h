// Pretraining a causal Mamba LM on a genome (FASTA windows, or reads from BAM/CRAM
// packed into rows), with AdamW, warmup + cosine LR, clipping, gradient accumulation,
// periodic validation, checkpoints and bitwise-exact resume.
//
// Run directory layout (out_dir):
//   metrics.jsonl                one JSON object per logged step / validation
//   checkpoints/step-NNNNNNNN/   model.safetensors + config.json + train_state.safetensors
//   checkpoints/latest           name of the newest complete checkpoint directory
// A checkpoint directory is written under a temporary name and renamed when complete,
// then `latest` is replaced atomically; a killed run never leaves a half checkpoint
// that resume would load.
#pragma once

#include <cstdint>
#include <iosfwd>
#include <string>
#include <vector>

#include "mamba/config.h"

namespace gm {

// One stage of a sequence-length schedule: rows of `seq_len` tokens from `step` on
// (HyenaDNA-style context warmup). Batch rows = tokens_per_batch / seq_len.
struct SeqLenStage {
  int64_t from_step = 0;
  int64_t seq_len = 0;
};

struct PretrainOptions {
  // data
  std::string fasta;
  std::string splits_bed;                  // 4th column train|valid|test (optional)
  std::vector<std::string> train_regions;  // region strings (when no BED), default: all contigs
  std::vector<std::string> valid_regions;
  std::string reads;                       // BAM/CRAM: train on reads packed into rows instead
  std::string reads_reference;             // FASTA for CRAM decoding (default: fasta)
  std::string sampling = "random";         // random | tile (windows), ignored for reads
  double max_n_frac = 0.1;
  bool rc_augment = false;
  float soft_weight = 1.f;                 // loss weight of soft-masked (lowercase) targets

  // shape of a step
  int64_t seq_len = 4096;                  // tokens per row (the window is seq_len + 1)
  int64_t batch_size = 8;                  // rows per micro-batch
  int64_t grad_accum = 1;                  // micro-batches per optimizer step
  std::vector<SeqLenStage> seq_len_schedule;  // overrides seq_len/batch_size when set
  int64_t tokens_per_batch = 0;            // with a schedule: rows = tokens_per_batch / seq_len

  // model
  ModelConfig model;
  std::string init_checkpoint;             // start from these weights instead of random init

  // optimisation
  int64_t steps = 1000;
  double lr = 2e-3;
  int64_t warmup_steps = 20;
  double min_lr_ratio = 0.1;
  double weight_decay = 0.1;
  double beta1 = 0.9, beta2 = 0.95, adam_eps = 1e-8;
  double clip_grad_norm = 1.0;             // <= 0: no clipping
  int max_bad_steps = 5;                   // consecutive NaN/Inf steps before giving up

  // validation
  int64_t eval_every = 0;                  // steps; 0 = only at the end
  int64_t eval_seq_len = 0;                // default: seq_len (last stage's)
  int64_t eval_max_windows = 0;            // 0 = all windows of the valid split
  int64_t eval_min_acgt = 1000;            // skip windows with fewer non-N targets
  int64_t eval_batch_size = 0;             // default: batch_size

  // run
  std::string out_dir;
  int64_t checkpoint_every = 0;            // steps; 0 = only at the end
  bool resume = false;                     // continue from out_dir/checkpoints/latest
  int64_t log_every = 1;
  uint64_t seed = 0;
  std::string device = "cpu";
  std::string precision = "bf16";          // on CUDA; the CPU is always fp32
  // Memory a training step may take beyond the model, its gradients and the optimizer
  // (TrainOptions::memory_budget), GiB; 0 = 90% of what the device has free (no limit on
  // the CPU). Layers are recomputed to fit it, or kept whole with what it leaves.
  double memory_budget_gib = 0;
  int threads = 0;
  std::string command_line;                // for provenance
};

// Throws on bad options or input; returns 0 when training finished, or a non-zero
// status when it stopped on repeated non-finite steps.
int run_pretrain(const PretrainOptions& opt, std::ostream& log);

}  // namespace gm
