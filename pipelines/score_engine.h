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
// The jobs come from a StrandJobSource: a list known in advance, or (forward-strand LLR
// alone) taken while the job's other thread still reads the records, chunk by chunk as the
// stream reaches them; the source hears after each chunk how far the scores are final.
#pragma once

#include <cstdint>
#include <functional>
#include <limits>
#include <utility>
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

// "Every position" for StrandJobSource::take_before.
inline constexpr int64_t kAllPositions = std::numeric_limits<int64_t>::max();

// Where score_full gets its jobs.
class StrandJobSource {
 public:
  virtual ~StrandJobSource() = default;
  // Jobs may be taken in forward order while they are being added: every job is a
  // forward-strand LLR job (or needs nothing). Otherwise score_full takes them all first.
  virtual bool incremental() const = 0;
  // Moves the jobs of the records that start before forward_pos (kAllPositions: all) that
  // were not taken before into `out`; blocks until they are all known.
  virtual void take_before(int64_t forward_pos, std::vector<StrandJob*>& out) = 0;
  // Every job was taken and no more will come.
  virtual bool exhausted() = 0;
  // Incremental streams: the LLRs of jobs at forward positions before forward_pos are final.
  virtual void final_before(int64_t /*forward_pos*/) {}
};

// A fixed list of jobs.
class JobListSource final : public StrandJobSource {
 public:
  explicit JobListSource(const std::vector<StrandJob*>& jobs) : jobs_(jobs) {}
  bool incremental() const override { return false; }
  void take_before(int64_t forward_pos, std::vector<StrandJob*>& out) override;
  bool exhausted() override { return taken_; }

 private:
  const std::vector<StrandJob*>& jobs_;
  bool taken_ = false;
};

class ScoreEngine {
 public:
  ScoreEngine(Context& ctx, MambaModel& model, EngineOptions options);

  // Window mode: `seq` must hold every strand base the jobs use (context, flanks).
  void score_window(const ContigTokens& seq, const std::vector<StrandJob*>& jobs);
  // Full context: `seq` must hold the whole contig. `on_chunk(fraction)` is called after
  // each streamed chunk (progress), fraction in [0, 1].
  void score_full(const ContigTokens& seq, const std::vector<StrandJob*>& jobs,
                  const std::function<void(double)>& on_chunk = {});
  void score_full(const ContigTokens& seq, StrandJobSource& source, const std::function<void(double)>& on_chunk = {});

  // Work done so far (for benchmarks and logs).
  int64_t tokens_run() const { return tokens_run_; }

 private:
  // score_full with an incremental source: one forward row, jobs taken chunk by chunk.
  void stream_forward_llr(const ContigTokens& seq, StrandJobSource& source, const std::function<void(double)>& on_chunk);
  // LLR = logits[alt] - logits[ref] at pos - 1 of each job; `where` = (row, column in the
  // chunk) of each job's logits row in out_logits [rows * len, vocab].
  void read_llr(const Tensor& logits, int64_t rows, int64_t len, const std::vector<std::pair<int64_t, int64_t>>& where,
                const std::vector<StrandJob*>& readers);

  Context& ctx_;
  MambaModel& model_;
  EngineOptions options_;
  int64_t tokens_run_ = 0;
};

}  // namespace gm
