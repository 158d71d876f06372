// safetensors writer (atomic) and validating reader.
#include "mamba/safetensors.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>
#include <random>
#include <stdexcept>

#include "mamba/json.h"

namespace gm {

namespace {

// A header larger than this is not a header we wrote: reject before allocating.
constexpr uint64_t kMaxHeaderBytes = 100u << 20;

std::runtime_error file_error(const std::string& path, const std::string& what) {
  return std::runtime_error(path + ": " + what);
}

float half_to_float(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  const uint32_t exp = (h >> 10) & 0x1fu;
  const uint32_t mant = h & 0x3ffu;
  float f;
  if (exp == 0) {
    f = std::ldexp(static_cast<float>(mant), -24);  // zero or subnormal
  } else if (exp == 31) {
    f = mant ? std::numeric_limits<float>::quiet_NaN() : std::numeric_limits<float>::infinity();
  } else {
    f = std::ldexp(static_cast<float>(mant | 0x400u), static_cast<int>(exp) - 25);
  }
  uint32_t u;
  std::memcpy(&u, &f, 4);
  u |= sign;
  std::memcpy(&f, &u, 4);
  return f;
}

}  // namespace

std::string shape_string(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

size_t safetensors_dtype_size(const std::string& dtype) {
  static const std::map<std::string, size_t> sizes = {
      {"F64", 8}, {"F32", 4}, {"F16", 2}, {"BF16", 2}, {"I64", 8}, {"I32", 4}, {"I16", 2},
      {"I8", 1},  {"U64", 8}, {"U32", 4}, {"U16", 2},  {"U8", 1},  {"BOOL", 1}};
  const auto it = sizes.find(dtype);
  return it == sizes.end() ? 0 : it->second;
}

int64_t SafetensorsFile::Entry::numel() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

void write_file_atomic(const std::string& path, const std::vector<std::pair<const void*, size_t>>& pieces) {
  namespace fs = std::filesystem;
  const fs::path final_path(path);
  const fs::path dir = final_path.has_parent_path() ? final_path.parent_path() : fs::path(".");
  std::random_device rd;
  const fs::path tmp = dir / ("." + final_path.filename().string() + ".tmp." + std::to_string(::getpid()) + "." +
                              std::to_string(rd()));
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd < 0) throw file_error(path, std::string("cannot create a temporary file: ") + std::strerror(errno));
  auto fail = [&](const std::string& what) {
    const int err = errno;
    ::close(fd);
    ::unlink(tmp.c_str());
    return file_error(path, what + ": " + std::strerror(err));
  };
  for (const auto& [data, size] : pieces) {
    const char* p = static_cast<const char*>(data);
    size_t left = size;
    while (left > 0) {
      const ssize_t n = ::write(fd, p, left);
      if (n < 0) {
        if (errno == EINTR) continue;
        throw fail("write failed");
      }
      p += n;
      left -= static_cast<size_t>(n);
    }
  }
  if (::fsync(fd) != 0) throw fail("fsync failed");
  if (::close(fd) != 0) {
    const int err = errno;
    ::unlink(tmp.c_str());
    throw file_error(path, std::string("close failed: ") + std::strerror(err));
  }
  if (::rename(tmp.c_str(), final_path.c_str()) != 0) {
    const int err = errno;
    ::unlink(tmp.c_str());
    throw file_error(path, std::string("rename failed: ") + std::strerror(err));
  }
  // Make the rename itself durable.
  const int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    ::fsync(dfd);
    ::close(dfd);
  }
}

void write_safetensors(const std::string& path, const std::vector<SafetensorsTensorRef>& tensors,
                       const StringMap& metadata) {
  Json header = Json::object();
  if (!metadata.empty()) {
    Json meta = Json::object();
    for (const auto& [k, v] : metadata) meta.set(k, v);
    header.set("__metadata__", std::move(meta));
  }
  std::vector<std::pair<const void*, size_t>> pieces;
  pieces.emplace_back(nullptr, 8);  // header length, filled below
  pieces.emplace_back(nullptr, 0);  // header text
  uint64_t offset = 0;
  for (const auto& t : tensors) {
    const size_t esize = safetensors_dtype_size(t.dtype);
    if (esize == 0) throw std::invalid_argument("safetensors: unknown dtype " + t.dtype + " for " + t.name);
    if (t.name == "__metadata__" || header.find(t.name))
      throw std::invalid_argument("safetensors: duplicate or reserved tensor name " + t.name);
    int64_t numel = 1;
    Json shape = Json::array();
    for (int64_t d : t.shape) {
      numel *= d;
      shape.push(d);
    }
    const uint64_t bytes = static_cast<uint64_t>(numel) * esize;
    Json entry = Json::object();
    entry.set("dtype", t.dtype).set("shape", std::move(shape));
    entry.set("data_offsets", Json(Json::Array{Json(offset), Json(offset + bytes)}));
    header.set(t.name, std::move(entry));
    pieces.emplace_back(t.data, bytes);
    offset += bytes;
  }
  std::string text = header.dump();
  text.append((8 - text.size() % 8) % 8, ' ');
  uint8_t len_le[8];
  for (int i = 0; i < 8; ++i) len_le[i] = static_cast<uint8_t>(static_cast<uint64_t>(text.size()) >> (8 * i));
  pieces[0] = {len_le, 8};
  pieces[1] = {text.data(), text.size()};
  write_file_atomic(path, pieces);
}

SafetensorsFile SafetensorsFile::open(const std::string& path) {
  std::ifstream f(path, std::ios::binary | std::ios::ate);
  if (!f) throw file_error(path, std::string("cannot open: ") + std::strerror(errno));
  const std::streamoff size = f.tellg();
  if (size < 0) throw file_error(path, "cannot determine the file size");
  std::vector<uint8_t> bytes(static_cast<size_t>(size));
  f.seekg(0);
  if (size > 0 && !f.read(reinterpret_cast<char*>(bytes.data()), size)) throw file_error(path, "read failed");
  return parse(std::move(bytes), path);
}

SafetensorsFile SafetensorsFile::parse(std::vector<uint8_t> bytes, const std::string& name) {
  SafetensorsFile sf;
  sf.path_ = name;
  const std::string bad = "not a complete safetensors file (truncated or corrupt): ";
  if (bytes.size() < 8) throw file_error(name, bad + "shorter than its 8-byte header length");
  uint64_t n = 0;
  for (int i = 0; i < 8; ++i) n |= static_cast<uint64_t>(bytes[static_cast<size_t>(i)]) << (8 * i);
  if (n > kMaxHeaderBytes || n > bytes.size() - 8)
    throw file_error(name, bad + "header length " + std::to_string(n) + " exceeds the file size " +
                               std::to_string(bytes.size()));
  sf.data_start_ = 8 + static_cast<size_t>(n);
  const size_t data_size = bytes.size() - sf.data_start_;
  Json header;
  try {
    header = Json::parse(std::string_view(reinterpret_cast<const char*>(bytes.data() + 8), static_cast<size_t>(n)));
    if (!header.is_object()) throw JsonError("the header is not a JSON object");
    std::vector<std::pair<size_t, size_t>> ranges;
    for (const auto& [key, value] : header.as_object()) {
      if (key == "__metadata__") {
        for (const auto& [mk, mv] : value.as_object()) sf.metadata_[mk] = mv.as_string();
        continue;
      }
      Entry e;
      e.dtype = value.at("dtype").as_string();
      const size_t esize = safetensors_dtype_size(e.dtype);
      if (esize == 0) throw JsonError("tensor " + key + " has unknown dtype " + e.dtype);
      for (const Json& d : value.at("shape").as_array()) e.shape.push_back(d.as_int(0, int64_t(1) << 40));
      const auto& off = value.at("data_offsets").as_array();
      if (off.size() != 2) throw JsonError("tensor " + key + ": data_offsets must have 2 entries");
      const int64_t limit = int64_t(1) << 50;
      e.begin = static_cast<size_t>(off[0].as_int(0, limit));
      e.end = static_cast<size_t>(off[1].as_int(0, limit));
      if (e.begin > e.end || e.end > data_size)
        throw file_error(name, bad + "tensor " + key + " lies at bytes [" + std::to_string(e.begin) + ", " +
                                   std::to_string(e.end) + ") of a " + std::to_string(data_size) +
                                   "-byte data section");
      if (static_cast<uint64_t>(e.numel()) * esize != e.end - e.begin)
        throw JsonError("tensor " + key + ": " + std::to_string(e.end - e.begin) + " bytes for shape " +
                        shape_string(e.shape) + " of " + e.dtype);
      ranges.emplace_back(e.begin, e.end);
      sf.entries_.emplace(key, std::move(e));
    }
    // The tensors must tile the data section exactly: no gap, no overlap, nothing after.
    std::sort(ranges.begin(), ranges.end());
    size_t expect = 0;
    for (const auto& [b, e] : ranges) {
      if (b != expect) throw JsonError("tensor data overlaps or leaves a gap at byte " + std::to_string(expect));
      expect = e;
    }
    if (expect != data_size)
      throw file_error(name, bad + "the tensors cover " + std::to_string(expect) + " bytes of a " +
                                 std::to_string(data_size) + "-byte data section");
  } catch (const JsonError& e) {
    throw file_error(name, "invalid safetensors header: " + std::string(e.what()));
  }
  sf.bytes_ = std::move(bytes);
  return sf;
}

const std::string& SafetensorsFile::meta(const std::string& key) const {
  const auto it = metadata_.find(key);
  if (it == metadata_.end()) throw file_error(path_, "metadata has no '" + key + "' entry");
  return it->second;
}

std::vector<std::string> SafetensorsFile::names() const {
  std::vector<std::pair<size_t, std::string>> order;
  for (const auto& [k, e] : entries_) order.emplace_back(e.begin, k);
  std::sort(order.begin(), order.end());
  std::vector<std::string> out;
  for (auto& [b, k] : order) out.push_back(std::move(k));
  return out;
}

const SafetensorsFile::Entry& SafetensorsFile::entry(const std::string& name) const {
  const auto it = entries_.find(name);
  if (it == entries_.end()) throw file_error(path_, "no tensor named " + name);
  return it->second;
}

const uint8_t* SafetensorsFile::raw(const std::string& name) const {
  return bytes_.data() + data_start_ + entry(name).begin;
}

std::vector<float> SafetensorsFile::read_f32(const std::string& name, const std::vector<int64_t>& expected_shape) const {
  const Entry& e = entry(name);
  if (!expected_shape.empty() && e.shape != expected_shape)
    throw file_error(path_, "tensor " + name + " has shape " + shape_string(e.shape) + ", expected " +
                                shape_string(expected_shape));
  const size_t n = static_cast<size_t>(e.numel());
  const uint8_t* p = raw(name);
  std::vector<float> out(n);
  if (e.dtype == "F32") {
    std::memcpy(out.data(), p, n * 4);
  } else if (e.dtype == "F64") {
    for (size_t i = 0; i < n; ++i) {
      double d;
      std::memcpy(&d, p + 8 * i, 8);
      out[i] = static_cast<float>(d);
    }
  } else if (e.dtype == "BF16" || e.dtype == "F16") {
    for (size_t i = 0; i < n; ++i) {
      uint16_t h;
      std::memcpy(&h, p + 2 * i, 2);
      if (e.dtype == "F16") {
        out[i] = half_to_float(h);
      } else {
        const uint32_t u = static_cast<uint32_t>(h) << 16;
        std::memcpy(&out[i], &u, 4);
      }
    }
  } else {
    throw file_error(path_, "tensor " + name + " has dtype " + e.dtype + ", expected a float type");
  }
  return out;
}

}  // namespace gm
