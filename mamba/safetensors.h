// safetensors files (https://huggingface.co/docs/safetensors): write atomically,
// read with full validation.
//
// Layout: 8-byte little-endian header length n, n bytes of JSON header (padded with
// spaces to a multiple of 8), then the tensor bytes. The header maps each tensor
// name to {"dtype", "shape", "data_offsets": [begin, end]} (offsets relative to the
// start of the data, little-endian row-major data) plus an optional "__metadata__"
// object of string -> string.
//
// Conventions
// - write_safetensors writes to a temporary name in the same directory, fsyncs,
//   renames over the final name and fsyncs the directory: a reader never sees a
//   partial file under the final name.
// - SafetensorsFile::open rejects anything inconsistent (header length past the end
//   of the file, offsets out of range, overlapping or missing bytes, size not equal to
//   numel * dtype size), so a file cut short by a crash is never loaded. Errors are
//   std::runtime_error messages that start with the file name.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace gm {

using StringMap = std::map<std::string, std::string>;

// Bytes per element of a safetensors dtype name ("F32", "BF16", ...); 0 when unknown.
size_t safetensors_dtype_size(const std::string& dtype);

struct SafetensorsTensorRef {
  std::string name;
  std::string dtype;  // "F32", ...
  std::vector<int64_t> shape;
  const void* data = nullptr;  // numel * dtype size bytes, kept alive by the caller
};

void write_safetensors(const std::string& path, const std::vector<SafetensorsTensorRef>& tensors,
                       const StringMap& metadata);

// Writes bytes to path through a temporary file + fsync + rename (+ directory fsync).
void write_file_atomic(const std::string& path, const std::vector<std::pair<const void*, size_t>>& pieces);

class SafetensorsFile {
 public:
  struct Entry {
    std::string dtype;
    std::vector<int64_t> shape;
    size_t begin = 0, end = 0;  // byte offsets into the data section
    int64_t numel() const;
  };

  // Reads and validates the whole file.
  static SafetensorsFile open(const std::string& path);
  // Validates an in-memory image (used by open; `name` is used in messages).
  static SafetensorsFile parse(std::vector<uint8_t> bytes, const std::string& name);

  const std::string& path() const { return path_; }
  const StringMap& metadata() const { return metadata_; }
  // Metadata value; throws naming the file when absent.
  const std::string& meta(const std::string& key) const;
  std::vector<std::string> names() const;  // in file order of data_offsets
  bool has(const std::string& name) const { return entries_.count(name) != 0; }
  const Entry& entry(const std::string& name) const;  // throws naming the file when absent

  // The tensor converted to f32 (F32, F64, F16 and BF16 accepted). When
  // expected_shape is non-empty it must match; the error names file, tensor and shapes.
  std::vector<float> read_f32(const std::string& name, const std::vector<int64_t>& expected_shape = {}) const;
  // Raw bytes of a tensor.
  const uint8_t* raw(const std::string& name) const;

 private:
  std::string path_;
  std::vector<uint8_t> bytes_;
  size_t data_start_ = 0;
  StringMap metadata_;
  std::map<std::string, Entry> entries_;
};

std::string shape_string(const std::vector<int64_t>& shape);  // "[2, 3]"

}  // namespace gm
