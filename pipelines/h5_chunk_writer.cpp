// Parallel chunk compression for row-chunked HDF5 matrices (see h5_chunk_writer.h).
#include "pipelines/h5_chunk_writer.h"

#include <zlib.h>

#include <algorithm>
#include <cstring>
#include <stdexcept>
#include <string>
#include <thread>

#include "pipelines/embed_h5.h"

namespace gm::h5 {

namespace {

[[noreturn]] void fail(hid_t dataset, const std::string& what) {
  throw std::runtime_error("HDF5: " + what + " (" + describe(dataset) + ")");
}

// HDF5's shuffle filter: byte j of element i goes to j * n + i.
void shuffle_bytes(const uint8_t* in, size_t n_elements, size_t elem_size, uint8_t* out) {
  for (size_t i = 0; i < n_elements; ++i)
    for (size_t j = 0; j < elem_size; ++j) out[j * n_elements + i] = in[i * elem_size + j];
}

}  // namespace

ParallelChunkWriter::ParallelChunkWriter(std::vector<hid_t> datasets, int threads) : datasets_(std::move(datasets)) {
  if (datasets_.empty()) throw std::invalid_argument("ParallelChunkWriter: no dataset");
  threads_ = threads > 0 ? threads : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  const hid_t d0 = datasets_.front();
  const std::vector<int64_t> shape = dataset_shape(d0);
  rows_ = shape[0];
  cols_ = shape[1];
  mem_type_ = H5Dget_type(d0);
  if (mem_type_ < 0) fail(d0, "cannot read the type");
  elem_size_ = H5Tget_size(mem_type_);

  // Direct chunk writes only for the pipeline this writer reproduces: chunks of whole
  // rows, shuffle then deflate.
  const hid_t dcpl = H5Dget_create_plist(d0);
  if (dcpl >= 0 && H5Pget_layout(dcpl) == H5D_CHUNKED) {
    hsize_t chunk[2] = {0, 0};
    const bool whole_rows = H5Pget_chunk(dcpl, 2, chunk) == 2 && static_cast<int64_t>(chunk[1]) == cols_ && chunk[0] > 0;
    bool filters_ok = H5Pget_nfilters(dcpl) == 2;
    for (unsigned f = 0; filters_ok && f < 2; ++f) {
      unsigned flags = 0, cd[8] = {0};
      size_t n_cd = 8;
      const H5Z_filter_t id = H5Pget_filter2(dcpl, f, &flags, &n_cd, cd, 0, nullptr, nullptr);
      if (f == 0) filters_ok = id == H5Z_FILTER_SHUFFLE;
      if (f == 1) {
        filters_ok = id == H5Z_FILTER_DEFLATE && n_cd >= 1;
        if (filters_ok) deflate_level_ = static_cast<int>(cd[0]);
      }
    }
    direct_ = whole_rows && filters_ok;
    chunk_rows_ = static_cast<int64_t>(chunk[0]);
  }
  if (dcpl >= 0) H5Pclose(dcpl);
}

ParallelChunkWriter::~ParallelChunkWriter() {
  if (mem_type_ >= 0) H5Tclose(mem_type_);
}

void ParallelChunkWriter::append(int64_t row0, int64_t n, const void* data) {
  if (n <= 0) return;
  if (row0 != appended_ || row0 + n > rows_)
    fail(datasets_.front(), "rows [" + std::to_string(row0) + ", " + std::to_string(row0 + n) +
                                ") are not the next rows (" + std::to_string(appended_) + " of " +
                                std::to_string(rows_) + " written)");
  if (!direct_) {
    for (hid_t d : datasets_) write_rows(d, row0, n, data, mem_type_);
    appended_ += n;
    return;
  }
  const size_t row_bytes = static_cast<size_t>(cols_) * elem_size_;
  const auto* bytes = static_cast<const uint8_t*>(data);
  // Whole chunks straight from the caller's rows when nothing is pending.
  int64_t used = 0;
  if (pending_.empty() && row0 % chunk_rows_ == 0 && n >= chunk_rows_) {
    const int64_t chunks = n / chunk_rows_;
    write_chunks(bytes, row0 / chunk_rows_, chunks);
    used = chunks * chunk_rows_;
    written_rows_ = row0 + used;
  }
  pending_.insert(pending_.end(), bytes + static_cast<size_t>(used) * row_bytes, bytes + static_cast<size_t>(n) * row_bytes);
  appended_ = row0 + n;
  write_full_chunks();
}

void ParallelChunkWriter::write_full_chunks() {
  const size_t row_bytes = static_cast<size_t>(cols_) * elem_size_;
  const int64_t pending_rows = appended_ - written_rows_;
  const int64_t chunks = pending_rows / chunk_rows_;
  if (chunks == 0) return;
  write_chunks(pending_.data(), written_rows_ / chunk_rows_, chunks);
  const size_t done = static_cast<size_t>(chunks * chunk_rows_) * row_bytes;
  pending_.erase(pending_.begin(), pending_.begin() + static_cast<std::ptrdiff_t>(done));
  written_rows_ += chunks * chunk_rows_;
}

void ParallelChunkWriter::finish() {
  if (appended_ != rows_)
    fail(datasets_.front(), std::to_string(appended_) + " of " + std::to_string(rows_) + " rows written");
  if (!direct_ || written_rows_ == rows_) return;
  // The edge chunk, padded to a whole chunk.
  const size_t chunk_bytes = static_cast<size_t>(chunk_rows_ * cols_) * elem_size_;
  pending_.resize(chunk_bytes, 0);
  write_chunks(pending_.data(), written_rows_ / chunk_rows_, 1);
  pending_.clear();
  written_rows_ = rows_;
}

void ParallelChunkWriter::write_chunks(const uint8_t* data, int64_t first_chunk, int64_t count) {
  const size_t n_elements = static_cast<size_t>(chunk_rows_ * cols_);
  const size_t chunk_bytes = n_elements * elem_size_;
  const uLong bound = compressBound(static_cast<uLong>(chunk_bytes));
  // Batches of at most 4 chunks per thread bound the memory held in compressed chunks.
  const int64_t batch = std::max<int64_t>(1, 4 * static_cast<int64_t>(threads_));
  std::vector<std::vector<uint8_t>> out(static_cast<size_t>(std::min(batch, count)));
  for (int64_t b0 = 0; b0 < count; b0 += batch) {
    const int64_t nb = std::min(batch, count - b0);
    std::vector<uLongf> sizes(static_cast<size_t>(nb), 0);
    std::vector<int> status(static_cast<size_t>(nb), Z_OK);
#pragma omp parallel for num_threads(threads_) schedule(dynamic, 1)
    for (int64_t i = 0; i < nb; ++i) {
      std::vector<uint8_t> shuffled(chunk_bytes);
      shuffle_bytes(data + static_cast<size_t>(b0 + i) * chunk_bytes, n_elements, elem_size_, shuffled.data());
      std::vector<uint8_t>& dst = out[static_cast<size_t>(i)];
      dst.resize(bound);
      uLongf size = bound;
      status[static_cast<size_t>(i)] =
          compress2(dst.data(), &size, shuffled.data(), static_cast<uLong>(chunk_bytes), deflate_level_);
      sizes[static_cast<size_t>(i)] = size;
    }
    for (int64_t i = 0; i < nb; ++i) {
      if (status[static_cast<size_t>(i)] != Z_OK) fail(datasets_.front(), "zlib could not compress a chunk");
      const hsize_t offset[2] = {static_cast<hsize_t>((first_chunk + b0 + i) * chunk_rows_), 0};
      for (hid_t d : datasets_)
        if (H5Dwrite_chunk(d, H5P_DEFAULT, 0, offset, sizes[static_cast<size_t>(i)], out[static_cast<size_t>(i)].data()) < 0)
          fail(d, "cannot write a chunk");
    }
  }
}

}  // namespace gm::h5
