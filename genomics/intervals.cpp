// Building dataset intervals from BED files and region lists.
#include "genomics/intervals.h"

#include "genomics/errors.h"

namespace gm {

std::vector<Interval> intervals_from_bed(const BedFile& bed, const ContigIndex& reference, Split select) {
  if (select != Split::All && !bed.has_split_column) {
    throw_input_error(bed.path, std::string("has no split column (4th column train|valid|test), so split '") +
                                    split_name(select) + "' cannot be selected");
  }
  const std::vector<Region> regions = bed_regions(bed, reference);
  std::vector<Interval> out;
  for (size_t i = 0; i < regions.size(); ++i) {
    const Split s = bed.records[i].split;
    if (select == Split::All || s == select) out.push_back(Interval{regions[i], s});
  }
  return out;
}

std::vector<Interval> intervals_from_regions(const std::vector<std::string>& regions, const ContigIndex& reference,
                                             Split label) {
  const std::vector<Region> parsed = regions.empty() ? whole_contigs(reference) : parse_regions(regions, reference);
  std::vector<Interval> out;
  out.reserve(parsed.size());
  for (const auto& r : parsed) out.push_back(Interval{r, label});
  return out;
}

}  // namespace gm
