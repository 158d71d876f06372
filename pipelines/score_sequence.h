// ContigTokens: the tokens of one stretch [beg, end) of a contig (forward strand, fetched
// once), read back on either strand in strand coordinates (score_alleles.h: on the
// reverse strand position q is forward position length - 1 - q, complemented).
//
// Fetched in the constructor, or in the background (fetch_in_background): then the bases
// arrive piece by piece from the start, and a read waits until the bases it touches are
// there (a whole-contig stream can start on its first megabase while the rest is read).
// A fetch error is rethrown to whoever waits for the bases it did not deliver.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <exception>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "genomics/fasta.h"
#include "pipelines/score_alleles.h"

namespace gm {

class ContigTokens {
 public:
  // Fetches and tokenizes forward [beg, end) of the contig (clipped to it).
  ContigTokens(const FastaReader& fasta, int contig_id, int64_t beg, int64_t end);
  // The same, fetched by a background thread that uses `fasta` until fetch_done() (the
  // caller must not use `fasta` from another thread meanwhile, nor destroy it).
  static std::shared_ptr<ContigTokens> fetch_in_background(const FastaReader& fasta, int contig_id, int64_t beg,
                                                           int64_t end);
  ~ContigTokens();
  ContigTokens(const ContigTokens&) = delete;
  ContigTokens& operator=(const ContigTokens&) = delete;

  int64_t contig_length() const { return contig_length_; }
  int64_t beg() const { return beg_; }
  int64_t end() const { return beg_ + static_cast<int64_t>(tokens_.size()); }
  // Forward-strand token at forward position p (inside [beg, end)).
  uint8_t forward(int64_t p) const {
    if (p >= loaded_end_.load(std::memory_order_acquire)) wait_loaded(p + 1);
    return tokens_[static_cast<size_t>(p - beg_)];
  }

  // Strand positions [s_beg, s_end) into out[0, s_end - s_beg); they must be inside [beg, end).
  void strand_slice(Strand strand, int64_t s_beg, int64_t s_end, uint8_t* out) const;
  // Blocks until the whole stretch is fetched (rethrows a fetch error); then the FASTA
  // reader is free again.
  void fetch_done() const { wait_loaded(end()); }
  // Seconds the fetch took (after fetch_done()).
  double fetch_seconds() const { return fetch_seconds_; }

 private:
  struct Background;
  ContigTokens(const FastaReader& fasta, int contig_id, int64_t beg, int64_t end, bool background);
  // Fetches forward [from, to) into tokens_.
  void fetch(const FastaReader& fasta, int contig_id, int64_t from, int64_t to, std::vector<uint8_t>& flags);
  void wait_loaded(int64_t forward_end) const;

  int64_t contig_length_ = 0;
  int64_t beg_ = 0;
  std::vector<uint8_t> tokens_;
  std::atomic<int64_t> loaded_end_{0};  // forward [beg, loaded_end) holds tokens
  double fetch_seconds_ = 0;            // written before the last loaded_end_ store
  std::unique_ptr<Background> background_;
};

}  // namespace gm
