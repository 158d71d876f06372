// `genomamba score` on the GPU against the CPU reference: the same records scored with
// --device cuda (fp32, then bf16) and --device cpu, in window mode and with full context,
// give the same values within the precision's tolerance. Skipped without a CUDA device.
#include <gtest/gtest.h>

#include <cmath>
#include <sstream>

#include "mamba/context.h"
#include "pipelines/score.h"
#include "tests/test_pipelines_score_support.h"

namespace gm {
namespace {

using test::data_path;

// Norm-wise relative difference of the finite values; the missing ones must agree.
double relative_difference(const std::vector<double>& got, const std::vector<double>& ref) {
  if (got.size() != ref.size()) return INFINITY;
  double num = 0, den = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    if (std::isnan(got[i]) != std::isnan(ref[i])) return INFINITY;
    if (std::isnan(ref[i])) continue;
    if (!std::isfinite(got[i])) return INFINITY;
    num += (got[i] - ref[i]) * (got[i] - ref[i]);
    den += ref[i] * ref[i];
  }
  return den > 0 ? std::sqrt(num / den) : INFINITY;
}

TEST(ScoreCuda, GpuScoresEqualCpuScores) {
  if (!cuda_available()) GTEST_SKIP() << "no CUDA device";
  test::TempDir dir;
  const std::string weights = test::save_tiny_model(dir / "model.safetensors", 32, 2);
  std::ostringstream log;
  for (const bool full : {false, true}) {
    SCOPED_TRACE(full ? "full context" : "window mode");
    auto run = [&](Device device, Precision precision, const std::string& name) {
      ScoreOptions o = test::score_options(data_path("setB/dbsnp_146.hg38.vcf.gz"), data_path("setB/genome.fasta"),
                                           weights, dir / (name + ".vcf.gz"));
      o.scores = parse_score_selection("llr,dll,emb");
      o.device = device;
      o.precision = precision;
      o.full_context = full;
      o.context = 256;
      o.window = 129;
      o.chunk = 1024;
      o.regions = {"chr22:1-2000", "chr22:20000-21000", "chr22:39000-40001"};
      o.tsv = dir / (name + ".tsv");
      run_score(o, log);
      return test::read_score_tsv(o.tsv);
    };
    const auto cpu = run(Device::cpu(), Precision::FP32, "cpu");
    ASSERT_GT(cpu.size(), 100u);
    for (const Precision p : {Precision::FP32, Precision::BF16}) {
      SCOPED_TRACE(precision_name(p));
      const auto gpu = run(Device::cuda(0), p, std::string("gpu_") + precision_name(p));
      ASSERT_EQ(gpu.size(), cpu.size());
      std::vector<double> g[3], c[3];
      for (size_t i = 0; i < cpu.size(); ++i) {
        ASSERT_EQ(gpu[i].pos, cpu[i].pos);
        ASSERT_EQ(gpu[i].flags, cpu[i].flags);
        g[0].push_back(gpu[i].llr), c[0].push_back(cpu[i].llr);
        g[1].push_back(gpu[i].dll), c[1].push_back(cpu[i].dll);
        g[2].push_back(gpu[i].emb), c[2].push_back(cpu[i].emb);
      }
      // bf16 activations carry ~3 significant digits through every layer.
      const double bound = p == Precision::FP32 ? 1e-3 : 0.1;
      EXPECT_LT(relative_difference(g[0], c[0]), bound) << "GM_LLR";
      EXPECT_LT(relative_difference(g[1], c[1]), bound) << "GM_DLL";
      // EMB distances of SNVs are tiny (1 - cos of nearly equal means): bf16 only keeps their scale.
      EXPECT_LT(relative_difference(g[2], c[2]), p == Precision::FP32 ? 1e-2 : 1.0) << "GM_EMB";
    }
  }
}

}  // namespace
}  // namespace gm
