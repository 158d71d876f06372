// ReadReader: sequencing reads from BAM or CRAM through htslib, whole file or by region.
//
// - Filter (ReadFilter): by default secondary, supplementary, duplicate and QC-fail
//   records are dropped and unmapped reads are kept; min_mapq applies to mapped reads.
// - Read::seq is in the orientation the read was sequenced: a reverse-strand record's
//   SEQ is reverse-complemented back. Soft clips are kept (SEQ holds them). A record
//   that passes the filter but has no SEQ ('*') is skipped and counted.
// - CRAM decodes only with the reference given here; htslib is kept off the network
//   (see forbid_network_references). A CRAM without a reference is an InputError.
// - With a reference, the header's contig names/lengths are checked against its index
//   (another assembly, or chr1-vs-1 naming, is an InputError).
// Not thread-safe: one reader per thread.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "genomics/contigs.h"
#include "genomics/region.h"

namespace gm {

class FastaReader;

struct ReadFilter {
  // SAM flag bits that drop a record: secondary 0x100, QC-fail 0x200, duplicate 0x400,
  // supplementary 0x800.
  uint16_t exclude_flags = 0x100 | 0x200 | 0x400 | 0x800;
  int min_mapq = 0;  // mapped reads below this are dropped; unmapped reads are exempt
  bool keep_unmapped = true;
};

struct ReadStats {
  int64_t records = 0;           // records looked at
  int64_t kept = 0;              // returned by next()
  int64_t dropped_flags = 0;     // by exclude_flags
  int64_t dropped_unmapped = 0;  // unmapped while keep_unmapped is off
  int64_t dropped_mapq = 0;      // mapped with MAPQ < min_mapq
  int64_t no_seq = 0;            // passed the filter but had no SEQ: skipped
  int64_t kept_bases = 0;
  void add(const ReadStats& o);
};

struct Read {
  std::string name;
  int tid = -1;         // header contig index, -1 when unplaced
  int64_t pos = -1;     // 0-based leftmost mapped position, -1 when unplaced
  uint16_t flag = 0;
  uint8_t mapq = 0;
  bool reverse = false;  // aligned to the reverse strand (seq has been flipped back)
  std::string seq;       // uppercase IUPAC letters, sequencing orientation
};

class ReadReader {
 public:
  // `reference` may be null for BAM (then no header check); CRAM requires it.
  // `threads` > 1 adds htslib decompression threads.
  ReadReader(const std::string& path, const FastaReader* reference, ReadFilter filter = {}, int threads = 1);
  ~ReadReader();
  ReadReader(const ReadReader&) = delete;
  ReadReader& operator=(const ReadReader&) = delete;

  const std::string& path() const { return path_; }
  bool is_cram() const { return is_cram_; }
  const std::vector<Contig>& header_contigs() const { return header_contigs_; }
  const std::string& header_contig_name(int tid) const;

  // Restricts iteration to reads overlapping `region` (needs a .bai/.csi/.crai index;
  // its absence is an InputError). The contig must be in the header.
  void set_region(const Region& region);
  // Back to the start of the file, all records.
  void set_whole_file();

  // Next read passing the filter; false at the end. Throws InputError on a corrupt
  // or truncated file, or a CRAM that does not decode with the given reference.
  bool next(Read& read);

  const ReadStats& stats() const { return stats_; }
  const ReadFilter& filter() const { return filter_; }

 private:
  struct Handle;
  void open();
  std::vector<Contig> header_as_written() const;
  std::string path_;
  std::string reference_path_;
  bool is_cram_ = false;
  ReadFilter filter_;
  int threads_ = 1;
  std::vector<Contig> header_contigs_;
  ReadStats stats_;
  std::unique_ptr<Handle> h_;
};

}  // namespace gm
