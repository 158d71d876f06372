// Weights and training-state files over safetensors (see checkpoint.h).
#include "mamba/checkpoint.h"

#include <cerrno>
#include <charconv>
#include <cstring>
#include <fstream>
#include <sstream>
#include <stdexcept>

#include "mamba/json.h"

namespace gm {

namespace {

constexpr const char* kWeightsFormat = "genomamba.weights";
constexpr const char* kTrainStateFormat = "genomamba.train_state";
constexpr const char* kFormatVersion = "1";

std::runtime_error file_error(const std::string& path, const std::string& what) {
  return std::runtime_error(path + ": " + what);
}

void add_user_metadata(StringMap& meta, const StringMap& user, const std::string& path) {
  for (const auto& [k, v] : user) {
    if (is_reserved_checkpoint_key(k))
      throw std::invalid_argument(path + ": metadata key '" + k + "' is reserved by the checkpoint format");
    meta[k] = v;
  }
}

ModelConfig config_of(const SafetensorsFile& f) {
  try {
    return ModelConfig::from_json(Json::parse(f.meta("config")));
  } catch (const std::invalid_argument& e) {
    throw file_error(f.path(), std::string("bad stored config: ") + e.what());
  } catch (const JsonError& e) {
    throw file_error(f.path(), std::string("bad stored config: ") + e.what());
  }
}

void check_format(const SafetensorsFile& f, const char* format) {
  const auto it = f.metadata().find("format");
  if (it == f.metadata().end() || it->second != format)
    throw file_error(f.path(), std::string("not a ") + format + " file (metadata 'format' is '" +
                                   (it == f.metadata().end() ? std::string("absent") : it->second) + "')");
  if (f.meta("format_version") != kFormatVersion)
    throw file_error(f.path(), "format_version " + f.meta("format_version") + " is not supported (expected " +
                                   kFormatVersion + ")");
}

void check_config(const SafetensorsFile& f, const ModelConfig& expected) {
  const ModelConfig stored = config_of(f);
  if (!(stored == expected.resolved()))
    throw file_error(f.path(), "model config mismatch: the file holds " + stored.summary() +
                                   "; expected " + expected.resolved().summary());
}

int64_t parse_int64(const std::string& s, const std::string& path, const char* key) {
  int64_t v = 0;
  const auto r = std::from_chars(s.data(), s.data() + s.size(), v);
  if (r.ec != std::errc() || r.ptr != s.data() + s.size())
    throw file_error(path, std::string("metadata '") + key + "' is not an integer: '" + s + "'");
  return v;
}

uint64_t parse_uint64(const std::string& s, const std::string& path, const char* key) {
  uint64_t v = 0;
  const auto r = std::from_chars(s.data(), s.data() + s.size(), v);
  if (r.ec != std::errc() || r.ptr != s.data() + s.size())
    throw file_error(path, std::string("metadata '") + key + "' is not an unsigned integer: '" + s + "'");
  return v;
}

}  // namespace

void save_config_json(const ModelConfig& config, const std::string& path) {
  const std::string text = config.to_json().dump(2) + "\n";
  write_file_atomic(path, {{text.data(), text.size()}});
}

ModelConfig load_config_json(const std::string& path) {
  std::ifstream f(path);
  if (!f) throw file_error(path, std::string("cannot open: ") + std::strerror(errno));
  std::ostringstream ss;
  ss << f.rdbuf();
  try {
    return ModelConfig::from_json(Json::parse(ss.str()));
  } catch (const std::exception& e) {
    throw file_error(path, e.what());
  }
}

bool is_reserved_checkpoint_key(const std::string& key) {
  static const char* const kReserved[] = {"format", "format_version", "config", "step",
                                          "adam_step", "rng_state", "data_cursor"};
  for (const char* r : kReserved)
    if (key == r) return true;
  return false;
}

void save_weights(Context& ctx, const MambaModel& model, const std::string& path, const StringMap& provenance) {
  const ParamStore& ps = model.params();
  std::vector<std::vector<float>> host;
  std::vector<SafetensorsTensorRef> refs;
  host.reserve(ps.size());
  for (size_t i = 0; i < ps.size(); ++i) {
    host.push_back(ps.download(ctx, static_cast<int>(i)));
    const ParamInfo& p = ps.infos()[i];
    refs.push_back({p.name, "F32", p.shape, host.back().data()});
  }
  StringMap meta;
  add_user_metadata(meta, provenance, path);
  meta["format"] = kWeightsFormat;
  meta["format_version"] = kFormatVersion;
  meta["config"] = model.config().to_json().dump();
  write_safetensors(path, refs, meta);
}

ModelConfig read_checkpoint_config(const std::string& path) { return config_of(SafetensorsFile::open(path)); }

StringMap read_checkpoint_metadata(const std::string& path) { return SafetensorsFile::open(path).metadata(); }

std::unique_ptr<MambaModel> load_model(Context& ctx, const std::string& path) {
  const SafetensorsFile f = SafetensorsFile::open(path);
  check_format(f, kWeightsFormat);
  auto model = std::make_unique<MambaModel>(ctx, config_of(f));
  load_weights(ctx, *model, path);
  return model;
}

void load_weights(Context& ctx, MambaModel& model, const std::string& path) {
  const SafetensorsFile f = SafetensorsFile::open(path);
  check_format(f, kWeightsFormat);
  check_config(f, model.config());
  ParamStore& ps = model.params();
  for (const std::string& name : f.names()) {
    if (ps.find(name) < 0) throw file_error(path, "unexpected tensor " + name + " (not a parameter of this model)");
  }
  for (size_t i = 0; i < ps.size(); ++i) {
    const ParamInfo& p = ps.infos()[i];
    if (!f.has(p.name)) throw file_error(path, "missing tensor " + p.name);
    if (f.entry(p.name).dtype != "F32")
      throw file_error(path, "tensor " + p.name + " is " + f.entry(p.name).dtype + ", expected F32");
    ps.upload(ctx, static_cast<int>(i), f.read_f32(p.name, p.shape));
  }
  ps.mark_updated();
}

void save_train_state(Context& ctx, const AdamW& optimizer, const ModelConfig& config, const TrainState& state,
                      const std::string& path) {
  const ParamStore& ps = optimizer.params();
  const std::vector<float> m = ps.download_flat(ctx, optimizer.exp_avg());
  const std::vector<float> v = ps.download_flat(ctx, optimizer.exp_avg_sq());
  std::vector<std::string> names;  // keep the strings alive for the refs
  names.reserve(2 * ps.size());
  std::vector<SafetensorsTensorRef> refs;
  for (size_t i = 0; i < ps.size(); ++i) {
    const ParamInfo& p = ps.infos()[i];
    names.push_back("exp_avg." + p.name);
    refs.push_back({names.back(), "F32", p.shape, m.data() + p.offset});
    names.push_back("exp_avg_sq." + p.name);
    refs.push_back({names.back(), "F32", p.shape, v.data() + p.offset});
  }
  StringMap meta;
  add_user_metadata(meta, state.extra, path);
  meta["format"] = kTrainStateFormat;
  meta["format_version"] = kFormatVersion;
  meta["config"] = config.to_json().dump();
  meta["step"] = std::to_string(state.step);
  meta["adam_step"] = std::to_string(optimizer.steps_taken());
  meta["rng_state"] = std::to_string(state.rng_state);
  meta["data_cursor"] = state.data_cursor;
  write_safetensors(path, refs, meta);
}

TrainState load_train_state(Context& ctx, AdamW& optimizer, const ModelConfig& config, const std::string& path) {
  const SafetensorsFile f = SafetensorsFile::open(path);
  check_format(f, kTrainStateFormat);
  check_config(f, config);
  ParamStore& ps = optimizer.params();
  // Moments are assembled on the host in the flat layout (padding stays zero).
  std::vector<float> m(static_cast<size_t>(optimizer.exp_avg().numel()), 0.f);
  std::vector<float> v(m.size(), 0.f);
  size_t expected_tensors = 0;
  for (size_t i = 0; i < ps.size(); ++i) {
    const ParamInfo& p = ps.infos()[i];
    const std::vector<float> mi = f.read_f32("exp_avg." + p.name, p.shape);
    const std::vector<float> vi = f.read_f32("exp_avg_sq." + p.name, p.shape);
    std::memcpy(m.data() + p.offset, mi.data(), mi.size() * sizeof(float));
    std::memcpy(v.data() + p.offset, vi.data(), vi.size() * sizeof(float));
    expected_tensors += 2;
  }
  if (f.names().size() != expected_tensors)
    throw file_error(path, "holds " + std::to_string(f.names().size()) + " tensors, expected " +
                               std::to_string(expected_tensors) + " (two moments per parameter)");
  TrainState st;
  st.step = parse_int64(f.meta("step"), path, "step");
  const int64_t adam_step = parse_int64(f.meta("adam_step"), path, "adam_step");
  st.rng_state = parse_uint64(f.meta("rng_state"), path, "rng_state");
  st.data_cursor = f.meta("data_cursor");
  for (const auto& [k, val] : f.metadata())
    if (!is_reserved_checkpoint_key(k)) st.extra[k] = val;
  // Only now touch the optimizer: a bad file leaves it as it was.
  ps.upload_flat(ctx, m, optimizer.exp_avg());
  ps.upload_flat(ctx, v, optimizer.exp_avg_sq());
  optimizer.set_steps_taken(adam_step);
  return st;
}

}  // namespace gm
