// BranchRunner: runs the REF and ALT rows of strand jobs (score_alleles.h) from a shared
// model state, in batches, and fills GM_DLL, GM_EMB (and GM_LLR when asked) of each job.
//
// A job's two rows start at the same strand position `start` (<= the allele position) from
// the same state (the model having read everything before `start`, or nothing: fresh):
//   REF row = tokens[start, pos) + REF + tokens[pos + m, pos + m + right)
//   ALT row = tokens[start, pos) + ALT + tokens[pos + m, pos + m + right)
// The two rows of a job sit next to each other in one batch with the same layout, so
// the shared part is computed identically and cancels exactly in the differences.
// Shorter rows are padded at the end (a causal model never looks ahead).
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "mamba/context.h"
#include "mamba/model.h"
#include "pipelines/score_alleles.h"
#include "pipelines/score_sequence.h"

namespace gm {

// Where a job's rows start and the state before that.
struct BranchStart {
  int64_t start = 0;                         // strand position of the rows' first token
  std::shared_ptr<const StreamState> state;  // null: fresh (nothing before `start` is seen)
  int64_t row = 0;                           // row of `state` to start from
};

struct BranchConfig {
  bool dll = false, emb = false;
  bool llr = false;         // also GM_LLR from the rows (window mode)
  int layer = 0;            // capture point for GM_EMB
  int64_t max_rows = 16;    // rows per forward pass (2 per job)
  int64_t max_tokens = int64_t{1} << 20;  // rows x padded length per pass (memory bound)
};

// How many bases before the allele a job's rows must include: 1 for the prediction of the
// allele's first base (DLL, LLR), the left flank for EMB.
int64_t bases_needed_before(const StrandJob& job, const BranchConfig& c);

class BranchRunner {
 public:
  BranchRunner(Context& ctx, MambaModel& model, BranchConfig config);

  // Queues a job (its rows are built now from `seq`); runs a batch when it is full.
  void add(StrandJob* job, const ContigTokens& seq, BranchStart start);
  // Runs whatever is queued.
  void flush();
  int64_t rows_run() const { return rows_run_; }
  int64_t tokens_run() const { return tokens_run_; }

 private:
  struct Task {
    StrandJob* job = nullptr;
    std::vector<uint8_t> ref_row, alt_row;
    int64_t allele_at = 0;  // row index of the allele's first token
    int64_t emb_from = 0;   // row index where the EMB window starts
    BranchStart start;
  };
  void load_states(const StreamState& batch_state);

  Context& ctx_;
  MambaModel& model_;
  BranchConfig config_;
  std::vector<Task> tasks_;
  int64_t longest_ = 0;  // longest row queued
  int64_t rows_run_ = 0, tokens_run_ = 0;
};

}  // namespace gm
