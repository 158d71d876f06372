// WindowDataset: batches of fixed-length windows of a FASTA (see window_plan.h for
// where windows lie). Each row is one window: tokens, soft-mask flags, a document
// start at position 0, [PAD] where a short interval's extension ran off the contig.
//
// - Rejection: a window whose fraction of N (padding counts as N) is >= max_n_frac is
//   skipped (max_n_frac >= 1 keeps every window), as is one with fewer than min_non_n
//   non-N bases. PEERS.md's training recipe is Random + max_n_frac 0.1; its
//   evaluation is Strided, length 32,769, stride 32,768, min_non_n 1,000.
// - Order: Tiled/Strided go through the plan once per epoch, permuted per epoch from
//   the seed when shuffle is on; Random draws window k from (seed, k) alone.
// - rc_augment: each window is reverse-complemented with probability 1/2 (decided by
//   the seed and the window's place in the stream); its RowInfo strand is then '-'.
// - The cursor is (epoch, position) or (draws); batches are a pure function of the
//   options, the data and the cursor, so the same seed gives the same batches anywhere.
// Owns its FASTA handle: use from one thread at a time (PrefetchLoader does).
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "genomics/batch.h"
#include "genomics/fasta.h"
#include "genomics/window_plan.h"

namespace gm {

struct WindowDatasetOptions {
  WindowMode mode = WindowMode::Tiled;
  int rows = 1;              // windows per batch
  int64_t length = 0;        // tokens per window
  int64_t stride = 0;        // Tiled/Strided; 0 = length
  double max_n_frac = 1.0;   // skip windows with N fraction >= this; >= 1 keeps all
  int64_t min_non_n = 0;     // skip windows with fewer non-N bases
  bool rc_augment = false;
  bool shuffle = true;       // Tiled/Strided: permute the order each epoch
  bool repeat = true;        // Tiled/Strided: start a new epoch after the last window;
                             // false: stop (the last batch may be short)
  uint64_t seed = 0;
  int64_t max_consecutive_rejections = 100000;  // Random: give up (InputError) after this many
};

class WindowDataset : public BatchSource {
 public:
  // Opens its own reader of `fasta_path`; intervals must refer to that FASTA's contigs.
  WindowDataset(const std::string& fasta_path, std::vector<Interval> intervals, WindowDatasetOptions options);

  bool next(Batch& batch) override;
  std::string save_cursor() const override;
  void restore_cursor(const std::string& cursor) override;

  const WindowPlan& plan() const { return plan_; }
  const WindowDatasetOptions& options() const { return options_; }
  int64_t windows_emitted() const { return emitted_; }
  int64_t windows_rejected() const { return rejected_; }
  int64_t epoch() const { return epoch_; }

 private:
  // Fills row `r` with the window; false when it is rejected by the N filters.
  bool fill_row(Batch& batch, int r, const WindowSpan& span, bool reverse);
  bool next_ordered(Batch& batch);
  bool next_random(Batch& batch);
  std::string config_tag() const;

  FastaReader fasta_;
  WindowDatasetOptions options_;
  WindowPlan plan_;
  // Cursor.
  int64_t epoch_ = 0;
  uint64_t position_ = 0;  // Tiled/Strided: next index into this epoch's order
  uint64_t draws_ = 0;     // Random: windows emitted so far
  // Statistics (not part of the cursor).
  int64_t emitted_ = 0;
  int64_t rejected_ = 0;
};

}  // namespace gm
