// `genomamba embed` as a job: checkpoint + FASTA + regions in, one HDF5 file out
// (pooled: an .h5ad; --pool none: the per-token layout; see h5ad_writer.h).
//
// - The checkpoint must speak genomamba's DNA vocabulary (16 ids) and be causal.
// - Everything the user gave is validated before the model runs: regions (unknown contig
//   with the chr1/1 hint, past the contig end, empty BED), layers, the output directory.
// - --shard i/N (default from SLURM_ARRAY_TASK_ID/COUNT) embeds the i-th contiguous
//   block of the region list (after tiling), writes shard_output_path(output) and then a
//   done marker (command without --shard + checkpoint SHA-256). A rerun skips the shard
//   when output and marker match, and fails when the marker records another job.
// - The file is written under a temporary name and renamed when complete.
#pragma once

#include <cstdint>
#include <functional>
#include <iosfwd>
#include <string>
#include <vector>

#include "mamba/config.h"
#include "mamba/context.h"
#include "pipelines/embed_engine.h"
#include "pipelines/embed_regions.h"
#include "pipelines/h5ad_writer.h"
#include "pipelines/pooling.h"
#include "pipelines/sharding.h"

namespace gm {

struct EmbedJob {
  std::string fasta;
  std::string model;   // weights file, checkpoint directory or run directory
  std::string output;
  RegionSelection regions;
  std::string layers = "last";  // comma list of residual-stream points, "last" = n_layer
  Pool pool = Pool::Mean;
  StrandMode strand = StrandMode::Fwd;
  StoredDtype dtype = StoredDtype::F32;
  int64_t flank = 0;
  int64_t chunk = 0;       // tokens per row per forward; 0 = default_embed_chunk(device)
  int64_t batch_size = 0;  // rows per forward; 0 = default_embed_rows(device)
  std::string shard;       // "i/N"; empty = SLURM variables, else unsharded
  Device device = Device::cpu();
  int threads = 0;
  Precision precision = Precision::BF16;
  std::string command_line;  // as typed, for provenance and the done marker
};

struct EmbedSummary {
  std::string output;   // the file written (or found complete)
  bool skipped = false; // the shard was already done
  ShardSpec shard;
  int64_t regions = 0, all_n_regions = 0, model_tokens = 0;
  double seconds = 0;
};

// The streaming step by default: on CUDA 64 rows x 16,384 tokens, about a million tokens
// a forward in rows enough (64 x d_inner >= 8,192 batch x channel rows for d_model >= 64)
// that the selective scan runs its single-pass forward (1.8x faster than the chunked one
// at 64 x 512 channels, bench/RESULTS.md); on the CPU one row of 65,536.
int64_t default_embed_rows(const Device& device);
int64_t default_embed_chunk(const Device& device);

// "3", "0,4,8", "last" (= n_layer); each in [0, n_layer], no repeats.
std::vector<int> parse_layers(const std::string& text, int64_t n_layer);

// Throws InputError when the checkpoint's config cannot embed DNA tokens.
void check_embedding_model(const ModelConfig& config, const std::string& checkpoint);

EmbedSummary run_embed(const EmbedJob& job, const EnvLookup& env,
                       const std::function<void(const EmbedProgress&)>& progress, std::ostream& log);

}  // namespace gm
