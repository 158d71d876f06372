// WindowPlan: where the windows of a dataset lie, computed from the intervals alone
// (no sequence is read), so inspect can count them and datasets can index them.
//
// Modes, for window length W and stride S (default W):
//  Tiled    every base of every interval is covered. An interval of n >= W bases gets
//           ceil((n - W) / S) + 1 windows at beg, beg+S, ..., the last one aligned to
//           the interval's end (so windows never leave the interval). An interval
//           shorter than W gets one window extended symmetrically into the flanking
//           sequence (extra/2 on the left, the rest on the right), clipped at the
//           contig ends; the clipped part becomes [PAD] padding in the row.
//  Strided  evaluation windows at beg, beg+S, beg+2S, ... while a whole window fits
//           (the short tail is dropped; intervals shorter than W give none).
//  Random   any start at which a whole window fits inside an interval (intervals
//           shorter than W give none); random_window(k) is the k-th such start.
// All coordinates 0-based, half-open.
#pragma once

#include <cstdint>
#include <vector>

#include "genomics/intervals.h"

namespace gm {

enum class WindowMode : uint8_t { Tiled, Strided, Random };
const char* window_mode_name(WindowMode m);  // "tiled", "strided", "random"
WindowMode parse_window_mode(const std::string& text);

struct WindowSpan {
  size_t interval = 0;  // index into the plan's intervals
  int contig_id = -1;
  int64_t beg = 0;      // sequence part of the window, clipped to the contig
  int64_t end = 0;
  int64_t pad_left = 0;  // [PAD] tokens before / after the sequence part
  int64_t pad_right = 0;
};

// The N filters shared by the datasets and inspect. A window is rejected when its
// N count plus padding is >= max_n_frac * length (max_n_frac >= 1 disables this), or
// when it has fewer than min_non_n non-N bases.
struct WindowFilter {
  double max_n_frac = 1.0;
  int64_t min_non_n = 0;
  bool rejects(const WindowSpan& span, int64_t n_in_sequence, int64_t length) const;
};

class WindowPlan {
 public:
  WindowPlan(std::vector<Interval> intervals, const ContigIndex& reference, WindowMode mode, int64_t length,
             int64_t stride = 0);

  WindowMode mode() const { return mode_; }
  int64_t length() const { return length_; }
  int64_t stride() const { return stride_; }
  const std::vector<Interval>& intervals() const { return intervals_; }

  // Tiled/Strided: number of windows; Random: number of possible starts.
  uint64_t size() const { return prefix_.empty() ? 0 : prefix_.back(); }
  // Windows (or starts) contributed by one interval.
  uint64_t count_in_interval(size_t interval) const { return prefix_[interval + 1] - prefix_[interval]; }

  // The i-th window in plan order (interval order, then position), i < size().
  WindowSpan window(uint64_t i) const;

 private:
  std::vector<Interval> intervals_;
  std::vector<int64_t> contig_lengths_;  // by interval
  WindowMode mode_;
  int64_t length_;
  int64_t stride_;
  std::vector<uint64_t> prefix_;  // prefix_[k] = windows in intervals [0, k)
};

}  // namespace gm
