// Held-out evaluation of a causal model: loss, perplexity and bits per base over
// non-overlapping windows of regions of a FASTA, as PEERS.md's evaluation: windows of
// W + 1 tokens starting at beg, beg + W, ... while a whole window fits, each run from a
// fresh state, targets = tokens 1..W (every position after a region's first is a
// target once); windows with fewer than min_acgt A/C/G/T targets skipped; only A/C/G/T
// targets count (N excluded), all weighted 1.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "genomics/intervals.h"
#include "mamba/context.h"
#include "mamba/model.h"

namespace gm {

struct EvalOptions {
  int64_t window = 32768;    // targets per window (W)
  int64_t batch_size = 8;    // windows per forward
  int64_t min_acgt = 1000;
  int64_t max_windows = 0;   // 0 = all
};

struct EvalResult {
  int64_t windows = 0;
  double targets = 0;        // counted A/C/G/T targets
  double loss_sum = 0;       // nats
  double mean_loss() const { return targets > 0 ? loss_sum / targets : 0; }
  double bits_per_base() const;
  double perplexity() const;
};

// `on_batch(windows_done, windows_total)` is called after each batch (progress).
EvalResult evaluate_windows(Context& ctx, MambaModel& model, const std::string& fasta,
                            const std::vector<Interval>& intervals, const EvalOptions& opt,
                            const std::function<void(int64_t, int64_t)>& on_batch = {});

}  // namespace gm
