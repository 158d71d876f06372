// Contig stretches as tokens, read on either strand (see score_sequence.h).
#include "pipelines/score_sequence.h"

#include <algorithm>
#include <chrono>
#include <stdexcept>
#include <string>

#include "genomics/tokenizer.h"

namespace gm {

namespace {
// Fetch in pieces so that a whole chromosome never sits in memory twice; the first piece is
// small so that a background fetch delivers the start of the contig at once.
constexpr int64_t kFirstPiece = int64_t{1} << 20;
constexpr int64_t kPiece = int64_t{1} << 22;
}  // namespace

struct ContigTokens::Background {
  std::thread thread;
  std::atomic<bool> stop{false};
  std::mutex mu;
  std::condition_variable cv;
  std::exception_ptr error;
};

ContigTokens::ContigTokens(const FastaReader& fasta, int contig_id, int64_t beg, int64_t end)
    : ContigTokens(fasta, contig_id, beg, end, false) {}

std::shared_ptr<ContigTokens> ContigTokens::fetch_in_background(const FastaReader& fasta, int contig_id, int64_t beg,
                                                                int64_t end) {
  return std::shared_ptr<ContigTokens>(new ContigTokens(fasta, contig_id, beg, end, true));
}

ContigTokens::ContigTokens(const FastaReader& fasta, int contig_id, int64_t beg, int64_t end, bool background) {
  const auto& contig = fasta.contigs()[static_cast<size_t>(contig_id)];
  contig_length_ = contig.length;
  beg_ = std::clamp<int64_t>(beg, 0, contig_length_);
  end = std::clamp<int64_t>(end, beg_, contig_length_);
  tokens_.resize(static_cast<size_t>(end - beg_));
  loaded_end_.store(beg_);
  auto fetch_all = [this, &fasta, contig_id, end] {
    const auto start = std::chrono::steady_clock::now();
    std::vector<uint8_t> flags(static_cast<size_t>(std::min(kPiece, end - beg_)));
    for (int64_t p = beg_; p < end;) {
      if (background_ && background_->stop) return;
      const int64_t q = std::min(end, p + (p == beg_ ? kFirstPiece : kPiece));
      fetch(fasta, contig_id, p, q, flags);
      if (q == end) fetch_seconds_ = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      if (background_) {
        std::lock_guard<std::mutex> lock(background_->mu);
        loaded_end_.store(q, std::memory_order_release);
        background_->cv.notify_all();
      } else {
        loaded_end_.store(q, std::memory_order_release);
      }
      p = q;
    }
  };
  if (!background) {
    fetch_all();
    return;
  }
  background_ = std::make_unique<Background>();
  background_->thread = std::thread([this, fetch_all] {
    try {
      fetch_all();
    } catch (...) {
      std::lock_guard<std::mutex> lock(background_->mu);
      background_->error = std::current_exception();
      background_->cv.notify_all();
    }
  });
}

ContigTokens::~ContigTokens() {
  if (background_ && background_->thread.joinable()) {
    background_->stop = true;
    background_->thread.join();
  }
}

void ContigTokens::fetch(const FastaReader& fasta, int contig_id, int64_t from, int64_t to,
                         std::vector<uint8_t>& flags) {
  const auto& contig = fasta.contigs()[static_cast<size_t>(contig_id)];
  const FetchedSequence seq = fasta.fetch(contig_id, from, to);
  if (seq.size() != to - from) {
    throw std::runtime_error(fasta.path() + ": short read of " + contig.name + ":" + std::to_string(from + 1) + "-" +
                             std::to_string(to));
  }
  tokenize(seq.view(), tokens_.data() + (from - beg_), flags.data(), contig.name, from);
}

void ContigTokens::wait_loaded(int64_t forward_end) const {
  forward_end = std::min(forward_end, end());
  if (loaded_end_.load(std::memory_order_acquire) >= forward_end) return;
  if (!background_) throw std::logic_error("ContigTokens: bases past the fetched stretch");
  std::unique_lock<std::mutex> lock(background_->mu);
  background_->cv.wait(lock, [&] {
    return background_->error || loaded_end_.load(std::memory_order_acquire) >= forward_end;
  });
  if (loaded_end_.load(std::memory_order_acquire) < forward_end) std::rethrow_exception(background_->error);
}

void ContigTokens::strand_slice(Strand strand, int64_t s_beg, int64_t s_end, uint8_t* out) const {
  if (s_beg > s_end) throw std::invalid_argument("strand_slice: begin after end");
  if (strand == Strand::Forward) {
    if (s_beg < beg_ || s_end > end()) throw std::out_of_range("strand_slice: range not loaded");
    wait_loaded(s_end);
    std::copy(tokens_.begin() + (s_beg - beg_), tokens_.begin() + (s_end - beg_), out);
    return;
  }
  // Strand [s_beg, s_end) is forward (L - s_end, L - s_beg], read backwards and complemented.
  const int64_t f_beg = contig_length_ - s_end, f_end = contig_length_ - s_beg;
  if (s_beg == s_end) return;
  if (f_beg < beg_ || f_end > end()) throw std::out_of_range("strand_slice: range not loaded");
  wait_loaded(f_end);
  for (int64_t i = 0; i < s_end - s_beg; ++i) out[i] = complement_token(tokens_[static_cast<size_t>(f_end - 1 - i - beg_)]);
}

}  // namespace gm
