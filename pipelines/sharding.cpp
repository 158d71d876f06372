// Shard selection, shard output names and done markers.
#include "pipelines/sharding.h"

#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>

#include "mamba/safetensors.h"

namespace gm {

std::string ShardSpec::to_string() const { return std::to_string(index) + "/" + std::to_string(count); }

namespace {

long parse_long(const std::string& s, const std::string& what) {
  size_t used = 0;
  long v = 0;
  try {
    v = std::stol(s, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  if (used != s.size() || s.empty()) throw std::invalid_argument(what + ": '" + s + "' is not an integer");
  return v;
}

}  // namespace

ShardSpec resolve_shard(const std::string& text, const EnvLookup& env) {
  ShardSpec s;
  if (!text.empty()) {
    const auto slash = text.find('/');
    if (slash == std::string::npos) throw std::invalid_argument("--shard must be i/N (0-based), got '" + text + "'");
    s.index = static_cast<int>(parse_long(text.substr(0, slash), "--shard"));
    s.count = static_cast<int>(parse_long(text.substr(slash + 1), "--shard"));
  } else if (const char* id = env("SLURM_ARRAY_TASK_ID")) {
    const char* count = env("SLURM_ARRAY_TASK_COUNT");
    if (!count) throw std::invalid_argument("SLURM_ARRAY_TASK_ID is set but SLURM_ARRAY_TASK_COUNT is not");
    const char* min = env("SLURM_ARRAY_TASK_MIN");
    const char* step = env("SLURM_ARRAY_TASK_STEP");
    const long task = parse_long(id, "SLURM_ARRAY_TASK_ID");
    const long lo = min ? parse_long(min, "SLURM_ARRAY_TASK_MIN") : 0;
    const long st = step ? parse_long(step, "SLURM_ARRAY_TASK_STEP") : 1;
    if (st < 1 || (task - lo) % st != 0)
      throw std::invalid_argument("SLURM_ARRAY_TASK_ID " + std::string(id) + " is not on the array's step");
    s.index = static_cast<int>((task - lo) / st);
    s.count = static_cast<int>(parse_long(count, "SLURM_ARRAY_TASK_COUNT"));
  }
  if (s.count < 1 || s.index < 0 || s.index >= s.count)
    throw std::invalid_argument("shard " + s.to_string() + " is out of range (need 0 <= i < N)");
  return s;
}

std::pair<size_t, size_t> shard_range(const ShardSpec& s, size_t n) {
  const auto begin = n * static_cast<size_t>(s.index) / static_cast<size_t>(s.count);
  const auto end = n * static_cast<size_t>(s.index + 1) / static_cast<size_t>(s.count);
  return {begin, end};
}

std::string shard_output_path(const std::string& output, const ShardSpec& s) {
  if (!s.sharded()) return output;
  char tag[64];
  std::snprintf(tag, sizeof tag, ".shard-%05d-of-%05d", s.index, s.count);
  const std::string name = std::filesystem::path(output).filename().string();
  size_t dot = std::string::npos;
  for (const char* ext : {".vcf.gz", ".vcf.bgz", ".tsv.gz"}) {
    const std::string e = ext;
    if (name.size() > e.size() && name.compare(name.size() - e.size(), e.size(), e) == 0) {
      dot = output.size() - e.size();
      break;
    }
  }
  if (dot == std::string::npos) {
    const auto d = name.rfind('.');
    dot = (d == std::string::npos || d == 0) ? output.size() : output.size() - (name.size() - d);
  }
  return output.substr(0, dot) + tag + output.substr(dot);
}

std::string done_marker_path(const std::string& output) { return output + ".done"; }

void write_done_marker(const std::string& output, const DoneMarker& marker) {
  const std::string text =
      "command\t" + marker.command + "\ncheckpoint_sha256\t" + marker.checkpoint_sha256 + "\n";
  write_file_atomic(done_marker_path(output), {{text.data(), text.size()}});
}

std::optional<DoneMarker> read_done_marker(const std::string& output) {
  std::ifstream in(done_marker_path(output));
  if (!in) return std::nullopt;
  DoneMarker m;
  std::string line;
  while (std::getline(in, line)) {
    const auto tab = line.find('\t');
    if (tab == std::string::npos) continue;
    const std::string key = line.substr(0, tab), value = line.substr(tab + 1);
    if (key == "command") m.command = value;
    else if (key == "checkpoint_sha256") m.checkpoint_sha256 = value;
  }
  return m;
}

bool shard_already_done(const std::string& output, const DoneMarker& expected) {
  const auto marker = read_done_marker(output);
  if (!marker) return false;
  if (marker->command != expected.command || marker->checkpoint_sha256 != expected.checkpoint_sha256) {
    throw std::runtime_error(done_marker_path(output) + " records another job (command '" + marker->command +
                             "', checkpoint " + marker->checkpoint_sha256 + "); this job is '" + expected.command +
                             "' with checkpoint " + expected.checkpoint_sha256 +
                             ". Remove the output and its .done marker to recompute it.");
  }
  return std::filesystem::exists(output);
}

std::string command_without_shard(const std::string& command_line) {
  std::istringstream in(command_line);
  std::string word, out;
  bool skip_next = false;
  while (in >> word) {
    if (skip_next) {
      skip_next = false;
      continue;
    }
    if (word == "--shard") {
      skip_next = true;
      continue;
    }
    if (word.rfind("--shard=", 0) == 0) continue;
    out += (out.empty() ? "" : " ") + word;
  }
  return out;
}

}  // namespace gm
