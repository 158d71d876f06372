// VcfSource: the records of a VCF/BCF (plain, bgzip or BCF; a file or "-" for stdin)
// as htslib records, either the whole file in order or only the records that overlap a
// list of intervals (through the .tbi/.csi index). `genomamba score` reads its input
// through it; VcfReader (vcf.h) decodes its records into plain fields.
//
// Intervals are sorted and disjoint (for score: normalize_regions, shard_units).
// A record is returned once, for the FIRST interval of the whole list it overlaps, even
// when it overlaps several (a deletion across an interval boundary) and even when that
// interval belongs to another shard: a record never appears in two shards.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "genomics/region.h"

struct bcf_hdr_t;
struct bcf1_t;

namespace gm {

class VcfSource {
 public:
  explicit VcfSource(const std::string& path);
  ~VcfSource();
  VcfSource(const VcfSource&) = delete;
  VcfSource& operator=(const VcfSource&) = delete;

  const std::string& path() const { return path_; }
  bool is_stdin() const { return path_ == "-"; }
  const bcf_hdr_t* header() const;
  // The header records are parsed with; the output header is this one, edited.
  bcf_hdr_t* mutable_header();
  // Loads the index (.tbi/.csi beside the file) when there is one; false for stdin.
  bool has_index();
  // Records in the whole file according to the index, or -1 when unknown.
  int64_t indexed_record_count();

  // From now on return only records overlapping intervals [first, last) of `intervals`
  // (contig names as in the VCF). Throws InputError, naming the file and saying how to
  // make one, when there is no index.
  void select(std::vector<Region> intervals, size_t first, size_t last);

  // The next record (valid until the next call), or nullptr at the end. Throws InputError
  // naming the file and the record number on a malformed record.
  bcf1_t* next();
  // 1-based number of the last record returned, for messages.
  int64_t record_number() const { return records_; }

 private:
  struct Handle;
  bool start_interval(size_t i);
  bool first_overlap(const bcf1_t* rec, size_t i) const;

  std::string path_;
  std::unique_ptr<Handle> h_;
  std::vector<Region> intervals_;
  size_t current_ = 0, last_ = 0;
  bool selected_ = false;
  int64_t records_ = 0;
};

}  // namespace gm
