// Appending rows to row-chunked HDF5 matrices with the chunks compressed on several threads.
//
// HDF5 runs its filter pipeline (shuffle, gzip) on the calling thread only: writing the
// float32 embeddings of a million short regions (1 GB at d = 256) then takes one core
// longer than the GPU takes to compute them. This writer applies the datasets' own
// filters itself (byte shuffle, then deflate in zlib format, as HDF5's shuffle and
// deflate filters do) to whole chunks on several threads and stores each compressed
// chunk with H5Dwrite_chunk, so the files are what HDF5 would have written: readers see
// ordinary shuffle + gzip chunks.
//
// Conventions
// - The datasets given to one writer have the same shape [rows, cols], element size and
//   chunking (whole rows: the layout h5::create_matrix makes); each receives the same
//   values (e.g. X and obsm/layer_K of an .h5ad), compressed once.
// - Rows arrive in order: append(row0, ...) needs row0 == the rows appended so far. A
//   partial chunk waits in memory until it is complete or finish() pads it with zeros
//   (HDF5 stores edge chunks whole; readers only see the dataset's extent).
// - Datasets whose filters are not exactly [shuffle, deflate] (or that are not chunked
//   by whole rows) are written through H5Dwrite instead, with the same results.
#pragma once

#include <hdf5.h>

#include <cstdint>
#include <vector>

namespace gm::h5 {

class ParallelChunkWriter {
 public:
  // threads <= 0: one per hardware thread.
  ParallelChunkWriter(std::vector<hid_t> datasets, int threads);
  ~ParallelChunkWriter();
  ParallelChunkWriter(const ParallelChunkWriter&) = delete;
  ParallelChunkWriter& operator=(const ParallelChunkWriter&) = delete;
  // Rows [row0, row0 + n) in the datasets' stored type: n * cols elements.
  void append(int64_t row0, int64_t n, const void* data);
  // Writes the buffered rows; every row must have been appended.
  void finish();

 private:
  void write_full_chunks();
  void write_chunks(const uint8_t* data, int64_t first_chunk, int64_t count);

  std::vector<hid_t> datasets_;
  int threads_ = 1;
  bool direct_ = false;  // chunks written by H5Dwrite_chunk (else H5Dwrite)
  hid_t mem_type_ = -1;  // the datasets' type (H5Dwrite fallback)
  int64_t rows_ = 0, cols_ = 0, chunk_rows_ = 0;
  size_t elem_size_ = 0;
  int deflate_level_ = 0;
  int64_t appended_ = 0;      // rows given to append()
  int64_t written_rows_ = 0;  // rows already stored (a multiple of chunk_rows_ until finish)
  std::vector<uint8_t> pending_;  // rows [written_rows_, appended_)
};

}  // namespace gm::h5
