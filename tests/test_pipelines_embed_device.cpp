// RegionEmbedder's device-side pooling: pooled values over regions longer than one reduced
// piece (4,096 positions) and spread over several steps equal pooling the per-token output
// (CPU), and the CUDA engine gives the CPU engine's values (fp32 tight, bf16 loose) for
// every pooling mode, with flanks, both strands and streaming. The CUDA test is skipped
// without a device.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <stdexcept>

#include "pipelines/embed_engine.h"
#include "tests/test_pipelines_embed_util.h"
#include "tests/test_support.h"

namespace gm {
namespace {

using test::max_rel_diff;

// Values of every region (pooled: one row each; per token: all rows), layer slots concatenated.
std::vector<float> embed_all(Context& ctx, MambaModel& model, const FastaReader& fasta,
                             const std::vector<EmbedRegion>& regions, const EngineOptions& o) {
  RegionEmbedder engine(ctx, model, fasta, o);
  std::vector<std::vector<float>> slots(o.layers.size());
  engine.run(regions, [&](const EmbeddedBlock& b) {
    for (size_t k = 0; k < b.values.size(); ++k) slots[k].insert(slots[k].end(), b.values[k].begin(), b.values[k].end());
  });
  std::vector<float> out;
  for (const auto& s : slots) out.insert(out.end(), s.begin(), s.end());
  return out;
}

std::vector<EmbedRegion> long_and_short_regions(const FastaReader& fasta) {
  const int id = *fasta.contigs().find("chr20");
  return {EmbedRegion{id, "chr20", 3000000, 3009001, "", '+'},  // three pieces, several steps
          EmbedRegion{id, "chr20", 3100000, 3100500, "", '-'},
          EmbedRegion{id, "chr20", 3200000, 3204096, "", '.'},  // exactly one full piece
          EmbedRegion{id, "chr20", 3300000, 3300001, "", '+'}};
}

class EmbedDevicePooling : public ::testing::Test {
 protected:
  void SetUp() override { test::save_tiny_model(dir / "model.safetensors"); }
  test::TempDir dir;
};

TEST_F(EmbedDevicePooling, PiecesOfLongRegionsPoolLikeThePerTokenOutput) {
  CpuContext ctx(2);
  auto model = load_model(ctx, dir / "model.safetensors");
  const FastaReader fasta(test::data_path("setA/grch38.chr20_and_21_10M.fa.gz"));
  const auto regions = long_and_short_regions(fasta);
  const int64_t d = model->config().d_model;
  EngineOptions o;
  o.layers = {2};
  o.flank = 300;
  o.chunk = 6000;  // the 9,001-base region: two steps, pieces split at 4,096 and at the step
  o.rows = 2;
  o.pool = Pool::None;
  const std::vector<float> tokens = embed_all(ctx, *model, fasta, regions, o);
  for (Pool pool : {Pool::Mean, Pool::Max}) {
    o.pool = pool;
    const std::vector<float> pooled = embed_all(ctx, *model, fasta, regions, o);
    ASSERT_EQ(pooled.size(), regions.size() * static_cast<size_t>(d));
    int64_t row = 0;
    for (size_t i = 0; i < regions.size(); ++i) {
      std::vector<double> want(static_cast<size_t>(d), pool == Pool::Max ? -INFINITY : 0.0);
      const int64_t P = regions[i].length();
      for (int64_t q = 0; q < P; ++q, ++row)
        for (int64_t j = 0; j < d; ++j) {
          const double v = tokens[static_cast<size_t>(row * d + j)];
          want[static_cast<size_t>(j)] = pool == Pool::Max ? std::max(want[static_cast<size_t>(j)], v)
                                                           : want[static_cast<size_t>(j)] + v / static_cast<double>(P);
        }
      for (int64_t j = 0; j < d; ++j)
        EXPECT_NEAR(pooled[i * static_cast<size_t>(d) + static_cast<size_t>(j)], want[static_cast<size_t>(j)],
                    1e-5 * (1 + std::fabs(want[static_cast<size_t>(j)])))
            << pool_name(pool) << " region " << i << " column " << j;
    }
  }
}

TEST_F(EmbedDevicePooling, RejectsStepsOf2To31TokensOrMore) {
  CpuContext ctx(1);
  auto model = load_model(ctx, dir / "model.safetensors");
  const FastaReader fasta(test::data_path("setA/grch38.chr20_and_21_10M.fa.gz"));
  EngineOptions o;
  o.layers = {1};
  o.rows = 4;
  o.chunk = int64_t{1} << 29;  // 2^31 tokens a forward
  EXPECT_THROW(RegionEmbedder(ctx, *model, fasta, o), std::invalid_argument);
  o.chunk = (int64_t{1} << 29) - 1;
  EXPECT_NO_THROW(RegionEmbedder(ctx, *model, fasta, o));
}

TEST_F(EmbedDevicePooling, CudaEngineEqualsCpuEngine) {
  if (!cuda_available()) GTEST_SKIP() << "no CUDA device";
  CpuContext cpu(2);
  auto cpu_model = load_model(cpu, dir / "model.safetensors");
  const FastaReader fasta(test::data_path("setA/grch38.chr20_and_21_10M.fa.gz"));
  const auto regions = long_and_short_regions(fasta);
  for (Pool pool : {Pool::Mean, Pool::Max, Pool::Center, Pool::Last, Pool::None}) {
    for (StrandMode strand : {StrandMode::Fwd, StrandMode::Both}) {
      EngineOptions o;
      o.layers = {2, 0, 1};
      o.flank = 300;
      o.chunk = 6000;
      o.rows = 2;
      o.pool = pool;
      o.strand = strand;
      const std::vector<float> want = embed_all(cpu, *cpu_model, fasta, regions, o);
      for (Precision precision : {Precision::FP32, Precision::BF16}) {
        SCOPED_TRACE(std::string(pool_name(pool)) + " " + strand_mode_name(strand) + " " + precision_name(precision));
        auto gpu = Context::create(Device::cuda(0), 0, precision);
        auto gpu_model = load_model(*gpu, dir / "model.safetensors");
        const std::vector<float> got = embed_all(*gpu, *gpu_model, fasta, regions, o);
        EXPECT_LT(max_rel_diff(got, want), precision == Precision::FP32 ? 1e-4 : 5e-2);
      }
    }
  }
}

}  // namespace
}  // namespace gm
