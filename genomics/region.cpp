// Region string parsing and interval checks.
#include "genomics/region.h"

#include "genomics/errors.h"
#include "genomics/text.h"

namespace gm {

std::string Region::to_string() const { return contig + ":" + std::to_string(beg + 1) + "-" + std::to_string(end); }

void check_interval(const ContigIndex& reference, int contig_id, int64_t beg, int64_t end, const std::string& where) {
  const Contig& c = reference[static_cast<size_t>(contig_id)];
  if (beg < 0) throw InputError(where + ": negative start " + std::to_string(beg));
  if (beg > end) {
    throw InputError(where + ": start " + with_commas(beg) + " is after end " + with_commas(end));
  }
  if (end > c.length) {
    throw InputError(where + ": region " + c.name + ":" + std::to_string(beg + 1) + "-" + std::to_string(end) +
                     " ends past the end of " + c.name + " (length " + with_commas(c.length) + ")");
  }
}

Region parse_region(const std::string& text, const ContigIndex& reference) {
  const std::string where = "region '" + text + "'";
  if (text.empty()) throw InputError("empty region string");
  Region r;
  std::string name = text;
  std::string range;
  if (!reference.find(text)) {
    const size_t colon = text.rfind(':');
    if (colon != std::string::npos) {
      name = text.substr(0, colon);
      range = text.substr(colon + 1);
    }
  }
  r.contig_id = reference.require(name, where);
  r.contig = name;
  const int64_t length = reference[static_cast<size_t>(r.contig_id)].length;
  r.beg = 0;
  r.end = length;
  if (!range.empty()) {
    const size_t dash = range.find('-');
    const std::string beg_text = range.substr(0, dash);
    const auto beg1 = parse_int64(beg_text, /*allow_commas=*/true);
    if (!beg1) throw InputError(where + ": bad start '" + beg_text + "' (expected chr:beg-end, 1-based)");
    if (*beg1 < 1) throw InputError(where + ": start must be >= 1 (regions are 1-based)");
    r.beg = *beg1 - 1;
    if (dash != std::string::npos && dash + 1 < range.size()) {
      const std::string end_text = range.substr(dash + 1);
      const auto end1 = parse_int64(end_text, /*allow_commas=*/true);
      if (!end1) throw InputError(where + ": bad end '" + end_text + "' (expected chr:beg-end, 1-based)");
      r.end = *end1;
    }
    if (r.beg >= r.end) {
      if (r.beg >= length) {
        throw InputError(where + ": starts past the end of " + name + " (length " + with_commas(length) + ")");
      }
      throw InputError(where + ": start is after end");
    }
  }
  check_interval(reference, r.contig_id, r.beg, r.end, where);
  return r;
}

std::vector<Region> parse_regions(const std::vector<std::string>& texts, const ContigIndex& reference) {
  std::vector<Region> out;
  out.reserve(texts.size());
  for (const auto& t : texts) out.push_back(parse_region(t, reference));
  return out;
}

std::vector<Region> whole_contigs(const ContigIndex& reference) {
  std::vector<Region> out;
  for (size_t i = 0; i < reference.size(); ++i) {
    out.push_back(Region{static_cast<int>(i), reference[i].name, 0, reference[i].length});
  }
  return out;
}

}  // namespace gm
