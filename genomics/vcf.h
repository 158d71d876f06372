// VcfReader: VCF/BCF records (plain, bgzip or BCF, through VcfSource) decoded into plain
// fields. Iterates records of the whole file or of one region (needs a .tbi/.csi index),
// and exposes the header's contigs with their lengths so they can be checked against the
// reference (check_header_contigs). Positions are 0-based here (VCF POS - 1).
// Not thread-safe: one reader per thread.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "genomics/contigs.h"
#include "genomics/region.h"

struct bcf_hdr_t;

namespace gm {

struct VcfRecord {
  std::string contig;
  int64_t pos = 0;  // 0-based position of REF's first base
  std::string id;   // "." when absent
  std::string ref;
  std::vector<std::string> alts;  // empty when ALT is "."
};

class VcfSource;

class VcfReader {
 public:
  explicit VcfReader(const std::string& path);
  ~VcfReader();
  VcfReader(const VcfReader&) = delete;
  VcfReader& operator=(const VcfReader&) = delete;

  const std::string& path() const { return path_; }
  // ##contig lines in header order; length 0 when the line gives none.
  const std::vector<Contig>& header_contigs() const { return header_contigs_; }

  // Only records overlapping `region`, from its start; the index (.tbi or .csi) must exist.
  void set_region(const Region& region);
  // Every record, from the start of the file again.
  void set_whole_file();

  // Next record; false at the end. Throws InputError on a malformed or truncated file.
  bool next(VcfRecord& record);

  // The htslib view of the header.
  const bcf_hdr_t* header() const;

 private:
  void open();
  std::string path_;
  std::vector<Contig> header_contigs_;
  std::unique_ptr<VcfSource> source_;
};

}  // namespace gm
