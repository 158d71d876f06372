// RegionEmbedder on real sequence (data/setB chr22, data/setA chr20/chr21): per-token
// outputs equal one plain forward of the model over each region (packing, chunked
// streaming, flanks and strands included), every pooling mode equals the same pooling
// of the per-token output, streaming a long region equals a single pass, --strand both
// is symmetric under swapping a region's strand, N bases are counted, and the batch
// layout never changes the numbers.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>

#include "pipelines/embed_engine.h"
#include "tests/test_pipelines_embed_util.h"
#include "tests/test_support.h"

namespace gm {
namespace {

using test::max_rel_diff;

struct Collected {
  std::vector<int64_t> n_bases;
  std::vector<std::vector<float>> values;  // per layer slot
  std::vector<int64_t> offsets{0};         // per-token rows of region i: offsets[i]..offsets[i+1]
};

class EmbedEngine : public ::testing::Test {
 protected:
  void SetUp() override {
    test::save_tiny_model(dir / "model.safetensors");
    model = load_model(ctx, dir / "model.safetensors");
  }

  EmbedRegion region(const FastaReader& fasta, const std::string& contig, int64_t beg, int64_t end, char strand) {
    return EmbedRegion{*fasta.contigs().find(contig), contig, beg, end, "", strand};
  }

  Collected embed(const FastaReader& fasta, const std::vector<EmbedRegion>& regions, const EngineOptions& o) {
    RegionEmbedder engine(ctx, *model, fasta, o);
    Collected c;
    c.values.resize(o.layers.size());
    size_t next = 0;
    engine.run(regions, [&](const EmbeddedBlock& b) {
      EXPECT_EQ(b.first, next) << "blocks must arrive in region order";
      next += b.count;
      c.n_bases.insert(c.n_bases.end(), b.n_bases.begin(), b.n_bases.end());
      for (size_t k = 0; k < b.values.size(); ++k)
        c.values[k].insert(c.values[k].end(), b.values[k].begin(), b.values[k].end());
      for (size_t i = 1; i < b.offsets.size(); ++i) c.offsets.push_back(c.offsets.back() + b.offsets[i] - b.offsets[i - 1]);
    });
    EXPECT_EQ(next, regions.size());
    return c;
  }

  // Rows of region i (per-token) or its row (pooled) for layer slot k.
  std::vector<float> rows_of(const Collected& c, size_t k, size_t i, bool per_token) const {
    const int64_t d = model->config().d_model;
    const int64_t r0 = per_token ? c.offsets[i] : static_cast<int64_t>(i);
    const int64_t r1 = per_token ? c.offsets[i + 1] : static_cast<int64_t>(i) + 1;
    return std::vector<float>(c.values[k].begin() + r0 * d, c.values[k].begin() + r1 * d);
  }

  // The reference per-token output of a region under a strand mode, rows in region order.
  std::vector<float> expected_tokens(const FastaReader& fasta, const EmbedRegion& r, StrandMode mode, int64_t flank,
                                     int layer) {
    const int64_t d = model->config().d_model;
    auto same = [&] {
      return test::reference_tokens(ctx, *model, fasta, r.contig_id, r.beg, r.end, r.minus(), flank, layer);
    };
    auto opposite = [&] {
      return test::reversed_rows(
          test::reference_tokens(ctx, *model, fasta, r.contig_id, r.beg, r.end, !r.minus(), flank, layer), d);
    };
    if (mode == StrandMode::Fwd) return same();
    if (mode == StrandMode::Rc) return opposite();
    std::vector<float> a = same(), b = opposite();
    for (size_t i = 0; i < a.size(); ++i) a[i] = 0.5f * (a[i] + b[i]);
    return a;
  }

  // Pooling of rows given in a pass's reading order, computed here from the definition.
  std::vector<float> pool_rows(const std::vector<float>& rows, Pool pool) const {
    const int64_t d = model->config().d_model;
    const int64_t P = static_cast<int64_t>(rows.size()) / d;
    std::vector<float> out(static_cast<size_t>(d), 0.f);
    for (int64_t j = 0; j < d; ++j) {
      auto at = [&](int64_t q) { return rows[static_cast<size_t>(q * d + j)]; };
      double v = 0;
      switch (pool) {
        case Pool::Mean:
          for (int64_t q = 0; q < P; ++q) v += at(q);
          v /= static_cast<double>(P);
          break;
        case Pool::Max:
          v = -INFINITY;
          for (int64_t q = 0; q < P; ++q) v = std::max<double>(v, at(q));
          break;
        case Pool::Center: v = P % 2 ? at(P / 2) : 0.5 * (at(P / 2 - 1) + at(P / 2)); break;
        case Pool::Last: v = at(P - 1); break;
        case Pool::None: break;
      }
      out[static_cast<size_t>(j)] = static_cast<float>(v);
    }
    return out;
  }

  test::TempDir dir;
  CpuContext ctx{2};
  std::unique_ptr<MambaModel> model;
};

TEST_F(EmbedEngine, PerTokenEqualsOnePlainForwardPerRegion) {
  const FastaReader fasta(test::data_path("setB/genome.fasta"));
  const std::vector<EmbedRegion> regions = {
      region(fasta, "chr22", 100, 160, '+'),
      region(fasta, "chr22", 5, 37, '-'),         // flank after the end (read first on '-')
      region(fasta, "chr22", 3, 90, '+'),         // left flank clipped at the contig start
      region(fasta, "chr22", 39950, 40001, '+'),  // ends at the contig end
      region(fasta, "chr22", 39990, 40001, '-'),  // '-' flank clipped at the contig end
      region(fasta, "chr22", 1000, 1297, '.'),    // longer than a chunk
      region(fasta, "chr22", 20, 21, '+'),        // one base
  };
  for (StrandMode mode : {StrandMode::Fwd, StrandMode::Rc, StrandMode::Both}) {
    EngineOptions o;
    o.layers = {0, 2};
    o.pool = Pool::None;
    o.strand = mode;
    o.flank = 25;
    o.chunk = 64;  // passes cross chunk boundaries and share lanes
    o.rows = 3;
    const Collected c = embed(fasta, regions, o);
    for (size_t i = 0; i < regions.size(); ++i) {
      EXPECT_EQ(c.offsets[i + 1] - c.offsets[i], regions[i].length());
      for (size_t k = 0; k < o.layers.size(); ++k) {
        const auto want = expected_tokens(fasta, regions[i], mode, o.flank, o.layers[k]);
        EXPECT_LT(max_rel_diff(rows_of(c, k, i, true), want), 1e-4)
            << "region " << i << " layer " << o.layers[k] << " strand " << strand_mode_name(mode);
      }
    }
  }
}

TEST_F(EmbedEngine, EveryPoolingModeEqualsPoolingThePerTokenOutput) {
  const FastaReader fasta(test::data_path("setB/genome.fasta"));
  const std::vector<EmbedRegion> regions = {region(fasta, "chr22", 200, 333, '+'), region(fasta, "chr22", 900, 1020, '-'),
                                            region(fasta, "chr22", 5000, 5001, '.'),
                                            region(fasta, "chr22", 7000, 7400, '+')};
  const int64_t d = model->config().d_model;
  for (StrandMode mode : {StrandMode::Fwd, StrandMode::Both}) {
    EngineOptions base;
    base.layers = {2, 1};
    base.strand = mode;
    base.flank = 10;
    base.chunk = 100;
    base.rows = 2;
    base.pool = Pool::None;
    const Collected tokens = embed(fasta, regions, base);
    // The passes' own per-token outputs (reading order) for the "both" reference.
    EngineOptions rc = base;
    rc.strand = StrandMode::Rc;
    const Collected rc_tokens = embed(fasta, regions, rc);
    EngineOptions fwd = base;
    fwd.strand = StrandMode::Fwd;
    const Collected fwd_tokens = embed(fasta, regions, fwd);
    for (Pool pool : {Pool::Mean, Pool::Max, Pool::Center, Pool::Last}) {
      EngineOptions o = base;
      o.pool = pool;
      const Collected pooled = embed(fasta, regions, o);
      for (size_t i = 0; i < regions.size(); ++i) {
        for (size_t k = 0; k < o.layers.size(); ++k) {
          std::vector<float> want;
          if (mode == StrandMode::Fwd) {
            want = pool_rows(rows_of(tokens, k, i, true), pool);
          } else {
            want = pool_rows(rows_of(fwd_tokens, k, i, true), pool);
            const auto other = pool_rows(test::reversed_rows(rows_of(rc_tokens, k, i, true), d), pool);
            for (size_t j = 0; j < want.size(); ++j) want[j] = 0.5f * (want[j] + other[j]);
          }
          EXPECT_LT(max_rel_diff(rows_of(pooled, k, i, false), want), 1e-5)
              << pool_name(pool) << " region " << i << " strand " << strand_mode_name(mode);
        }
      }
      if (pool == Pool::Mean && mode == StrandMode::Both) {
        // For mean, averaging the passes before or after pooling is the same.
        for (size_t i = 0; i < regions.size(); ++i)
          EXPECT_LT(max_rel_diff(rows_of(pooled, 0, i, false), pool_rows(rows_of(tokens, 0, i, true), Pool::Mean)), 1e-5);
      }
    }
  }
}

TEST_F(EmbedEngine, StreamingALongRegionInChunksEqualsOnePass) {
  const FastaReader fasta(test::data_path("setA/grch38.chr20_and_21_10M.fa.gz"));
  const std::vector<EmbedRegion> regions = {region(fasta, "chr20", 2000000, 2020000, '+')};
  EngineOptions o;
  o.layers = {2};
  o.pool = Pool::None;
  o.chunk = 2048;  // ten chunks through the stream state
  const Collected streamed = embed(fasta, regions, o);
  o.chunk = 1 << 20;
  const Collected single = embed(fasta, regions, o);
  o.rows = 4;  // one pass, four rows: one lane of 4 x 512 columns per step
  o.chunk = 512;
  const Collected one_lane = embed(fasta, regions, o);
  const auto reference = expected_tokens(fasta, regions[0], StrandMode::Fwd, 0, 2);
  EXPECT_LT(max_rel_diff(streamed.values[0], single.values[0]), 1e-5);
  EXPECT_LT(max_rel_diff(streamed.values[0], reference), 1e-4);
  EXPECT_LT(max_rel_diff(one_lane.values[0], single.values[0]), 1e-5);
  o.rows = 1;

  o.pool = Pool::Mean;
  o.chunk = 2048;
  const Collected pooled_streamed = embed(fasta, regions, o);
  o.chunk = 1 << 20;
  const Collected pooled_single = embed(fasta, regions, o);
  EXPECT_LT(max_rel_diff(pooled_streamed.values[0], pooled_single.values[0]), 1e-5);
  EXPECT_LT(max_rel_diff(pooled_streamed.values[0], pool_rows(reference, Pool::Mean)), 1e-5);
}

TEST_F(EmbedEngine, BothStrandsOfARegionEqualBothOfItsReverseComplement) {
  const FastaReader fasta(test::data_path("setB/genome.fasta"));
  const std::vector<EmbedRegion> regions = {region(fasta, "chr22", 3000, 3500, '+'),
                                            region(fasta, "chr22", 3000, 3500, '-')};
  const int64_t d = model->config().d_model;
  for (Pool pool : {Pool::Mean, Pool::Max, Pool::Center, Pool::Last, Pool::None}) {
    EngineOptions o;
    o.layers = {2};
    o.pool = pool;
    o.strand = StrandMode::Both;
    o.flank = 100;
    o.chunk = 256;
    o.rows = 2;
    const Collected c = embed(fasta, regions, o);
    const bool per_token = pool == Pool::None;
    const auto plus = rows_of(c, 0, 0, per_token), minus = rows_of(c, 0, 1, per_token);
    // Per-token rows follow each region's strand: the '-' rows are the '+' rows reversed.
    EXPECT_LT(max_rel_diff(per_token ? test::reversed_rows(minus, d) : minus, plus), 1e-5) << pool_name(pool);
  }
  // ... and one strand alone is not symmetric (the test above would be vacuous otherwise).
  EngineOptions o;
  o.layers = {2};
  o.strand = StrandMode::Fwd;
  const Collected c = embed(fasta, regions, o);
  EXPECT_GT(max_rel_diff(rows_of(c, 0, 0, false), rows_of(c, 0, 1, false)), 1e-3);
}

TEST_F(EmbedEngine, CountsNBasesAndEmbedsAllNRegions) {
  const FastaReader fasta(test::data_path("setA/grch38.chr20_and_21_10M.fa.gz"));
  const int chr21 = *fasta.contigs().find("chr21");
  // chr21 starts with N; find where the sequence begins to place a region across it.
  int64_t first_base = -1;
  for (int64_t pos = 0; first_base < 0 && pos < 10000000; pos += 100000) {
    const auto seq = fasta.fetch(chr21, pos, pos + 100000);
    const auto v = seq.view();
    const auto at = v.find_first_not_of("Nn");
    if (at != std::string_view::npos) first_base = pos + static_cast<int64_t>(at);
  }
  ASSERT_GT(first_base, 2000);
  const std::vector<EmbedRegion> regions = {region(fasta, "chr21", 0, 1500, '+'),
                                            region(fasta, "chr21", first_base - 700, first_base + 300, '-'),
                                            region(fasta, "chr20", 3000000, 3000400, '+')};
  EngineOptions o;
  o.layers = {1};
  o.strand = StrandMode::Both;
  o.flank = 50;
  const Collected c = embed(fasta, regions, o);
  for (size_t i = 0; i < regions.size(); ++i) {
    const auto t = test::fetch_tokens(fasta, regions[i].contig_id, regions[i].beg, regions[i].end);
    const auto n = std::count(t.begin(), t.end(), token::kN);
    EXPECT_EQ(c.n_bases[i], n) << "region " << i;
    for (float v : rows_of(c, 0, i, false)) ASSERT_TRUE(std::isfinite(v));
  }
  EXPECT_EQ(c.n_bases[0], 1500);                          // all N: embedded, counted
  EXPECT_TRUE(c.n_bases[1] > 0 && c.n_bases[1] < 1000);   // partly N
}

TEST_F(EmbedEngine, BatchLayoutAndBlocksDoNotChangeTheResult) {
  const FastaReader fasta(test::data_path("setB/genome.fasta"));
  std::vector<EmbedRegion> regions;
  for (int64_t s = 0; s < 6000; s += 250)
    regions.push_back(region(fasta, "chr22", s, s + 100 + (s * 7) % 290, s % 500 ? '+' : '-'));
  EngineOptions o;
  o.layers = {0, 1, 2};
  o.strand = StrandMode::Both;
  o.flank = 40;
  o.rows = 1;
  o.chunk = 1 << 20;
  const Collected one_row = embed(fasta, regions, o);
  o.rows = 7;
  o.chunk = 500;
  o.block_regions = 5;  // several blocks, each packed on its own
  const Collected packed = embed(fasta, regions, o);
  for (size_t k = 0; k < o.layers.size(); ++k) EXPECT_LT(max_rel_diff(packed.values[k], one_row.values[k]), 1e-5);
  EXPECT_EQ(packed.n_bases, one_row.n_bases);
}

TEST_F(EmbedEngine, RejectsLayersOutsideTheModel) {
  const FastaReader fasta(test::data_path("setB/genome.fasta"));
  EngineOptions o;
  o.layers = {3};
  EXPECT_THROW(RegionEmbedder(ctx, *model, fasta, o), std::invalid_argument);
  o.layers = {};
  EXPECT_THROW(RegionEmbedder(ctx, *model, fasta, o), std::invalid_argument);
  o.layers = {1, 1};
  EXPECT_THROW(RegionEmbedder(ctx, *model, fasta, o), std::invalid_argument);
}

}  // namespace
}  // namespace gm
