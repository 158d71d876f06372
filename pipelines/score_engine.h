// ScoreEngine: computes the strand jobs (score_alleles.h) of one contig with the model, in
// one of two context modes.
//
// Window mode (context N): every job sees exactly the N strand bases before its allele
// (fewer at the contig start). LLR alone: one pass over those N bases per job, the last
// logits give p(base). With DLL/EMB: the shared prefix [pos - N, start) runs once per job
// (rows left-padded with a document start where the contig begins), then its state is
// copied into the job's REF and ALT rows (score_branch.h).
//
// Full context: each strand is streamed from its start in chunks of a fixed grid
// (multiples of `chunk` from the strand start, independent of which records are scored,
// so scores do not depend on -r, -R or --shard). LLR reads the stream's own logits at
// pos - 1: the cost is one pass per strand, whatever the number of variants. DLL/EMB jobs
// start their REF/ALT rows at the grid point at or before what they need, from a copy of
// the stream state there. The strands run as the rows of one batch while both are needed.
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

#include "mamba/context.h"
#include "mamba/model.h"
#include "pipelines/score_alleles.h"
#include "pipelines/score_options.h"
#include "pipelines/score_sequence.h"

namespace gm {

struct EngineOptions {
  ScoreSelection scores;
  int layer = 0;             // capture point for EMB
  int64_t batch_rows = 8;    // rows per forward pass, at most
  int64_t max_tokens = int64_t{1} << 17;  // tokens per forward pass, at most (rows shrink for long rows)
  int64_t chunk = 32768;     // full context: streaming chunk (the grid)
};

// Default rows per pass, tokens per pass and streaming chunk for a device and score selection.
int64_t default_batch_rows(const Device& device);
int64_t default_max_tokens(const Device& device);
int64_t default_stream_chunk(const Device& device, const ScoreSelection& scores);

class ScoreEngine {
 public:
  ScoreEngine(Context& ctx, MambaModel& model, EngineOptions options);

  // Window mode: `seq` must hold every strand base the jobs use (context, flanks).
  void score_window(const ContigTokens& seq, const std::vector<StrandJob*>& jobs);
  // Full context: `seq` must hold the whole contig. `on_chunk(fraction)` is called after
  // each streamed chunk (progress), fraction in [0, 1].
  void score_full(const ContigTokens& seq, const std::vector<StrandJob*>& jobs,
                  const std::function<void(double)>& on_chunk = {});

  // Work done so far (for benchmarks and logs).
  int64_t tokens_run() const { return tokens_run_; }

 private:
  Context& ctx_;
  MambaModel& model_;
  EngineOptions options_;
  int64_t tokens_run_ = 0;
};

}  // namespace gm
