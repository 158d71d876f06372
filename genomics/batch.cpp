// Batch buffer management.
#include "genomics/batch.h"

#include <algorithm>

#include "genomics/tokenizer.h"

namespace gm {

void Batch::reset(int new_rows, int new_length) {
  rows = new_rows;
  length = new_length;
  const size_t n = static_cast<size_t>(new_rows) * static_cast<size_t>(new_length);
  tokens.assign(n, token::kPad);
  flags.assign(n, 0);
  info.assign(static_cast<size_t>(new_rows), RowInfo{});
}

void Batch::truncate_rows(int new_rows) {
  rows = std::min(rows, new_rows);
  const size_t n = static_cast<size_t>(rows) * static_cast<size_t>(length);
  tokens.resize(n);
  flags.resize(n);
  info.resize(static_cast<size_t>(rows));
}

}  // namespace gm
