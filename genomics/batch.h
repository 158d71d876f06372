// Batch: what every dataset produces. tokens and flags are row-major [rows, length]
// uint8 arrays (token ids and flag bits of tokenizer.h). info[r] says where row r
// came from. Position 0 of every row is a document start (kFlagDocStart), so a model
// may take flags' bit 1 directly as its state-reset mask.
//
// BatchSource: a deterministic stream of batches whose position (cursor) can be saved
// to a string and restored, so a resumed run continues with exactly the next batch.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "genomics/bed.h"

namespace gm {

struct RowInfo {
  std::string contig;   // "*" for rows of packed reads
  int64_t start = -1;   // 0-based contig coordinates of the sequence in the row, [start, end)
  int64_t end = -1;
  char strand = '+';    // '-' when the row was reverse-complemented; '.' for packed reads
  Split split = Split::All;
  int32_t offset = 0;   // row position of the first sequence token (after left padding)
};

struct Batch {
  int rows = 0;
  int length = 0;
  std::vector<uint8_t> tokens;  // [rows, length]
  std::vector<uint8_t> flags;   // [rows, length]
  std::vector<RowInfo> info;    // [rows]

  // Sets the shape (keeping the buffers' capacity) and fills tokens with [PAD], flags with 0.
  void reset(int rows, int length);
  // Drops rows beyond `rows` (a short final batch).
  void truncate_rows(int rows);
  uint8_t* row_tokens(int r) { return tokens.data() + static_cast<size_t>(r) * static_cast<size_t>(length); }
  uint8_t* row_flags(int r) { return flags.data() + static_cast<size_t>(r) * static_cast<size_t>(length); }
  const uint8_t* row_tokens(int r) const { return tokens.data() + static_cast<size_t>(r) * static_cast<size_t>(length); }
  const uint8_t* row_flags(int r) const { return flags.data() + static_cast<size_t>(r) * static_cast<size_t>(length); }
};

class BatchSource {
 public:
  virtual ~BatchSource() = default;
  // Fills `batch`; false when a finite source is exhausted (batch then has 0 rows).
  // A short final batch (fewer rows) is possible for finite sources.
  virtual bool next(Batch& batch) = 0;
  // Position after the last batch produced; restore_cursor(save_cursor()) makes the
  // source produce the same next batch again. Cursors are plain text.
  virtual std::string save_cursor() const = 0;
  // Throws InputError when the cursor is malformed or belongs to another configuration.
  virtual void restore_cursor(const std::string& cursor) = 0;
};

}  // namespace gm
