// genomamba inspect: the user's check of their data before a long run.
// For a FASTA: per-contig length, N, soft-masked and GC (of non-N) fractions (contigs
// scanned in parallel, one FASTA handle per thread). With a window length: how many
// windows each split yields over the intervals (BED with optional split column, -r
// regions, or whole contigs) and how many the N filters would reject. With a BAM/CRAM:
// reads kept and dropped by the filter, and records without SEQ.
#pragma once

#include <cstdint>
#include <optional>
#include <ostream>
#include <string>
#include <vector>

#include "genomics/bed.h"
#include "genomics/reads.h"
#include "genomics/tokenizer.h"
#include "genomics/window_plan.h"

namespace gm {

struct InspectOptions {
  std::string fasta;
  std::string bed;                   // optional intervals; its split column is honoured
  std::vector<std::string> regions;  // optional regions (used when there is no BED)
  std::string reads;                 // optional BAM/CRAM, decoded with `fasta` as reference
  ReadFilter read_filter;
  int64_t window = 0;  // 0: no window table
  int64_t stride = 0;  // 0: window
  WindowMode mode = WindowMode::Tiled;  // Tiled or Strided
  WindowFilter filter;
  int threads = 0;  // 0: all cores
};

struct ContigReport {
  std::string name;
  int64_t length = 0;
  BaseCounts counts;
};

struct SplitReport {
  Split split = Split::All;
  size_t intervals = 0;
  int64_t bases = 0;  // interval bases
  uint64_t windows = 0;
  uint64_t rejected = 0;
};

struct ReadsReport {
  std::string path;
  bool cram = false;
  ReadStats stats;
};

struct InspectReport {
  std::string fasta;
  bool bgzip = false;
  std::vector<ContigReport> contigs;  // FASTA order
  std::string intervals_source;       // "BED <path>", "regions", "whole contigs"
  std::vector<SplitReport> splits;    // empty without a window length
  std::optional<ReadsReport> reads;
};

// Throws InputError on bad input (see the genomics readers).
InspectReport run_inspect(const InspectOptions& options);

// The readable table written to stdout.
void print_inspect_report(const InspectReport& report, const InspectOptions& options, std::ostream& os);

}  // namespace gm
