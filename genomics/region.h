// Genomic regions. Internally every region is 0-based, half-open [beg, end) on a
// contig of the reference. Region strings on the command line are samtools-style,
// 1-based inclusive: "chr:beg-end", "chr:beg-" (to the contig end), "chr:beg" (as
// htslib: from beg to the contig end) and "chr" (the whole contig); commas in
// numbers are allowed. A name that is itself a contig (even with ':') is that contig.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "genomics/contigs.h"

namespace gm {

struct Region {
  int contig_id = -1;
  std::string contig;
  int64_t beg = 0;  // 0-based, inclusive
  int64_t end = 0;  // 0-based, exclusive
  int64_t length() const { return end - beg; }
  // "chr20:1-10000000" (1-based inclusive), for messages and tables.
  std::string to_string() const;
};

// Parses and validates against the reference: unknown contig (with naming hint),
// beg < 1, beg > end and an end past the contig end are InputErrors.
Region parse_region(const std::string& text, const ContigIndex& reference);

// Each string of a comma-free list; see parse_region.
std::vector<Region> parse_regions(const std::vector<std::string>& texts, const ContigIndex& reference);

// The whole of every contig of the reference, in index order.
std::vector<Region> whole_contigs(const ContigIndex& reference);

// Checks [beg, end) against the contig: negative, beg > end, or past the end is an
// InputError prefixed by `where` ("file:line").
void check_interval(const ContigIndex& reference, int contig_id, int64_t beg, int64_t end, const std::string& where);

}  // namespace gm
