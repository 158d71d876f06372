// HDF5 helpers for the embedding files (see embed_h5.h).
#include "pipelines/embed_h5.h"

#include <algorithm>
#include <cstring>
#include <stdexcept>

namespace gm::h5 {

namespace {

constexpr int64_t kChunkBytes = 1 << 20;
constexpr unsigned kGzipLevel = 4;  // h5py's default level: most of the gain, little of the cost

std::string name_of(hid_t object) {
  if (object < 0) return "?";
  char file[4096] = {0}, path[4096] = {0};
  H5Fget_name(object, file, sizeof file);
  H5Iget_name(object, path, sizeof path);
  return std::string(file) + ":" + path;
}

std::string child(hid_t parent, const std::string& name) {
  std::string p = name_of(parent);
  if (!p.empty() && p.back() != '/') p += "/";
  return p + name;
}

[[noreturn]] void fail(const std::string& what) { throw std::runtime_error("HDF5: " + what); }

hid_t check_id(hid_t id, const std::string& what) {
  if (id < 0) fail(what);
  return id;
}

void check_ok(herr_t status, const std::string& what) {
  if (status < 0) fail(what);
}

Handle scalar_space() { return Handle(check_id(H5Screate(H5S_SCALAR), "cannot create a dataspace")); }

Handle simple_space(std::initializer_list<hsize_t> dims) {
  const std::vector<hsize_t> d(dims);
  return Handle(check_id(H5Screate_simple(static_cast<int>(d.size()), d.data(), nullptr), "cannot create a dataspace"));
}

// Chunked (whole rows, ~1 MiB) + shuffle + gzip creation properties; default for empty data.
Handle matrix_dcpl(int64_t rows, int64_t cols, size_t elem_size) {
  Handle dcpl(check_id(H5Pcreate(H5P_DATASET_CREATE), "cannot create a property list"));
  if (rows > 0 && cols > 0) {
    const int64_t row_bytes = cols * static_cast<int64_t>(elem_size);
    const int64_t chunk_rows = std::clamp<int64_t>(kChunkBytes / std::max<int64_t>(row_bytes, 1), 1, rows);
    const hsize_t chunk[2] = {static_cast<hsize_t>(chunk_rows), static_cast<hsize_t>(cols)};
    check_ok(H5Pset_chunk(dcpl, 2, chunk), "cannot set chunking");
    check_ok(H5Pset_shuffle(dcpl), "cannot enable the shuffle filter");
    check_ok(H5Pset_deflate(dcpl, kGzipLevel), "cannot enable gzip (zlib filter missing?)");
  }
  return dcpl;
}

Handle vector_dcpl(int64_t n, size_t elem_size) {
  Handle dcpl(check_id(H5Pcreate(H5P_DATASET_CREATE), "cannot create a property list"));
  if (n > 0) {
    const hsize_t chunk = static_cast<hsize_t>(std::clamp<int64_t>(kChunkBytes / static_cast<int64_t>(elem_size), 1, n));
    check_ok(H5Pset_chunk(dcpl, 1, &chunk), "cannot set chunking");
    check_ok(H5Pset_shuffle(dcpl), "cannot enable the shuffle filter");
    check_ok(H5Pset_deflate(dcpl, kGzipLevel), "cannot enable gzip (zlib filter missing?)");
  }
  return dcpl;
}

// A chunk cache large enough for a few chunks, so that appending rows block by block
// does not re-inflate the chunk shared by two blocks.
Handle matrix_dapl() {
  Handle dapl(check_id(H5Pcreate(H5P_DATASET_ACCESS), "cannot create a property list"));
  check_ok(H5Pset_chunk_cache(dapl, 521, 8 * kChunkBytes, 1.0), "cannot size the chunk cache");
  return dapl;
}

template <class T>
Handle write_numeric(hid_t parent, const std::string& name, const std::vector<T>& values, hid_t mem_type,
                     hid_t file_type) {
  const auto n = static_cast<hsize_t>(values.size());
  Handle space = simple_space({n});
  Handle dcpl = vector_dcpl(static_cast<int64_t>(n), sizeof(T));
  Handle ds(check_id(H5Dcreate2(parent, name.c_str(), file_type, space, H5P_DEFAULT, dcpl, H5P_DEFAULT),
                  "cannot create dataset " + child(parent, name)));
  if (n > 0) check_ok(H5Dwrite(ds, mem_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, values.data()), "cannot write " + child(parent, name));
  return ds;
}

int64_t element_count(hid_t dataset) {
  Handle space(check_id(H5Dget_space(dataset), "cannot read the shape of " + name_of(dataset)));
  const hssize_t n = H5Sget_simple_extent_npoints(space);
  if (n < 0) fail("cannot read the shape of " + name_of(dataset));
  return static_cast<int64_t>(n);
}

template <class T>
std::vector<T> read_numeric(hid_t parent, const std::string& name, hid_t mem_type) {
  Handle ds = open_dataset(parent, name);
  std::vector<T> out(static_cast<size_t>(element_count(ds)));
  if (!out.empty())
    check_ok(H5Dread(ds, mem_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, out.data()), "cannot read " + name_of(ds));
  return out;
}

void require_vlen_string(hid_t type, const std::string& what) {
  if (H5Tget_class(type) != H5T_STRING || H5Tis_variable_str(type) <= 0)
    fail(what + " is not a variable-length string");
}

}  // namespace

void Handle::reset() {
  if (id_ < 0) return;
  switch (H5Iget_type(id_)) {
    case H5I_FILE: H5Fclose(id_); break;
    case H5I_GROUP: H5Gclose(id_); break;
    case H5I_DATASET: H5Dclose(id_); break;
    case H5I_DATASPACE: H5Sclose(id_); break;
    case H5I_DATATYPE: H5Tclose(id_); break;
    case H5I_GENPROP_LST: H5Pclose(id_); break;
    case H5I_ATTR: H5Aclose(id_); break;
    default: break;
  }
  id_ = H5I_INVALID_HID;
}

QuietErrors::QuietErrors() {
  H5Eget_auto2(H5E_DEFAULT, &func_, &data_);
  H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);
}

QuietErrors::~QuietErrors() { H5Eset_auto2(H5E_DEFAULT, func_, data_); }

std::string describe(hid_t object) { return name_of(object); }

namespace {

// Cluster file systems (NFS, Lustre) often refuse the file locks HDF5 takes by default;
// locking then is skipped instead of failing the job.
Handle file_access() {
  Handle fapl(check_id(H5Pcreate(H5P_FILE_ACCESS), "cannot create a property list"));
#if H5_VERSION_GE(1, 10, 7)
  check_ok(H5Pset_file_locking(fapl, true, true), "cannot set file locking");
#endif
  return fapl;
}

}  // namespace

Handle create_file(const std::string& path) {
  Handle fapl = file_access();
  return Handle(check_id(H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, fapl), "cannot create '" + path + "'"));
}

Handle open_file(const std::string& path) {
  if (H5Fis_hdf5(path.c_str()) <= 0) fail("'" + path + "' is missing or not an HDF5 file");
  Handle fapl = file_access();
  return Handle(check_id(H5Fopen(path.c_str(), H5F_ACC_RDONLY, fapl), "cannot open '" + path + "'"));
}

Handle create_group(hid_t parent, const std::string& name) {
  return Handle(check_id(H5Gcreate2(parent, name.c_str(), H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT),
                      "cannot create group " + child(parent, name)));
}

Handle open_group(hid_t parent, const std::string& name) {
  if (!exists(parent, name)) fail(child(parent, name) + " is missing");
  return Handle(check_id(H5Gopen2(parent, name.c_str(), H5P_DEFAULT), "cannot open group " + child(parent, name)));
}

Handle open_dataset(hid_t parent, const std::string& name) {
  if (!exists(parent, name)) fail(child(parent, name) + " is missing");
  return Handle(check_id(H5Dopen2(parent, name.c_str(), H5P_DEFAULT), "cannot open dataset " + child(parent, name)));
}

bool exists(hid_t parent, const std::string& name) { return H5Lexists(parent, name.c_str(), H5P_DEFAULT) > 0; }

Handle string_type() {
  Handle t(check_id(H5Tcopy(H5T_C_S1), "cannot create a string type"));
  check_ok(H5Tset_size(t, H5T_VARIABLE), "cannot create a string type");
  check_ok(H5Tset_cset(t, H5T_CSET_UTF8), "cannot create a string type");
  return t;
}

Handle bool_type() {
  Handle t(check_id(H5Tenum_create(H5T_NATIVE_INT8), "cannot create the boolean type"));
  const int8_t no = 0, yes = 1;
  check_ok(H5Tenum_insert(t, "FALSE", &no), "cannot create the boolean type");
  check_ok(H5Tenum_insert(t, "TRUE", &yes), "cannot create the boolean type");
  return t;
}

Handle half_type() {
  // binary16: sign bit 15, exponent bits 10-14 (bias 15), mantissa bits 0-9.
  Handle t(check_id(H5Tcopy(H5T_IEEE_F32LE), "cannot create the float16 type"));
  check_ok(H5Tset_fields(t, 15, 10, 5, 0, 10), "cannot create the float16 type");
  check_ok(H5Tset_size(t, 2), "cannot create the float16 type");
  check_ok(H5Tset_ebias(t, 15), "cannot create the float16 type");
  return t;
}

uint16_t float_to_half(float f) {
  uint32_t x;
  std::memcpy(&x, &f, 4);
  const uint32_t sign = (x >> 16) & 0x8000u;
  const uint32_t exp = (x >> 23) & 0xffu;
  uint32_t mant = x & 0x7fffffu;
  if (exp == 0xff) return static_cast<uint16_t>(sign | 0x7c00u | (mant ? 0x200u | (mant >> 13) : 0u));
  const int32_t e = static_cast<int32_t>(exp) - 127 + 15;
  if (e >= 0x1f) return static_cast<uint16_t>(sign | 0x7c00u);
  if (e <= 0) {
    if (e < -10) return static_cast<uint16_t>(sign);
    mant |= 0x800000u;
    const uint32_t shift = static_cast<uint32_t>(14 - e);
    uint32_t m = mant >> shift;
    const uint32_t rem = mant & ((1u << shift) - 1u), halfway = 1u << (shift - 1u);
    if (rem > halfway || (rem == halfway && (m & 1u))) ++m;
    return static_cast<uint16_t>(sign | m);
  }
  uint32_t h = sign | (static_cast<uint32_t>(e) << 10) | (mant >> 13);
  const uint32_t rem = mant & 0x1fffu;
  if (rem > 0x1000u || (rem == 0x1000u && (h & 1u))) ++h;  // a carry into the exponent is right
  return static_cast<uint16_t>(h);
}

float half_to_float(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  const uint32_t exp = (h >> 10) & 0x1fu;
  uint32_t mant = h & 0x3ffu;
  uint32_t x;
  if (exp == 0x1f) {
    x = sign | 0x7f800000u | (mant << 13);
  } else if (exp == 0) {
    if (mant == 0) {
      x = sign;
    } else {
      int e = -1;
      do {
        ++e;
        mant <<= 1;
      } while (!(mant & 0x400u));
      x = sign | (static_cast<uint32_t>(127 - 15 - e) << 23) | ((mant & 0x3ffu) << 13);
    }
  } else {
    x = sign | ((exp + 127 - 15) << 23) | (mant << 13);
  }
  float f;
  std::memcpy(&f, &x, 4);
  return f;
}

// ---- attributes ----

namespace {

void replace_attr(hid_t object, const std::string& name) {
  if (H5Aexists(object, name.c_str()) > 0) H5Adelete(object, name.c_str());
}

Handle open_attr(hid_t object, const std::string& name) {
  if (H5Aexists(object, name.c_str()) <= 0) fail(name_of(object) + " has no attribute '" + name + "'");
  return Handle(check_id(H5Aopen(object, name.c_str(), H5P_DEFAULT),
                      "cannot open attribute '" + name + "' of " + name_of(object)));
}

}  // namespace

void set_attr(hid_t object, const std::string& name, const std::string& value) {
  replace_attr(object, name);
  Handle type = string_type(), space = scalar_space();
  Handle a(check_id(H5Acreate2(object, name.c_str(), type, space, H5P_DEFAULT, H5P_DEFAULT),
                 "cannot create attribute '" + name + "' of " + name_of(object)));
  const char* p = value.c_str();
  check_ok(H5Awrite(a, type, &p), "cannot write attribute '" + name + "'");
}

void set_attr(hid_t object, const std::string& name, const std::vector<std::string>& values) {
  replace_attr(object, name);
  Handle type = string_type(), space = simple_space({static_cast<hsize_t>(values.size())});
  Handle a(check_id(H5Acreate2(object, name.c_str(), type, space, H5P_DEFAULT, H5P_DEFAULT),
                 "cannot create attribute '" + name + "' of " + name_of(object)));
  std::vector<const char*> p;
  for (const auto& v : values) p.push_back(v.c_str());
  if (!p.empty()) check_ok(H5Awrite(a, type, p.data()), "cannot write attribute '" + name + "'");
}

void set_attr(hid_t object, const std::string& name, bool value) {
  replace_attr(object, name);
  Handle type = bool_type(), space = scalar_space();
  Handle a(check_id(H5Acreate2(object, name.c_str(), type, space, H5P_DEFAULT, H5P_DEFAULT),
                 "cannot create attribute '" + name + "' of " + name_of(object)));
  const int8_t v = value ? 1 : 0;
  check_ok(H5Awrite(a, type, &v), "cannot write attribute '" + name + "'");
}

void set_attr(hid_t object, const std::string& name, int64_t value) {
  replace_attr(object, name);
  Handle space = scalar_space();
  Handle a(check_id(H5Acreate2(object, name.c_str(), H5T_STD_I64LE, space, H5P_DEFAULT, H5P_DEFAULT),
                 "cannot create attribute '" + name + "' of " + name_of(object)));
  check_ok(H5Awrite(a, H5T_NATIVE_INT64, &value), "cannot write attribute '" + name + "'");
}

bool has_attr(hid_t object, const std::string& name) { return H5Aexists(object, name.c_str()) > 0; }

std::string get_string_attr(hid_t object, const std::string& name) {
  Handle a = open_attr(object, name);
  Handle ftype(check_id(H5Aget_type(a), "cannot read attribute '" + name + "'"));
  require_vlen_string(ftype, "attribute '" + name + "' of " + name_of(object));
  Handle type = string_type();
  Handle space(check_id(H5Aget_space(a), "cannot read attribute '" + name + "'"));
  if (H5Sget_simple_extent_npoints(space) != 1) fail("attribute '" + name + "' of " + name_of(object) + " is not a scalar");
  char* p = nullptr;
  check_ok(H5Aread(a, type, &p), "cannot read attribute '" + name + "' of " + name_of(object));
  std::string out = p ? p : "";
  H5Dvlen_reclaim(type, space, H5P_DEFAULT, &p);
  return out;
}

int64_t get_int_attr(hid_t object, const std::string& name) {
  Handle a = open_attr(object, name);
  int64_t v = 0;
  check_ok(H5Aread(a, H5T_NATIVE_INT64, &v), "cannot read attribute '" + name + "' of " + name_of(object));
  return v;
}

// ---- 1-D and scalar datasets ----

Handle write_string(hid_t parent, const std::string& name, const std::string& value) {
  Handle type = string_type(), space = scalar_space();
  Handle ds(check_id(H5Dcreate2(parent, name.c_str(), type, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT),
                  "cannot create dataset " + child(parent, name)));
  const char* p = value.c_str();
  check_ok(H5Dwrite(ds, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, &p), "cannot write " + child(parent, name));
  return ds;
}

Handle write_strings(hid_t parent, const std::string& name, const std::vector<std::string>& values) {
  Handle type = string_type(), space = simple_space({static_cast<hsize_t>(values.size())});
  Handle ds(check_id(H5Dcreate2(parent, name.c_str(), type, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT),
                  "cannot create dataset " + child(parent, name)));
  std::vector<const char*> p;
  p.reserve(values.size());
  for (const auto& v : values) p.push_back(v.c_str());
  if (!p.empty()) check_ok(H5Dwrite(ds, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, p.data()), "cannot write " + child(parent, name));
  return ds;
}

Handle write_int64(hid_t parent, const std::string& name, int64_t value) {
  Handle space = scalar_space();
  Handle ds(check_id(H5Dcreate2(parent, name.c_str(), H5T_STD_I64LE, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT),
                  "cannot create dataset " + child(parent, name)));
  check_ok(H5Dwrite(ds, H5T_NATIVE_INT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, &value), "cannot write " + child(parent, name));
  return ds;
}

Handle write_array(hid_t parent, const std::string& name, const std::vector<int64_t>& v) {
  return write_numeric(parent, name, v, H5T_NATIVE_INT64, H5T_STD_I64LE);
}
Handle write_array(hid_t parent, const std::string& name, const std::vector<int32_t>& v) {
  return write_numeric(parent, name, v, H5T_NATIVE_INT32, H5T_STD_I32LE);
}
Handle write_array(hid_t parent, const std::string& name, const std::vector<int16_t>& v) {
  return write_numeric(parent, name, v, H5T_NATIVE_INT16, H5T_STD_I16LE);
}
Handle write_array(hid_t parent, const std::string& name, const std::vector<int8_t>& v) {
  return write_numeric(parent, name, v, H5T_NATIVE_INT8, H5T_STD_I8LE);
}
Handle write_array(hid_t parent, const std::string& name, const std::vector<double>& v) {
  return write_numeric(parent, name, v, H5T_NATIVE_DOUBLE, H5T_IEEE_F64LE);
}
Handle write_bools(hid_t parent, const std::string& name, const std::vector<uint8_t>& values) {
  Handle type = bool_type();
  std::vector<int8_t> v(values.begin(), values.end());
  for (auto& x : v) x = x ? 1 : 0;
  return write_numeric(parent, name, v, type, type);
}

std::string read_string(hid_t parent, const std::string& name) {
  const auto v = read_strings(parent, name);
  if (v.size() != 1) fail(child(parent, name) + " is not a single string");
  return v[0];
}

std::vector<std::string> read_strings(hid_t parent, const std::string& name) {
  Handle ds = open_dataset(parent, name);
  Handle ftype(check_id(H5Dget_type(ds), "cannot read the type of " + name_of(ds)));
  require_vlen_string(ftype, name_of(ds));
  Handle type = string_type();
  Handle space(check_id(H5Dget_space(ds), "cannot read the shape of " + name_of(ds)));
  std::vector<char*> p(static_cast<size_t>(element_count(ds)), nullptr);
  std::vector<std::string> out;
  if (p.empty()) return out;
  check_ok(H5Dread(ds, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, p.data()), "cannot read " + name_of(ds));
  out.reserve(p.size());
  for (char* s : p) out.emplace_back(s ? s : "");
  H5Dvlen_reclaim(type, space, H5P_DEFAULT, p.data());
  return out;
}

int64_t read_int64(hid_t parent, const std::string& name) {
  const auto v = read_int_array(parent, name);
  if (v.size() != 1) fail(child(parent, name) + " is not a single integer");
  return v[0];
}

std::vector<int64_t> read_int_array(hid_t parent, const std::string& name) {
  return read_numeric<int64_t>(parent, name, H5T_NATIVE_INT64);
}

std::vector<double> read_double_array(hid_t parent, const std::string& name) {
  return read_numeric<double>(parent, name, H5T_NATIVE_DOUBLE);
}

std::vector<uint8_t> read_bools(hid_t parent, const std::string& name) {
  Handle type = bool_type();
  const auto v = read_numeric<int8_t>(parent, name, type);
  return std::vector<uint8_t>(v.begin(), v.end());
}

// ---- matrices ----

Handle create_matrix(hid_t parent, const std::string& name, int64_t rows, int64_t cols, hid_t file_type) {
  Handle space = simple_space({static_cast<hsize_t>(rows), static_cast<hsize_t>(cols)});
  Handle dcpl = matrix_dcpl(rows, cols, H5Tget_size(file_type));
  Handle dapl = matrix_dapl();
  return Handle(check_id(H5Dcreate2(parent, name.c_str(), file_type, space, H5P_DEFAULT, dcpl, dapl),
                      "cannot create dataset " + child(parent, name)));
}

namespace {

void transfer_rows(hid_t dataset, int64_t row0, int64_t n, void* data, hid_t mem_type, bool write) {
  if (n <= 0) return;
  const auto shape = dataset_shape(dataset);
  if (row0 < 0 || row0 + n > shape[0])
    fail("rows [" + std::to_string(row0) + ", " + std::to_string(row0 + n) + ") outside " + name_of(dataset) +
         " (" + std::to_string(shape[0]) + " rows)");
  Handle fspace(check_id(H5Dget_space(dataset), "cannot read the shape of " + name_of(dataset)));
  const hsize_t start[2] = {static_cast<hsize_t>(row0), 0};
  const hsize_t count[2] = {static_cast<hsize_t>(n), static_cast<hsize_t>(shape[1])};
  check_ok(H5Sselect_hyperslab(fspace, H5S_SELECT_SET, start, nullptr, count, nullptr), "cannot select rows");
  Handle mspace = simple_space({count[0], count[1]});
  if (write) {
    check_ok(H5Dwrite(dataset, mem_type, mspace, fspace, H5P_DEFAULT, data), "cannot write " + name_of(dataset));
  } else {
    check_ok(H5Dread(dataset, mem_type, mspace, fspace, H5P_DEFAULT, data), "cannot read " + name_of(dataset));
  }
}

}  // namespace

void write_rows(hid_t dataset, int64_t row0, int64_t n, const void* data, hid_t mem_type) {
  transfer_rows(dataset, row0, n, const_cast<void*>(data), mem_type, true);
}

void read_rows(hid_t dataset, int64_t row0, int64_t n, void* data, hid_t mem_type) {
  transfer_rows(dataset, row0, n, data, mem_type, false);
}

std::vector<int64_t> dataset_shape(hid_t dataset) {
  Handle space(check_id(H5Dget_space(dataset), "cannot read the shape of " + name_of(dataset)));
  const int nd = H5Sget_simple_extent_ndims(space);
  if (nd != 2) fail(name_of(dataset) + " is not a matrix");
  hsize_t dims[2] = {0, 0};
  H5Sget_simple_extent_dims(space, dims, nullptr);
  return {static_cast<int64_t>(dims[0]), static_cast<int64_t>(dims[1])};
}

}  // namespace gm::h5
