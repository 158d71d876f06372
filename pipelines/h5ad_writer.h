// The embedding files `genomamba embed` writes and `genomamba merge` joins.
//
// Pooled layout (an .h5ad that anndata >= 0.8 and h5py read as they are):
//   X                [n_regions, d]  pooled output of the first requested layer
//   obsm/layer_K     [n_regions, d]  every requested layer K (the first one too)
//   obs              region table in anndata's dataframe encoding: index = the region's
//                    number in the unsharded job, chrom (categorical), start, end
//                    (0-based, half-open), name, strand, n_fraction, all_n
//   var              d rows, index "0".."d-1"
//   uns              provenance (see EmbeddingProvenance) and the job's options
// anndata 0.8 passes every top-level key to the AnnData constructor, so nothing else
// sits at the top level.
//
// Per-token layout (h5py): tokens [total_tokens, d] (first requested layer), offsets
// [n_regions + 1] (region i owns rows offsets[i]..offsets[i+1]), token_layers/layer_K
// for each further layer, and the same obs, var and uns groups. Rows of a region follow
// its strand: for a '-' region row 0 is the base at end - 1.
//
// Values are float32 or float16 (IEEE binary16, numpy's float16), chunked by rows
// (~1 MiB), shuffle + gzip. Each method silences HDF5's error printing while it runs
// (h5::QuietErrors); failures are exceptions naming the file.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include <memory>

#include "pipelines/embed_h5.h"
#include "pipelines/h5_chunk_writer.h"

namespace gm {

enum class EmbeddingLayout : uint8_t { Pooled, PerToken };
enum class StoredDtype : uint8_t { F32, F16 };

const char* stored_dtype_name(StoredDtype t);  // "float32" | "float16"
StoredDtype parse_stored_dtype(const std::string& text);
const char* layout_name(EmbeddingLayout l);    // "pooled" | "per_token"

// The obs table: one entry per region, in output order.
struct RegionTable {
  std::vector<std::string> index, chrom, name, strand;
  std::vector<int64_t> start, end;
  std::vector<double> n_fraction;
  std::vector<uint8_t> all_n;

  size_t size() const { return start.size(); }
  void append(const RegionTable& other);
};

struct EmbeddingProvenance {
  std::string version;            // genomamba version
  std::string command;            // the command line as typed
  std::string job_command;        // the command without --shard (identifies the job)
  std::string checkpoint;         // path as resolved
  std::string checkpoint_sha256;
  std::string model_config;       // the checkpoint's config JSON
  std::string reference;          // FASTA path
  std::vector<std::pair<std::string, std::string>> reference_md5;  // contigs used -> MD5
  std::string pool, strand;
  int64_t flank = 0, chunk = 0;
  int64_t shard_index = 0, shard_count = 1;
  int64_t all_n_regions = 0;
};

struct EmbeddingFileSpec {
  EmbeddingLayout layout = EmbeddingLayout::Pooled;
  StoredDtype dtype = StoredDtype::F32;
  std::vector<int> layers;  // residual-stream points, in request order (slot j = layers[j])
  int64_t regions = 0;
  int64_t dim = 0;
  int64_t tokens = 0;       // per-token layout: total rows
  int64_t rows() const { return layout == EmbeddingLayout::Pooled ? regions : tokens; }
};

class EmbeddingFileWriter {
 public:
  // Creates the file and its value datasets (sizes are known up front). Rows of each
  // slot arrive in order; `threads` compress them (<= 0: one per hardware thread).
  EmbeddingFileWriter(const std::string& path, const EmbeddingFileSpec& spec, int threads = 0);
  const EmbeddingFileSpec& spec() const { return spec_; }
  // Rows [row0, row0 + n) of layer slot `slot`, f32 in, converted to the stored dtype.
  void write_rows(size_t slot, int64_t row0, int64_t n, const float* values);
  // The same with values already in the stored dtype (merge copies them unchanged).
  void write_stored_rows(size_t slot, int64_t row0, int64_t n, const void* values);
  // Writes obs, var, uns (and offsets, per-token) and closes the file. `offsets` is
  // ignored for the pooled layout.
  void finish(const RegionTable& obs, const std::vector<int64_t>& offsets, const EmbeddingProvenance& provenance);

 private:
  EmbeddingFileSpec spec_;
  h5::Handle file_, stored_type_;
  std::vector<std::vector<h5::Handle>> targets_;  // per slot: the datasets its rows go to
  std::vector<std::unique_ptr<h5::ParallelChunkWriter>> appenders_;  // per slot, over targets_[slot]
  std::vector<uint16_t> half_scratch_;
};

class EmbeddingFileReader {
 public:
  explicit EmbeddingFileReader(const std::string& path);
  const std::string& path() const { return path_; }
  const EmbeddingFileSpec& spec() const { return spec_; }
  const EmbeddingProvenance& provenance() const { return provenance_; }
  RegionTable regions() const;
  std::vector<int64_t> offsets() const;  // per-token layout only
  size_t stored_size() const;            // bytes per stored value
  void read_stored_rows(size_t slot, int64_t row0, int64_t n, void* out) const;
  std::vector<float> read_rows(size_t slot, int64_t row0, int64_t n) const;

 private:
  std::string path_;
  h5::Handle file_;
  EmbeddingFileSpec spec_;
  EmbeddingProvenance provenance_;
  std::vector<h5::Handle> sources_;  // per slot
};

}  // namespace gm
