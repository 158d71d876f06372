// ContigTokens: the tokens of one stretch [beg, end) of a contig (forward strand, fetched
// once), read back on either strand in strand coordinates (score_alleles.h: on the
// reverse strand position q is forward position length - 1 - q, complemented).
#pragma once

#include <cstdint>
#include <vector>

#include "genomics/fasta.h"
#include "pipelines/score_alleles.h"

namespace gm {

class ContigTokens {
 public:
  // Fetches and tokenizes forward [beg, end) of the contig (clipped to it).
  ContigTokens(const FastaReader& fasta, int contig_id, int64_t beg, int64_t end);

  int64_t contig_length() const { return contig_length_; }
  int64_t beg() const { return beg_; }
  int64_t end() const { return beg_ + static_cast<int64_t>(tokens_.size()); }
  // Forward-strand token at forward position p (inside [beg, end)).
  uint8_t forward(int64_t p) const { return tokens_[static_cast<size_t>(p - beg_)]; }

  // Strand positions [s_beg, s_end) into out[0, s_end - s_beg); they must be loaded.
  void strand_slice(Strand strand, int64_t s_beg, int64_t s_end, uint8_t* out) const;

 private:
  int64_t contig_length_ = 0;
  int64_t beg_ = 0;
  std::vector<uint8_t> tokens_;
};

}  // namespace gm
