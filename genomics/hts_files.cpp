// File checks shared by the htslib-based readers.
#include "genomics/hts_files.h"

#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <mutex>

#include "genomics/errors.h"

namespace gm {

void require_readable_file(const std::string& path, const std::string& what, bool allow_stdin) {
  namespace fs = std::filesystem;
  if (allow_stdin && path == "-") return;
  if (path.empty()) throw InputError("no " + what + " given");
  std::error_code ec;
  const auto status = fs::status(path, ec);
  if (ec || !fs::exists(status)) throw_input_error(path, "cannot open " + what + ": No such file or directory");
  if (fs::is_directory(status)) throw_input_error(path, "cannot open " + what + ": is a directory");
  if (::access(path.c_str(), R_OK) != 0) {
    throw_input_error(path, "cannot open " + what + ": " + std::strerror(errno));
  }
}

bool directory_writable(const std::string& file_in_directory) {
  namespace fs = std::filesystem;
  fs::path dir = fs::path(file_in_directory).parent_path();
  if (dir.empty()) dir = ".";
  return ::access(dir.c_str(), W_OK | X_OK) == 0;
}

void forbid_network_references() {
  static std::once_flag once;
  std::call_once(once, [] {
    const char* ref_path = std::getenv("REF_PATH");
    const bool networked = ref_path == nullptr || std::strstr(ref_path, "://") != nullptr ||
                           std::strstr(ref_path, "http") != nullptr || std::strstr(ref_path, "ftp") != nullptr;
    if (networked) {
      // A path that cannot exist: htslib finds nothing there and reports the CRAM's
      // missing reference instead of downloading it from the EBI.
      ::setenv("REF_PATH", "/nonexistent/genomamba-no-network-references", 1);
    }
  });
}

}  // namespace gm
