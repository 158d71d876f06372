// PackedReadDataset: sequencing reads from a BAM/CRAM packed back to back into rows
// of a fixed length. Each read's first base carries kFlagDocStart so that a model
// resets its state between reads; position 0 of every row is a document start too
// (rows are independent). A read that does not fit in the rest of a row continues
// at the start of the next row. Only the end of a finite stream leaves [PAD].
// Reads come in file order (whole file, or the given regions in order), filtered as
// ReadReader does; with repeat on, the stream starts over after the last read.
// The cursor is (epoch, region, reads taken in the region, offset in the current
// read); restoring re-reads the region up to that read (no random access needed).
// Owns its reader: use from one thread at a time (PrefetchLoader does).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "genomics/batch.h"
#include "genomics/fasta.h"
#include "genomics/reads.h"

namespace gm {

struct PackedReadOptions {
  int rows = 1;
  int64_t length = 0;
  ReadFilter filter;
  std::vector<std::string> regions;  // empty: the whole file (unmapped reads included)
  bool repeat = true;
  int threads = 1;  // htslib decompression threads
};

class PackedReadDataset : public BatchSource {
 public:
  // `reference_path` may be empty for BAM; CRAM needs it.
  PackedReadDataset(const std::string& reads_path, const std::string& reference_path, PackedReadOptions options);
  ~PackedReadDataset() override;

  bool next(Batch& batch) override;
  std::string save_cursor() const override;
  void restore_cursor(const std::string& cursor) override;

  const ReadStats& stats() const { return reader_->stats(); }

 private:
  bool take_read();  // makes `read_` the next read; false at the end of the stream
  void start_region(size_t region);
  std::string config_tag() const;

  std::string path_;
  PackedReadOptions options_;
  std::unique_ptr<FastaReader> reference_;
  std::vector<Region> regions_;
  std::unique_ptr<ReadReader> reader_;
  Read read_;
  int64_t read_offset_ = 0;  // bases of read_ already packed
  bool have_read_ = false;
  bool exhausted_ = false;
  // Cursor.
  uint64_t epoch_ = 0;
  size_t region_ = 0;
  uint64_t taken_in_region_ = 0;
};

}  // namespace gm
