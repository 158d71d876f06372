// FastaReader: random access to a plain or bgzip-compressed FASTA through htslib's
// faidx. Coordinates are 0-based, half-open. Sequences come back as stored (case
// kept: lowercase = soft-masked); tokenizing is the caller's business.
//
// Opening checks the file up front: missing, empty, not FASTA, plain gzip (cannot be
// indexed: the message says to run bgzip), truncated bgzip (no EOF marker). A
// missing index (.fai, and .gzi for bgzip) is built when the directory is writable,
// under a temporary name renamed into place, so concurrent jobs never read a
// half-written index; otherwise the error says how to build one.
//
// A faidx handle is not thread-safe: use one FastaReader per thread (opening one is
// cheap once the index exists).
#pragma once

#include <cstdint>
#include <cstdlib>
#include <memory>
#include <string>
#include <string_view>

#include "genomics/contigs.h"
#include "genomics/region.h"

namespace gm {

// A sequence as returned by htslib (malloc'd); moved, never copied.
class FetchedSequence {
 public:
  FetchedSequence() = default;
  FetchedSequence(char* data, int64_t size) : data_(data, &std::free), size_(size) {}
  std::string_view view() const { return {data_.get(), static_cast<size_t>(size_)}; }
  int64_t size() const { return size_; }

 private:
  std::unique_ptr<char, void (*)(void*)> data_{nullptr, &std::free};
  int64_t size_ = 0;
};

class FastaReader {
 public:
  explicit FastaReader(const std::string& path);
  ~FastaReader();
  FastaReader(FastaReader&&) noexcept;
  FastaReader& operator=(FastaReader&&) noexcept;
  FastaReader(const FastaReader&) = delete;
  FastaReader& operator=(const FastaReader&) = delete;

  const std::string& path() const { return path_; }
  bool bgzip_compressed() const { return compressed_; }
  const ContigIndex& contigs() const { return contigs_; }

  // [beg, end) of a contig; must lie inside it (throws InputError otherwise, and on a
  // read error such as a file truncated after indexing).
  FetchedSequence fetch(int contig_id, int64_t beg, int64_t end) const;
  std::string fetch_string(const Region& region) const;

  // MD5 (lowercase hex) of the contig's sequence uppercased, as in SAM @SQ M5.
  std::string md5(int contig_id) const;

 private:
  struct Handle;
  std::string path_;
  bool compressed_ = false;
  ContigIndex contigs_;
  std::unique_ptr<Handle> handle_;
};

}  // namespace gm
