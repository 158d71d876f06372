// Helpers shared by the test executables: where data/ is, temporary directories.
// data/ is found through GENOMAMBA_DATA_DIR, else GENOMAMBA_SOURCE_DIR/data, else by
// walking up from the working directory to a folder holding data/SOURCES.md, else the
// source directory this test was compiled in. No absolute path is assumed.
#pragma once
#include <cstdlib>
#include <filesystem>
#include <random>
#include <string>

namespace gm::test {

inline std::filesystem::path data_dir() {
  namespace fs = std::filesystem;
  if (const char* d = std::getenv("GENOMAMBA_DATA_DIR")) return fs::path(d);
  if (const char* s = std::getenv("GENOMAMBA_SOURCE_DIR")) {
    if (fs::exists(fs::path(s) / "data" / "SOURCES.md")) return fs::path(s) / "data";
  }
  for (fs::path p = fs::current_path(); !p.empty(); p = p.parent_path()) {
    if (fs::exists(p / "data" / "SOURCES.md")) return p / "data";
    if (p == p.parent_path()) break;
  }
#ifdef GENOMAMBA_SOURCE_DIR
  return fs::path(GENOMAMBA_SOURCE_DIR) / "data";
#else
  return fs::path("data");
#endif
}

inline std::string data_path(const std::string& rel) { return (data_dir() / rel).string(); }

inline std::filesystem::path source_dir() { return data_dir().parent_path(); }

// A fresh, empty directory under the system temp dir, removed when the object dies.
class TempDir {
 public:
  TempDir() {
    namespace fs = std::filesystem;
    std::random_device rd;
    for (;;) {
      path_ = fs::temp_directory_path() / ("genomamba-test-" + std::to_string(rd()));
      if (fs::create_directory(path_)) break;
    }
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::filesystem::path& path() const { return path_; }
  std::string operator/(const std::string& name) const { return (path_ / name).string(); }

 private:
  std::filesystem::path path_;
};

}  // namespace gm::test
