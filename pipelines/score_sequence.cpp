// Contig stretches as tokens, read on either strand (see score_sequence.h).
#include "pipelines/score_sequence.h"

#include <algorithm>
#include <stdexcept>
#include <string>

#include "genomics/tokenizer.h"

namespace gm {

ContigTokens::ContigTokens(const FastaReader& fasta, int contig_id, int64_t beg, int64_t end) {
  const auto& contig = fasta.contigs()[static_cast<size_t>(contig_id)];
  contig_length_ = contig.length;
  beg_ = std::clamp<int64_t>(beg, 0, contig_length_);
  end = std::clamp<int64_t>(end, beg_, contig_length_);
  tokens_.resize(static_cast<size_t>(end - beg_));
  // Fetch in pieces so that a whole chromosome never sits in memory twice.
  constexpr int64_t kPiece = int64_t{1} << 22;
  std::vector<uint8_t> flags(static_cast<size_t>(std::min(kPiece, end - beg_)));
  for (int64_t p = beg_; p < end; p += kPiece) {
    const int64_t q = std::min(end, p + kPiece);
    const FetchedSequence seq = fasta.fetch(contig_id, p, q);
    if (seq.size() != q - p) {
      throw std::runtime_error(fasta.path() + ": short read of " + contig.name + ":" + std::to_string(p + 1) + "-" +
                               std::to_string(q));
    }
    tokenize(seq.view(), tokens_.data() + (p - beg_), flags.data(), contig.name, p);
  }
}

void ContigTokens::strand_slice(Strand strand, int64_t s_beg, int64_t s_end, uint8_t* out) const {
  if (s_beg > s_end) throw std::invalid_argument("strand_slice: begin after end");
  if (strand == Strand::Forward) {
    if (s_beg < beg_ || s_end > end()) throw std::out_of_range("strand_slice: range not loaded");
    std::copy(tokens_.begin() + (s_beg - beg_), tokens_.begin() + (s_end - beg_), out);
    return;
  }
  // Strand [s_beg, s_end) is forward (L - s_end, L - s_beg], read backwards and complemented.
  const int64_t f_beg = contig_length_ - s_end, f_end = contig_length_ - s_beg;
  if (s_beg == s_end) return;
  if (f_beg < beg_ || f_end > end()) throw std::out_of_range("strand_slice: range not loaded");
  for (int64_t i = 0; i < s_end - s_beg; ++i) out[i] = complement_token(tokens_[static_cast<size_t>(f_end - 1 - i - beg_)]);
}

}  // namespace gm
