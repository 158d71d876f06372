// Contig composition scan and N-run counting.
#include "genomics/composition.h"

#include <algorithm>

namespace gm {

void NRuns::append(int64_t beg, int64_t end) {
  if (end <= beg) return;
  if (!ends_.empty() && ends_.back() == beg) {
    ends_.back() = end;
    cumulative_.back() += end - beg;
    return;
  }
  begs_.push_back(beg);
  ends_.push_back(end);
  cumulative_.push_back((cumulative_.empty() ? 0 : cumulative_.back()) + (end - beg));
}

int64_t NRuns::count(int64_t beg, int64_t end) const {
  if (end <= beg || begs_.empty()) return 0;
  // Runs [first, last) are those overlapping [beg, end).
  const size_t first = static_cast<size_t>(std::upper_bound(ends_.begin(), ends_.end(), beg) - ends_.begin());
  const size_t last = static_cast<size_t>(std::lower_bound(begs_.begin(), begs_.end(), end) - begs_.begin());
  if (first >= last) return 0;
  int64_t n = cumulative_[last - 1] - (first > 0 ? cumulative_[first - 1] : 0);
  n -= std::max<int64_t>(0, beg - begs_[first]);    // part of the first run before beg
  n -= std::max<int64_t>(0, ends_[last - 1] - end);  // part of the last run after end
  return n;
}

ContigComposition scan_contig(const FastaReader& fasta, int contig_id, int64_t chunk) {
  ContigComposition out;
  out.contig_id = contig_id;
  const Contig& contig = fasta.contigs()[static_cast<size_t>(contig_id)];
  out.length = contig.length;
  std::vector<uint8_t> tokens, flags;
  for (int64_t beg = 0; beg < contig.length; beg += chunk) {
    const int64_t end = std::min(contig.length, beg + chunk);
    const FetchedSequence seq = fasta.fetch(contig_id, beg, end);
    tokens.resize(static_cast<size_t>(seq.size()));
    flags.resize(static_cast<size_t>(seq.size()));
    out.counts.add(tokenize_counting(seq.view(), tokens.data(), flags.data(), contig.name, beg));
    int64_t i = 0;
    const int64_t n = seq.size();
    while (i < n) {
      if (tokens[static_cast<size_t>(i)] != token::kN) {
        ++i;
        continue;
      }
      const int64_t run_beg = i;
      while (i < n && tokens[static_cast<size_t>(i)] == token::kN) ++i;
      out.n_runs.append(beg + run_beg, beg + i);
    }
  }
  return out;
}

}  // namespace gm
