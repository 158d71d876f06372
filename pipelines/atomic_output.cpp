// Temporary-name-then-rename output files.
#include "pipelines/atomic_output.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <stdexcept>

namespace gm {

AtomicOutput::AtomicOutput(std::string final_path) : final_(std::move(final_path)) {
  namespace fs = std::filesystem;
  if (final_.empty()) throw std::runtime_error("empty output path");
  fs::path dir = fs::path(final_).parent_path();
  if (dir.empty()) dir = ".";
  if (!fs::is_directory(dir))
    throw std::runtime_error("cannot write '" + final_ + "': directory '" + dir.string() + "' does not exist");
  if (access(dir.c_str(), W_OK) != 0)
    throw std::runtime_error("cannot write '" + final_ + "': directory '" + dir.string() + "' is not writable");
  temp_ = final_ + ".tmp." + std::to_string(getpid());
}

AtomicOutput::~AtomicOutput() {
  if (!committed_) std::remove(temp_.c_str());
}

void AtomicOutput::commit() {
  const int fd = open(temp_.c_str(), O_RDONLY);
  if (fd < 0) throw std::runtime_error("output '" + temp_ + "' was never written: " + std::strerror(errno));
  fsync(fd);
  close(fd);
  if (std::rename(temp_.c_str(), final_.c_str()) != 0)
    throw std::runtime_error("cannot rename '" + temp_ + "' to '" + final_ + "': " + std::strerror(errno));
  committed_ = true;
}

}  // namespace gm
