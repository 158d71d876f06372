// Window datasets: plan lookup, fetch + tokenize straight into the batch rows,
// N-based rejection, reverse-complement augmentation, text cursors.
#include "genomics/window_dataset.h"

#include <algorithm>
#include <sstream>

#include "genomics/counter_rng.h"
#include "genomics/cursor_text.h"
#include "genomics/errors.h"
#include "genomics/text.h"
#include "genomics/tokenizer.h"

namespace gm {
namespace {

// Streams of counter_random, so that unrelated decisions never share numbers.
constexpr uint64_t kStreamShuffle = 1;
constexpr uint64_t kStreamReverse = 2;
constexpr uint64_t kStreamRandomStart = uint64_t{1} << 32;  // + attempt

constexpr const char* kCursorMagic = "gm-windows-v1";

}  // namespace

WindowDataset::WindowDataset(const std::string& fasta_path, std::vector<Interval> intervals,
                             WindowDatasetOptions options)
    : fasta_(fasta_path),
      options_(options),
      plan_(std::move(intervals), fasta_.contigs(), options.mode, options.length, options.stride) {
  if (options_.rows <= 0) throw InputError("batch rows must be positive");
  if (options_.length > int64_t{1} << 30) throw InputError("window length above 2^30 tokens is not supported");
  if (!(options_.max_n_frac > 0.0)) throw InputError("max N fraction must be > 0 (1 keeps every window)");
  if (plan_.size() == 0) {
    throw InputError(std::string("no ") + window_mode_name(options_.mode) + " window of " +
                     with_commas(options_.length) + " bases fits in the selected intervals" +
                     (options_.mode == WindowMode::Tiled ? "" : " (every interval is shorter than a window)"));
  }
}

bool WindowDataset::fill_row(Batch& batch, int r, const WindowSpan& span, bool reverse) {
  const int64_t length = options_.length;
  uint8_t* tokens = batch.row_tokens(r);
  uint8_t* flags = batch.row_flags(r);
  std::fill(tokens, tokens + span.pad_left, token::kPad);
  std::fill(flags, flags + span.pad_left, uint8_t{0});
  std::fill(tokens + length - span.pad_right, tokens + length, token::kPad);
  std::fill(flags + length - span.pad_right, flags + length, uint8_t{0});
  const Contig& contig = fasta_.contigs()[static_cast<size_t>(span.contig_id)];
  const FetchedSequence seq = fasta_.fetch(span.contig_id, span.beg, span.end);
  tokenize(seq.view(), tokens + span.pad_left, flags + span.pad_left, contig.name, span.beg);
  const int64_t n = count_n(tokens + span.pad_left, static_cast<size_t>(seq.size()));
  if (WindowFilter{options_.max_n_frac, options_.min_non_n}.rejects(span, n, length)) return false;
  if (reverse) reverse_complement(tokens, flags, static_cast<size_t>(length));
  flags[0] |= kFlagDocStart;
  RowInfo& info = batch.info[static_cast<size_t>(r)];
  info.contig = contig.name;
  info.start = span.beg;
  info.end = span.end;
  info.strand = reverse ? '-' : '+';
  info.split = plan_.intervals()[span.interval].split;
  info.offset = static_cast<int32_t>(reverse ? span.pad_right : span.pad_left);
  return true;
}

bool WindowDataset::next(Batch& batch) {
  return options_.mode == WindowMode::Random ? next_random(batch) : next_ordered(batch);
}

bool WindowDataset::next_ordered(Batch& batch) {
  batch.reset(options_.rows, static_cast<int>(options_.length));
  const uint64_t n = plan_.size();
  uint64_t consecutive_rejections = 0;
  int r = 0;
  while (r < options_.rows) {
    if (position_ >= n) {
      if (!options_.repeat) break;
      ++epoch_;
      position_ = 0;
    }
    const uint64_t epoch_key = counter_random(options_.seed, kStreamShuffle, static_cast<uint64_t>(epoch_));
    const uint64_t index = options_.shuffle ? FeistelPermutation(n, epoch_key)(position_) : position_;
    const bool reverse =
        options_.rc_augment && (counter_random(epoch_key, kStreamReverse, position_) & 1) != 0;
    ++position_;
    if (fill_row(batch, r, plan_.window(index), reverse)) {
      ++r;
      ++emitted_;
      consecutive_rejections = 0;
    } else {
      ++rejected_;
      if (++consecutive_rejections > n) {
        throw InputError("every window is rejected by the N filters (max N fraction " +
                         std::to_string(options_.max_n_frac) + ", min non-N " + std::to_string(options_.min_non_n) +
                         "): the selected sequence is (almost) all N");
      }
    }
  }
  batch.truncate_rows(r);
  return r > 0;
}

bool WindowDataset::next_random(Batch& batch) {
  batch.reset(options_.rows, static_cast<int>(options_.length));
  const uint64_t n = plan_.size();
  for (int r = 0; r < options_.rows; ++r) {
    const bool reverse = options_.rc_augment && (counter_random(options_.seed, kStreamReverse, draws_) & 1) != 0;
    for (int64_t attempt = 0;; ++attempt) {
      if (attempt >= options_.max_consecutive_rejections) {
        throw InputError("gave up drawing a random window after " + with_commas(attempt) +
                         " rejections (max N fraction " + std::to_string(options_.max_n_frac) +
                         "): the selected sequence is mostly N");
      }
      const uint64_t pick =
          uniform_below(counter_random(options_.seed, kStreamRandomStart + static_cast<uint64_t>(attempt), draws_), n);
      if (fill_row(batch, r, plan_.window(pick), reverse)) break;
      ++rejected_;
    }
    ++draws_;
    ++emitted_;
  }
  return true;
}

std::string WindowDataset::config_tag() const {
  std::ostringstream os;
  os << "mode=" << window_mode_name(options_.mode) << " length=" << options_.length << " stride=" << plan_.stride()
     << " seed=" << options_.seed << " shuffle=" << (options_.shuffle ? 1 : 0) << " plan=" << plan_.size();
  return os.str();
}

std::string WindowDataset::save_cursor() const {
  return format_cursor(kCursorMagic, config_tag(),
                       {{"epoch", static_cast<uint64_t>(epoch_)}, {"position", position_}, {"draws", draws_}});
}

void WindowDataset::restore_cursor(const std::string& cursor) {
  auto state = parse_cursor(cursor, kCursorMagic, config_tag(), {"epoch", "position", "draws"});
  if (state["position"] > plan_.size()) throw InputError("data cursor position is past the end of the plan");
  epoch_ = static_cast<int64_t>(state["epoch"]);
  position_ = state["position"];
  draws_ = state["draws"];
}

}  // namespace gm
