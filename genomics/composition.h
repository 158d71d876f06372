// Base composition of a contig (N, GC, soft-masked counts) and the runs of N in it,
// from one pass over the sequence. NRuns answers "how many N in [beg, end)" in
// O(log runs), which lets inspect count the windows a max-N filter would reject
// without reading the sequence again. "N" includes IUPAC ambiguity codes (they
// tokenize to N), as in the datasets' filters.
#pragma once

#include <cstdint>
#include <vector>

#include "genomics/fasta.h"
#include "genomics/tokenizer.h"

namespace gm {

class NRuns {
 public:
  // Appends a run; runs must come in increasing, non-overlapping order. Adjacent runs merge.
  void append(int64_t beg, int64_t end);
  int64_t count(int64_t beg, int64_t end) const;  // N bases in [beg, end)
  size_t size() const { return begs_.size(); }
  int64_t total() const { return cumulative_.empty() ? 0 : cumulative_.back(); }

 private:
  std::vector<int64_t> begs_, ends_;
  std::vector<int64_t> cumulative_;  // N bases in runs [0..i]
};

struct ContigComposition {
  int contig_id = -1;
  int64_t length = 0;
  BaseCounts counts;
  NRuns n_runs;
};

// Reads the whole contig in chunks; throws InputError on invalid characters (naming
// contig and position) or read errors.
ContigComposition scan_contig(const FastaReader& fasta, int contig_id, int64_t chunk = int64_t{1} << 22);

}  // namespace gm
