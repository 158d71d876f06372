// Window placement arithmetic (see window_plan.h).
#include "genomics/window_plan.h"

#include <algorithm>
#include <stdexcept>

#include "genomics/errors.h"

namespace gm {

const char* window_mode_name(WindowMode m) {
  switch (m) {
    case WindowMode::Tiled: return "tiled";
    case WindowMode::Strided: return "strided";
    default: return "random";
  }
}

WindowMode parse_window_mode(const std::string& text) {
  if (text == "tiled") return WindowMode::Tiled;
  if (text == "strided") return WindowMode::Strided;
  if (text == "random") return WindowMode::Random;
  throw InputError("unknown window mode '" + text + "' (expected tiled, strided or random)");
}

bool WindowFilter::rejects(const WindowSpan& span, int64_t n_in_sequence, int64_t length) const {
  const int64_t n_like = n_in_sequence + span.pad_left + span.pad_right;
  if (max_n_frac < 1.0 && static_cast<double>(n_like) >= max_n_frac * static_cast<double>(length)) return true;
  return (span.end - span.beg) - n_in_sequence < min_non_n;
}

WindowPlan::WindowPlan(std::vector<Interval> intervals, const ContigIndex& reference, WindowMode mode, int64_t length,
                       int64_t stride)
    : intervals_(std::move(intervals)), mode_(mode), length_(length), stride_(stride > 0 ? stride : length) {
  if (length_ <= 0) throw InputError("window length must be positive");
  if (mode_ == WindowMode::Tiled && stride_ > length_) {
    throw InputError("tiled windows need stride <= window length (" + std::to_string(stride_) + " > " +
                     std::to_string(length_) + "), or bases would be skipped");
  }
  prefix_.assign(intervals_.size() + 1, 0);
  contig_lengths_.reserve(intervals_.size());
  for (size_t k = 0; k < intervals_.size(); ++k) {
    const Region& r = intervals_[k].region;
    contig_lengths_.push_back(reference[static_cast<size_t>(r.contig_id)].length);
    const int64_t n = r.length();
    uint64_t count = 0;
    switch (mode_) {
      case WindowMode::Tiled:
        count = n <= length_ ? 1 : static_cast<uint64_t>((n - length_ + stride_ - 1) / stride_ + 1);
        break;
      case WindowMode::Strided:
        count = n < length_ ? 0 : static_cast<uint64_t>((n - length_) / stride_ + 1);
        break;
      case WindowMode::Random:
        count = n < length_ ? 0 : static_cast<uint64_t>(n - length_ + 1);
        break;
    }
    prefix_[k + 1] = prefix_[k] + count;
  }
}

WindowSpan WindowPlan::window(uint64_t i) const {
  if (i >= size()) throw std::out_of_range("WindowPlan::window: index past the end");
  const size_t k = static_cast<size_t>(std::upper_bound(prefix_.begin(), prefix_.end(), i) - prefix_.begin()) - 1;
  const uint64_t j = i - prefix_[k];
  const Region& r = intervals_[k].region;
  WindowSpan w;
  w.interval = k;
  w.contig_id = r.contig_id;
  const int64_t n = r.length();
  if (mode_ == WindowMode::Random) {
    w.beg = r.beg + static_cast<int64_t>(j);
  } else if (mode_ == WindowMode::Strided || n > length_) {
    w.beg = r.beg + std::min(static_cast<int64_t>(j) * stride_, n - length_);
  } else {
    // Tiled, interval no longer than a window: extend symmetrically, clip at the contig.
    const int64_t extra = length_ - n;
    int64_t beg = r.beg - extra / 2;
    int64_t end = r.end + (extra - extra / 2);
    const int64_t contig_length = contig_lengths_[k];
    if (beg < 0) {
      w.pad_left = -beg;
      beg = 0;
    }
    if (end > contig_length) {
      w.pad_right = end - contig_length;
      end = contig_length;
    }
    w.beg = beg;
    w.end = end;
    return w;
  }
  w.end = w.beg + length_;
  return w;
}

}  // namespace gm
