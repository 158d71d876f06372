// Checkpoints: weights/config/provenance and training state round trip bitwise,
// truncated or corrupt files are rejected with the file named, config mismatches are
// clear errors, writes are atomic, and an independent Python reader (json + struct)
// parses the weights file.
#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

#include "mamba/checkpoint.h"
#include "mamba/model.h"
#include "mamba/rng.h"
#include "mamba/safetensors.h"
#include "tests/test_mamba_model_util.h"
#include "tests/test_support.h"

namespace gm {
namespace {

namespace fs = std::filesystem;

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const std::exception& e) {
    return e.what();
  }
  return "no error";
}

std::vector<uint8_t> read_bytes(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return std::vector<uint8_t>(std::istreambuf_iterator<char>(f), {});
}

void write_bytes(const std::string& path, const std::vector<uint8_t>& bytes, size_t n) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(n));
}

// Random gradients in the flat grad buffer (padding left zero).
void random_grads(Context& ctx, ParamStore& ps, uint64_t seed) {
  Rng rng(seed);
  std::vector<float> g(static_cast<size_t>(ps.flat_numel()), 0.f);
  for (const ParamInfo& p : ps.infos())
    for (int64_t i = 0; i < p.numel; ++i) g[static_cast<size_t>(p.offset + i)] = static_cast<float>(rng.normal());
  ps.upload_flat(ctx, g, ps.grads());
}

class Checkpoint : public ::testing::Test {
 protected:
  void SetUp() override {
    cfg = test::small_config(16, 2);
    model = std::make_unique<MambaModel>(ctx, cfg);
    model->init_weights(ctx, 3);
  }
  CpuContext ctx{1};
  ModelConfig cfg;
  std::unique_ptr<MambaModel> model;
  test::TempDir dir;
};

TEST_F(Checkpoint, WeightsConfigAndProvenanceRoundTripBitwise) {
  const std::string path = dir / "model.safetensors";
  save_weights(ctx, *model, path, {{"tool", "genomamba test"}, {"command", "pretrain --x 1"}});
  // Only the final file is left behind (the temporary was renamed).
  EXPECT_EQ(std::distance(fs::directory_iterator(dir.path()), fs::directory_iterator()), 1);
  std::unique_ptr<MambaModel> back = load_model(ctx, path);
  EXPECT_EQ(back->config(), cfg);
  EXPECT_EQ(back->params().download_flat(ctx, back->params().values()),
            model->params().download_flat(ctx, model->params().values()));
  const StringMap meta = read_checkpoint_metadata(path);
  EXPECT_EQ(meta.at("tool"), "genomamba test");
  EXPECT_EQ(meta.at("command"), "pretrain --x 1");
  EXPECT_EQ(read_checkpoint_config(path), cfg);
  // Tensors carry the mamba_ssm names and shapes; the tied head is not stored.
  const SafetensorsFile f = SafetensorsFile::open(path);
  EXPECT_EQ(f.entry("backbone.layers.1.mixer.conv1d.weight").shape, (std::vector<int64_t>{32, 1, 4}));
  EXPECT_EQ(f.entry("backbone.layers.0.mixer.x_proj.weight").shape, (std::vector<int64_t>{1 + 16, 32}));
  EXPECT_FALSE(f.has("lm_head.weight"));
  EXPECT_EQ(f.names().size(), model->params().size());
}

TEST_F(Checkpoint, LoadingChecksTheConfig) {
  const std::string path = dir / "model.safetensors";
  save_weights(ctx, *model, path);
  MambaModel other(ctx, test::small_config(24, 2));
  const std::string msg = error_of([&] { load_weights(ctx, other, path); });
  EXPECT_NE(msg.find(path), std::string::npos) << msg;
  EXPECT_NE(msg.find("config mismatch"), std::string::npos) << msg;
  EXPECT_THROW(save_weights(ctx, *model, dir / "x.safetensors", {{"config", "x"}}), std::invalid_argument);
  // A train-state file is not a weights file.
  AdamW opt(ctx, model->params(), AdamWConfig{});
  save_train_state(ctx, opt, cfg, TrainState{}, dir / "state.safetensors");
  EXPECT_NE(error_of([&] { load_model(ctx, dir / "state.safetensors"); }).find("genomamba.weights"),
            std::string::npos);
}

TEST_F(Checkpoint, TruncatedOrCorruptFilesAreRejected) {
  const std::string path = dir / "model.safetensors";
  save_weights(ctx, *model, path);
  const std::vector<uint8_t> bytes = read_bytes(path);
  uint64_t header = 0;
  for (int i = 0; i < 8; ++i) header |= static_cast<uint64_t>(bytes[static_cast<size_t>(i)]) << (8 * i);
  const std::string cut = dir / "cut.safetensors";
  for (size_t n : {size_t{0}, size_t{5}, size_t{8}, static_cast<size_t>(8 + header / 2), static_cast<size_t>(8 + header),
                   bytes.size() / 2, bytes.size() - 1}) {
    write_bytes(cut, bytes, n);
    const std::string msg = error_of([&] { load_model(ctx, cut); });
    EXPECT_NE(msg.find(cut), std::string::npos) << "length " << n << ": " << msg;
  }
  // Trailing garbage and a corrupted offset are rejected too.
  std::vector<uint8_t> longer = bytes;
  longer.push_back(0);
  write_bytes(cut, longer, longer.size());
  EXPECT_NE(error_of([&] { load_model(ctx, cut); }).find(cut), std::string::npos);
  std::vector<uint8_t> corrupt = bytes;
  const std::string text(corrupt.begin() + 8, corrupt.begin() + 8 + static_cast<std::ptrdiff_t>(header));
  const size_t pos = text.find("\"data_offsets\":[0,");
  ASSERT_NE(pos, std::string::npos);
  corrupt[8 + pos + 16] = '4';  // first tensor now starts at byte 4: overlap
  write_bytes(cut, corrupt, corrupt.size());
  EXPECT_NE(error_of([&] { load_model(ctx, cut); }).find(cut), std::string::npos);
  EXPECT_THROW(load_model(ctx, dir / "missing.safetensors"), std::runtime_error);
  // The intact file still loads.
  EXPECT_NO_THROW(load_model(ctx, path));
}

TEST_F(Checkpoint, TrainStateRoundTripsAndResumesBitwise) {
  AdamWConfig acfg;
  AdamW opt(ctx, model->params(), acfg);
  for (uint64_t s = 0; s < 2; ++s) {
    random_grads(ctx, model->params(), 100 + s);
    ASSERT_TRUE(opt.step(ctx, 1e-2).applied);
  }
  TrainState st;
  st.step = 2;
  st.rng_state = 0xfedcba9876543210ull;
  st.data_cursor = "chr20:12345 epoch 0";
  st.extra = {{"best_valid", "1.875"}, {"seed", "0"}};
  const std::string wpath = dir / "model.safetensors", spath = dir / "train_state.safetensors";
  save_weights(ctx, *model, wpath);
  save_train_state(ctx, opt, cfg, st, spath);

  std::unique_ptr<MambaModel> resumed = load_model(ctx, wpath);
  AdamW opt2(ctx, resumed->params(), acfg);
  const TrainState back = load_train_state(ctx, opt2, resumed->config(), spath);
  EXPECT_EQ(back.step, st.step);
  EXPECT_EQ(back.rng_state, st.rng_state);
  EXPECT_EQ(back.data_cursor, st.data_cursor);
  EXPECT_EQ(back.extra, st.extra);
  EXPECT_EQ(opt2.steps_taken(), 2);
  auto flat = [&](const ParamStore& ps, const Tensor& t) { return ps.download_flat(ctx, t); };
  EXPECT_EQ(flat(resumed->params(), opt2.exp_avg()), flat(model->params(), opt.exp_avg()));
  EXPECT_EQ(flat(resumed->params(), opt2.exp_avg_sq()), flat(model->params(), opt.exp_avg_sq()));

  // One more step from the original and from the resumed state: identical parameters.
  random_grads(ctx, model->params(), 7);
  random_grads(ctx, resumed->params(), 7);
  opt.step(ctx, 1e-2);
  opt2.step(ctx, 1e-2);
  EXPECT_EQ(flat(resumed->params(), resumed->params().values()), flat(model->params(), model->params().values()));

  // The state belongs to one model config.
  MambaModel other(ctx, test::small_config(24, 2));
  AdamW opt3(ctx, other.params(), acfg);
  EXPECT_NE(error_of([&] { load_train_state(ctx, opt3, other.config(), spath); }).find("config mismatch"),
            std::string::npos);
  // A truncated state file leaves the optimizer untouched.
  const std::vector<uint8_t> bytes = read_bytes(spath);
  write_bytes(spath, bytes, bytes.size() - 3);
  const auto m_before = flat(resumed->params(), opt2.exp_avg());
  EXPECT_THROW(load_train_state(ctx, opt2, resumed->config(), spath), std::runtime_error);
  EXPECT_EQ(flat(resumed->params(), opt2.exp_avg()), m_before);
}

TEST_F(Checkpoint, ConfigJsonFile) {
  const std::string path = dir / "config.json";
  save_config_json(cfg, path);
  EXPECT_EQ(load_config_json(path), cfg);
  write_bytes(path, {'{', '}'}, 2);
  EXPECT_NE(error_of([&] { load_config_json(path); }).find(path), std::string::npos);
}

TEST_F(Checkpoint, FailedWriteLeavesNothing) {
  const std::string path = (dir.path() / "no_such_dir" / "model.safetensors").string();
  EXPECT_THROW(save_weights(ctx, *model, path), std::runtime_error);
  EXPECT_FALSE(fs::exists(path));
}

// An independent reader: Python's json and struct only, no safetensors package.
constexpr const char* kPythonReader = R"PY(
import json, struct, sys
data = open(sys.argv[1], "rb").read()
n = struct.unpack("<Q", data[:8])[0]
assert n % 8 == 0 and 8 + n <= len(data)
header = json.loads(data[8:8 + n])
meta = header.pop("__metadata__")
config = json.loads(meta["config"])
body = data[8 + n:]
end = 0
for name, e in sorted(header.items(), key=lambda kv: kv[1]["data_offsets"][0]):
    begin, stop = e["data_offsets"]
    assert begin == end, name
    assert e["dtype"] == "F32", name
    count = 1
    for s in e["shape"]:
        count *= s
    assert stop - begin == 4 * count, name
    values = struct.unpack("<%df" % count, body[begin:stop])
    total = 0.0
    for v in values:
        total += v
    print("tensor", name, "x".join(str(s) for s in e["shape"]), repr(total))
    end = stop
assert end == len(body)
print("config", config["d_model"], config["n_layer"], config["vocab_size"], meta["format"])
)PY";

TEST_F(Checkpoint, IndependentPythonReaderParsesTheWeights) {
  const char* python = "/usr/bin/python3";
  if (!fs::exists(python)) GTEST_SKIP() << "no " << python << ": the independent safetensors reader was not run";
  const std::string path = dir / "model.safetensors";
  save_weights(ctx, *model, path);
  const std::string script = dir / "reader.py";
  {
    std::ofstream f(script);
    f << kPythonReader;
  }
  const std::string cmd = std::string(python) + " " + script + " " + path + " 2>&1";
  FILE* pipe = popen(cmd.c_str(), "r");
  ASSERT_NE(pipe, nullptr);
  std::string output;
  char buf[4096];
  while (size_t n = fread(buf, 1, sizeof buf, pipe)) output.append(buf, n);
  ASSERT_EQ(pclose(pipe), 0) << output;

  std::map<std::string, std::pair<std::string, double>> seen;
  std::istringstream lines(output);
  std::string kind;
  std::string config_line;
  while (lines >> kind) {
    if (kind == "tensor") {
      std::string name, shape, total;
      lines >> name >> shape >> total;
      seen[name] = {shape, std::stod(total)};
    } else if (kind == "config") {
      std::getline(lines, config_line);
    }
  }
  EXPECT_EQ(config_line, " 16 2 16 genomamba.weights");
  const ParamStore& ps = model->params();
  ASSERT_EQ(seen.size(), ps.size()) << output;
  for (size_t i = 0; i < ps.size(); ++i) {
    const ParamInfo& p = ps.infos()[i];
    ASSERT_TRUE(seen.count(p.name)) << p.name;
    std::string shape;
    for (size_t k = 0; k < p.shape.size(); ++k) shape += (k ? "x" : "") + std::to_string(p.shape[k]);
    EXPECT_EQ(seen[p.name].first, shape) << p.name;
    double total = 0;  // same order, same double accumulation as the Python loop
    for (float v : ps.download(ctx, static_cast<int>(i))) total += v;
    EXPECT_EQ(seen[p.name].second, total) << p.name;
  }
}

}  // namespace
}  // namespace gm
