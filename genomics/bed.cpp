// BED parsing through htslib's text reader (plain, gzip or bgzip).
#include "genomics/bed.h"

#include <htslib/hts.h>
#include <htslib/kstring.h>

#include <memory>

#include "genomics/errors.h"
#include "genomics/hts_files.h"
#include "genomics/text.h"

namespace gm {
namespace {

// Owns a kstring's buffer so early returns and throws cannot leak it.
struct KString {
  kstring_t s = {0, 0, nullptr};
  ~KString() { free(s.s); }
};

bool is_split_word(std::string_view s) { return s == "train" || s == "valid" || s == "test"; }

bool is_header_line(std::string_view line) {
  return line.empty() || line[0] == '#' || line.rfind("track", 0) == 0 || line.rfind("browser", 0) == 0;
}

}  // namespace

const char* split_name(Split s) {
  switch (s) {
    case Split::Train: return "train";
    case Split::Valid: return "valid";
    case Split::Test: return "test";
    default: return "all";
  }
}

Split parse_split(const std::string& text) {
  if (text == "train") return Split::Train;
  if (text == "valid") return Split::Valid;
  if (text == "test") return Split::Test;
  if (text == "all" || text.empty()) return Split::All;
  throw InputError("unknown split '" + text + "' (expected train, valid, test or all)");
}

BedFile read_bed(const std::string& path) {
  require_readable_file(path, "BED file");
  std::unique_ptr<htsFile, int (*)(htsFile*)> fp(hts_open(path.c_str(), "r"), hts_close);
  if (!fp) throw_input_error(path, "cannot open BED file (unreadable or corrupt)");
  BedFile bed;
  bed.path = path;
  KString holder;
  kstring_t& line = holder.s;
  int64_t line_no = 0;
  bool all_split_words = true;
  int ret;
  while ((ret = hts_getline(fp.get(), '\n', &line)) >= 0) {
    ++line_no;
    std::string_view text(line.s, line.l);
    if (!text.empty() && text.back() == '\r') text.remove_suffix(1);
    if (is_header_line(text)) continue;
    auto fields = split_fields(text, '\t');
    if (fields.size() < 3) {
      // Space-separated BED files exist; accept them when tabs give too few columns.
      fields = split_fields(text, ' ');
      std::erase_if(fields, [](std::string_view f) { return f.empty(); });
    }
    if (fields.size() < 3) {
      throw_input_error(path, line_no,
                        "BED line has " + std::to_string(fields.size()) + " column" + (fields.size() == 1 ? "" : "s") +
                            ", expected at least 3 (contig, start, end)");
    }
    BedRecord r;
    r.line = line_no;
    r.contig = std::string(fields[0]);
    const auto beg = parse_int64(fields[1]);
    const auto end = parse_int64(fields[2]);
    if (!beg || !end || *beg < 0 || *end < 0) {
      throw_input_error(path, line_no,
                        "BED start/end must be non-negative integers, got '" + std::string(fields[1]) + "' and '" +
                            std::string(fields[2]) + "'");
    }
    if (*beg > *end) {
      throw_input_error(path, line_no,
                        "BED start " + with_commas(*beg) + " is after end " + with_commas(*end) +
                            " (BED is 0-based, half-open)");
    }
    r.beg = *beg;
    r.end = *end;
    for (size_t i = 3; i < fields.size(); ++i) r.fields.emplace_back(fields[i]);
    if (!r.fields.empty()) r.name = r.fields[0];
    if (r.fields.size() >= 2) r.score = r.fields[1];
    if (r.fields.size() >= 3 && (r.fields[2] == "+" || r.fields[2] == "-")) r.strand = r.fields[2][0];
    all_split_words = all_split_words && !r.fields.empty() && is_split_word(r.fields[0]);
    bed.records.push_back(std::move(r));
  }
  if (ret < -1) throw_input_error(path, line_no + 1, "read error (truncated or corrupt file)");
  if (all_split_words && !bed.records.empty()) {
    bed.has_split_column = true;
    for (auto& r : bed.records) {
      r.split = parse_split(r.name);
      r.name.clear();
    }
  }
  return bed;
}

std::vector<Region> bed_regions(const BedFile& bed, const ContigIndex& reference) {
  std::vector<Region> out;
  out.reserve(bed.records.size());
  for (const auto& r : bed.records) {
    const std::string where = bed.path + ":" + std::to_string(r.line);
    const int id = reference.require(r.contig, where);
    check_interval(reference, id, r.beg, r.end, where);
    out.push_back(Region{id, r.contig, r.beg, r.end});
  }
  return out;
}

}  // namespace gm
