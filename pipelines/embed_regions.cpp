// Region selection and window tiling for embed (see embed_regions.h).
#include "pipelines/embed_regions.h"

#include <algorithm>
#include <stdexcept>

#include "genomics/bed.h"
#include "genomics/errors.h"
#include "genomics/region.h"

namespace gm {

std::vector<EmbedRegion> select_embed_regions(const RegionSelection& selection, const ContigIndex& reference) {
  std::vector<EmbedRegion> out;
  if (!selection.bed_path.empty()) {
    const BedFile bed = read_bed(selection.bed_path);
    if (bed.records.empty()) throw_input_error(bed.path, "no regions (the BED file is empty)");
    const std::vector<Region> checked = bed_regions(bed, reference);
    for (size_t i = 0; i < checked.size(); ++i) {
      const BedRecord& rec = bed.records[i];
      if (rec.beg == rec.end)
        throw_input_error(bed.path, rec.line, "empty interval " + rec.contig + ":" + std::to_string(rec.beg) + "-" +
                                                  std::to_string(rec.end) + " (nothing to embed)");
      out.push_back(EmbedRegion{checked[i].contig_id, checked[i].contig, checked[i].beg, checked[i].end, rec.name,
                                rec.strand});
    }
  }
  for (const auto& text : selection.regions) {
    const Region r = parse_region(text, reference);
    out.push_back(EmbedRegion{r.contig_id, r.contig, r.beg, r.end, text, '.'});
  }
  if (selection.bed_path.empty() && selection.regions.empty()) {
    for (const Region& r : whole_contigs(reference)) {
      if (r.length() == 0) continue;
      out.push_back(EmbedRegion{r.contig_id, r.contig, r.beg, r.end, r.contig, '.'});
    }
    if (out.empty()) throw InputError(reference.label() + ": no contig to embed");
  }
  if (selection.window > 0) {
    const int64_t stride = selection.stride > 0 ? selection.stride : selection.window;
    out = tile_windows(out, selection.window, stride);
  } else if (selection.stride > 0) {
    throw std::invalid_argument("--stride needs --window");
  }
  return out;
}

std::vector<EmbedRegion> tile_windows(const std::vector<EmbedRegion>& regions, int64_t window, int64_t stride) {
  if (window < 1 || stride < 1) throw std::invalid_argument("--window and --stride must be >= 1");
  std::vector<EmbedRegion> out;
  for (const auto& r : regions) {
    for (int64_t s = r.beg; s < r.end; s += stride) {
      EmbedRegion w = r;
      w.beg = s;
      w.end = std::min(s + window, r.end);
      out.push_back(std::move(w));
      if (s + window >= r.end) break;
    }
  }
  return out;
}

}  // namespace gm
