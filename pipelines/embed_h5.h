// A thin RAII layer over the HDF5 C API, just what the embedding files need: files,
// groups, variable-length UTF-8 strings (what h5py reads as str), numeric and boolean
// arrays (booleans as h5py's enum {FALSE, TRUE}), IEEE binary16 (numpy float16), and
// row-chunked matrices compressed with shuffle + gzip.
//
// Conventions
// - Every failure throws std::runtime_error naming the file and the object; HDF5's own
//   error-stack printing is switched off while a QuietErrors guard is alive.
// - Matrices are [rows, cols] row-major; chunks hold whole rows, about 1 MiB each.
// - Empty datasets (0 rows) are stored contiguous: HDF5 chunks cannot be empty.
#pragma once

#include <hdf5.h>

#include <cstdint>
#include <string>
#include <vector>

namespace gm::h5 {

// Owns one HDF5 identifier (file, group, dataset, dataspace, type, property list).
class Handle {
 public:
  Handle() = default;
  explicit Handle(hid_t id) : id_(id) {}
  ~Handle() { reset(); }
  Handle(Handle&& o) noexcept : id_(o.id_) { o.id_ = H5I_INVALID_HID; }
  Handle& operator=(Handle&& o) noexcept {
    if (this != &o) {
      reset();
      id_ = o.id_;
      o.id_ = H5I_INVALID_HID;
    }
    return *this;
  }
  Handle(const Handle&) = delete;
  Handle& operator=(const Handle&) = delete;
  hid_t get() const { return id_; }
  operator hid_t() const { return id_; }
  bool valid() const { return id_ >= 0; }
  void reset();
  // Gives up ownership (the caller closes it, e.g. to check H5Fclose's status).
  hid_t release() {
    const hid_t id = id_;
    id_ = H5I_INVALID_HID;
    return id;
  }

 private:
  hid_t id_ = H5I_INVALID_HID;
};

// Turns off HDF5's automatic error printing (our exceptions say what failed) and
// restores the previous handler when destroyed.
class QuietErrors {
 public:
  QuietErrors();
  ~QuietErrors();
  QuietErrors(const QuietErrors&) = delete;
  QuietErrors& operator=(const QuietErrors&) = delete;

 private:
  H5E_auto2_t func_ = nullptr;
  void* data_ = nullptr;
};

// "file.h5:/obs/start" for messages.
std::string describe(hid_t object);

Handle create_file(const std::string& path);  // truncates
Handle open_file(const std::string& path);    // read-only
Handle create_group(hid_t parent, const std::string& name);
Handle open_group(hid_t parent, const std::string& name);
Handle open_dataset(hid_t parent, const std::string& name);
bool exists(hid_t parent, const std::string& name);

// ---- types ----
Handle string_type();  // variable-length UTF-8
Handle bool_type();    // enum int8 {FALSE = 0, TRUE = 1}, as h5py
Handle half_type();    // IEEE binary16 little endian, as numpy float16
uint16_t float_to_half(float f);  // round to nearest even; overflow -> inf; NaN stays NaN
float half_to_float(uint16_t h);

// ---- attributes ----
void set_attr(hid_t object, const std::string& name, const std::string& value);
void set_attr(hid_t object, const std::string& name, const std::vector<std::string>& values);
void set_attr(hid_t object, const std::string& name, bool value);
void set_attr(hid_t object, const std::string& name, int64_t value);
std::string get_string_attr(hid_t object, const std::string& name);
int64_t get_int_attr(hid_t object, const std::string& name);
bool has_attr(hid_t object, const std::string& name);

// ---- 1-D and scalar datasets (numeric arrays chunked + compressed when non-empty) ----
Handle write_string(hid_t parent, const std::string& name, const std::string& value);
Handle write_strings(hid_t parent, const std::string& name, const std::vector<std::string>& values);
Handle write_int64(hid_t parent, const std::string& name, int64_t value);
Handle write_array(hid_t parent, const std::string& name, const std::vector<int64_t>& values);
Handle write_array(hid_t parent, const std::string& name, const std::vector<int32_t>& values);
Handle write_array(hid_t parent, const std::string& name, const std::vector<int16_t>& values);
Handle write_array(hid_t parent, const std::string& name, const std::vector<int8_t>& values);
Handle write_array(hid_t parent, const std::string& name, const std::vector<double>& values);
Handle write_bools(hid_t parent, const std::string& name, const std::vector<uint8_t>& values);

std::string read_string(hid_t parent, const std::string& name);
std::vector<std::string> read_strings(hid_t parent, const std::string& name);
int64_t read_int64(hid_t parent, const std::string& name);
// Any integer array, converted to int64.
std::vector<int64_t> read_int_array(hid_t parent, const std::string& name);
std::vector<double> read_double_array(hid_t parent, const std::string& name);
std::vector<uint8_t> read_bools(hid_t parent, const std::string& name);

// ---- row-chunked matrices ----
// Creates [rows, cols] of `file_type` (a float type), chunked by whole rows (~1 MiB),
// shuffle + gzip.
Handle create_matrix(hid_t parent, const std::string& name, int64_t rows, int64_t cols, hid_t file_type);
// Rows [row0, row0 + n) from / into `data` of memory type `mem_type` (row-major, cols wide).
void write_rows(hid_t dataset, int64_t row0, int64_t n, const void* data, hid_t mem_type);
void read_rows(hid_t dataset, int64_t row0, int64_t n, void* data, hid_t mem_type);
// {rows, cols} of a 2-D dataset.
std::vector<int64_t> dataset_shape(hid_t dataset);

}  // namespace gm::h5
