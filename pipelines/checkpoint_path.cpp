// Checkpoint path resolution.
#include "pipelines/checkpoint_path.h"

#include <filesystem>
#include <fstream>
#include <stdexcept>

namespace gm {

std::string resolve_weights_path(const std::string& path) {
  namespace fs = std::filesystem;
  const fs::path p(path);
  if (fs::is_regular_file(p)) return path;
  if (fs::is_directory(p)) {
    if (fs::is_regular_file(p / "model.safetensors")) return (p / "model.safetensors").string();
    std::ifstream latest(p / "checkpoints" / "latest");
    std::string name;
    if (latest >> name) {
      const fs::path w = p / "checkpoints" / name / "model.safetensors";
      if (fs::is_regular_file(w)) return w.string();
      throw std::runtime_error(path + ": checkpoints/latest names '" + name + "', which has no model.safetensors");
    }
    throw std::runtime_error(path + ": no model.safetensors and no checkpoints/latest in this directory");
  }
  throw std::runtime_error(path + ": no such checkpoint file or directory");
}

}  // namespace gm
