// The regions `genomamba embed` embeds: from a BED (name and strand columns kept), from
// -r strings, or whole contigs, optionally tiled into windows. Coordinates are 0-based,
// half-open. Every region is validated against the reference here, at the boundary
// (unknown contig with the chr1/1 hint, past the contig end, empty interval), so that
// the engine can trust them.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "genomics/contigs.h"

namespace gm {

struct EmbedRegion {
  int contig_id = -1;
  std::string contig;
  int64_t beg = 0, end = 0;  // 0-based, half-open
  std::string name;
  char strand = '.';         // '+', '-' or '.'; '-' embeds the reverse complement
  int64_t length() const { return end - beg; }
  bool minus() const { return strand == '-'; }
};

struct RegionSelection {
  std::string bed_path;              // -R
  std::vector<std::string> regions;  // -r, 1-based inclusive strings
  int64_t window = 0;                // --window (0: no tiling)
  int64_t stride = 0;                // --stride (0: = window)
};

// BED records (in file order), then -r regions; neither given: every contig. With a
// window, each region is tiled. Throws InputError on a bad region, an empty BED or an
// empty interval (naming file:line or the region text).
std::vector<EmbedRegion> select_embed_regions(const RegionSelection& selection, const ContigIndex& reference);

// Windows [s, min(s + window, end)) for s = beg, beg + stride, ... up to the first
// window that reaches the end; name and strand are inherited.
std::vector<EmbedRegion> tile_windows(const std::vector<EmbedRegion>& regions, int64_t window, int64_t stride);

}  // namespace gm
