// `genomamba pretrain --device cuda` on the bundled genome against the CPU run from the
// same seed: per-step training losses over the first 50 steps agree within 1e-4
// relative in fp32 mode and within 1e-2 in bf16 (the default). Two CUDA runs with the
// same seed give bitwise identical weights. Skipped (visibly) without a GPU.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <map>

#include "mamba/context.h"
#include "mamba/safetensors.h"
#include "tests/cli_runner.h"

namespace gm {
namespace {

namespace fs = std::filesystem;

std::vector<std::string> run_args(const std::string& out_dir, const std::string& device, const std::string& precision) {
  return {"pretrain", "--model", (test::source_dir() / "configs/tiny.ini").string(),
          test::data_path("setA/grch38.chr20_and_21_10M.fa.gz"), "-o", out_dir, "--train-region", "chr20",
          "--valid-region", "chr21:5100001-5400000", "--seq-len", "512", "--batch-size", "4", "--steps", "50",
          "--warmup", "10", "--lr", "0.003", "--eval-seq-len", "2048", "--eval-max-windows", "8", "--seed", "3",
          "--device", device, "--precision", precision};
}

// step -> loss from a run's metrics.jsonl
std::map<int, double> losses(const std::string& run_dir) {
  std::map<int, double> out;
  std::istringstream in(test::slurp(run_dir + "/metrics.jsonl"));
  std::string line;
  while (std::getline(in, line)) {
    if (line.find("\"event\":\"train\"") == std::string::npos) continue;
    const auto s = line.find("\"step\":"), l = line.find("\"loss\":");
    out[std::stoi(line.substr(s + 7))] = std::stod(line.substr(l + 7));
  }
  return out;
}

std::map<std::string, std::vector<float>> weights(const std::string& run_dir) {
  const auto f = SafetensorsFile::open(run_dir + "/checkpoints/step-00000050/model.safetensors");
  std::map<std::string, std::vector<float>> out;
  for (const auto& n : f.names()) out[n] = f.read_f32(n);
  return out;
}

TEST(CliPretrainCuda, LossCurveMatchesTheCpu) {
  if (!cuda_available()) GTEST_SKIP() << "no CUDA device";
  test::TempDir dir;
  const auto cpu = test::run_genomamba(run_args(dir / "cpu", "cpu", "fp32"));
  ASSERT_EQ(cpu.status, 0) << cpu.err;
  const auto ref = losses(dir / "cpu");
  ASSERT_EQ(ref.size(), 50u);
  for (const auto& [precision, tol] : {std::pair<std::string, double>{"fp32", 1e-4}, {"bf16", 1e-2}}) {
    SCOPED_TRACE(precision);
    const auto gpu = test::run_genomamba(run_args(dir / precision, "cuda", precision));
    ASSERT_EQ(gpu.status, 0) << gpu.err;
    const auto got = losses(dir / precision);
    ASSERT_EQ(got.size(), ref.size());
    double worst = 0;
    for (const auto& [step, loss] : ref) {
      ASSERT_TRUE(std::isfinite(got.at(step)));
      worst = std::max(worst, std::abs(got.at(step) - loss) / std::abs(loss));
    }
    std::cout << precision << ": worst relative loss difference over 50 steps " << worst << "\n";
    EXPECT_LE(worst, tol);
  }
  // Determinism: a second bf16 run gives bitwise the same weights.
  const auto again = test::run_genomamba(run_args(dir / "bf16-again", "cuda", "bf16"));
  ASSERT_EQ(again.status, 0) << again.err;
  const auto a = weights(dir / "bf16"), b = weights(dir / "bf16-again");
  for (const auto& [name, v] : a)
    EXPECT_EQ(0, std::memcmp(v.data(), b.at(name).data(), v.size() * sizeof(float))) << name;
}

}  // namespace
}  // namespace gm
