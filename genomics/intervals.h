// Intervals a dataset draws from: regions of the reference with a split label.
// They come from a BED (its split column selects train/valid/test) or, without a BED,
// from whole contigs, optionally restricted to a list of contigs/regions (e.g. train
// on "chr20", validate on "chr21").
#pragma once

#include <string>
#include <vector>

#include "genomics/bed.h"
#include "genomics/contigs.h"
#include "genomics/region.h"

namespace gm {

struct Interval {
  Region region;
  Split split = Split::All;
};

// Records of `bed` checked against the reference; with `select` other than All, only
// the records of that split (the BED must then have a split column).
std::vector<Interval> intervals_from_bed(const BedFile& bed, const ContigIndex& reference, Split select = Split::All);

// Region strings (see region.h) labelled `label`; an empty list means every contig.
std::vector<Interval> intervals_from_regions(const std::vector<std::string>& regions, const ContigIndex& reference,
                                             Split label = Split::All);

}  // namespace gm
