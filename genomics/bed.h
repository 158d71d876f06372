// BED reader. Coordinates are 0-based, half-open, as in the file. Columns beyond the
// first three are kept verbatim in `fields`; the name (4), score (5) and strand (6)
// columns are also exposed by name for `embed -R`. When the 4th column of every
// record is one of train|valid|test (the Basenji/Enformer `sequences_human.bed`
// layout that HyenaDNA and Caduceus train on), it is a split column instead of a name.
// Header lines (track, browser, #...) and blank lines are skipped. Bad lines (fewer
// than 3 columns, non-integer coordinates, beg > end) are InputErrors naming file:line.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "genomics/contigs.h"
#include "genomics/region.h"

namespace gm {

enum class Split : uint8_t { All, Train, Valid, Test };

const char* split_name(Split s);  // "all", "train", "valid", "test"
// "train" | "valid" | "test" | "all"; anything else is an InputError.
Split parse_split(const std::string& text);

struct BedRecord {
  std::string contig;
  int64_t beg = 0;  // 0-based
  int64_t end = 0;  // exclusive
  std::string name;   // 4th column when it is not a split column
  std::string score;  // 5th column, verbatim
  char strand = '.';  // 6th column: '+', '-' or '.'
  Split split = Split::All;
  std::vector<std::string> fields;  // columns 4.. verbatim
  int64_t line = 0;                 // 1-based line number in the file
};

struct BedFile {
  std::string path;
  std::vector<BedRecord> records;
  bool has_split_column = false;
};

// Reads a plain or bgzip/gzip-compressed BED.
BedFile read_bed(const std::string& path);

// Checks every record against the reference (unknown contig with the naming hint,
// end past the contig end); messages name path:line. Returns the regions, in file order.
std::vector<Region> bed_regions(const BedFile& bed, const ContigIndex& reference);

}  // namespace gm
