// Sharded `genomamba score` and merge_vcf_shards: shards of a window-mode job (blocks
// along the contig, with and without an index) merged in any order equal the unsharded
// output record for record; a finished shard is skipped on rerun; a changed command is
// refused; merging refuses missing, duplicated and foreign shards.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <sstream>

#include "genomics/errors.h"
#include "pipelines/merge.h"
#include "pipelines/score.h"
#include "tests/cli_runner.h"
#include "tests/test_pipelines_score_support.h"

namespace gm {
namespace {

namespace fs = std::filesystem;
using test::data_path;
using test::shell_quote;

std::string records_of(const std::string& vcf) {
  test::TempDir d;
  const std::string cmd = "bcftools view -H " + shell_quote(vcf) + " > " + shell_quote(d / "out");
  EXPECT_EQ(std::system(cmd.c_str()), 0) << cmd;
  return test::slurp(d / "out");
}

std::string header_of(const std::string& vcf) {
  test::TempDir d;
  const std::string cmd = "bcftools view -h " + shell_quote(vcf) + " > " + shell_quote(d / "out");
  EXPECT_EQ(std::system(cmd.c_str()), 0) << cmd;
  return test::slurp(d / "out");
}

// Two score VCFs hold the same records with the same fields, and scores equal within
// float rounding (records batched differently can differ in the last bits).
void expect_same_scored_records(const std::string& a, const std::string& b) {
  test::TempDir d;
  auto fields = [&](const std::string& vcf, const std::string& name) {
    const std::string cmd = "bcftools annotate -x INFO/GM_LLR,INFO/GM_DLL " + shell_quote(vcf) +
                            " | bcftools view -H > " + shell_quote(d / name);
    EXPECT_EQ(std::system(cmd.c_str()), 0) << cmd;
    return test::slurp(d / name);
  };
  auto scores = [&](const std::string& vcf, const std::string& name) {
    const std::string cmd = "bcftools query -f '%INFO/GM_LLR,%INFO/GM_DLL\\n' " + shell_quote(vcf) + " | tr ',' '\\n' > " +
                            shell_quote(d / name);
    EXPECT_EQ(std::system(cmd.c_str()), 0) << cmd;
    std::istringstream in(test::slurp(d / name));
    std::vector<double> v;
    std::string x;
    while (std::getline(in, x)) v.push_back(test::parse_score(x));
    return v;
  };
  EXPECT_TRUE(fields(a, "fa") == fields(b, "fb")) << a << " and " << b << " differ in their records";
  const auto va = scores(a, "sa"), vb = scores(b, "sb");
  ASSERT_EQ(va.size(), vb.size());
  int differ = 0;
  for (size_t i = 0; i < va.size(); ++i) differ += !test::same_score(va[i], vb[i], 1e-5, 1e-4);
  EXPECT_EQ(differ, 0) << "of " << va.size() << " values";
  EXPECT_GT(va.size(), 0u);
}

class ScoreShards : public ::testing::Test {
 protected:
  void SetUp() override { weights_ = test::save_tiny_model(dir_ / "model.safetensors", 16, 1); }

  ScoreOptions options(const std::string& vcf, const std::string& out) {
    ScoreOptions o = test::score_options(vcf, data_path("setB/genome.fasta"), weights_, out);
    o.context = 24;
    o.window = 9;
    o.shard_block = 7000;  // 6 blocks along the 40,001 bp contig
    o.command_line = "genomamba score -f genome.fasta dbsnp.vcf.gz -o " + out;
    return o;
  }

  std::vector<std::string> run_shards(ScoreOptions o, int count) {
    std::vector<std::string> outputs;
    for (int i = 0; i < count; ++i) {
      o.shard = ShardSpec{i, count};
      const ScoreSummary s = run_score(o, log_);
      EXPECT_FALSE(s.skipped);
      outputs.push_back(s.output);
      EXPECT_TRUE(fs::exists(done_marker_path(s.output))) << s.output;
    }
    return outputs;
  }

  test::TempDir dir_;
  std::string weights_;
  std::ostringstream log_;
};

TEST_F(ScoreShards, MergedShardsEqualTheUnshardedOutput) {
  const std::string vcf = data_path("setB/dbsnp_146.hg38.vcf.gz");
  const std::string whole = dir_ / "whole.vcf.gz";
  run_score(options(vcf, whole), log_);

  auto shards = run_shards(options(vcf, dir_ / "sharded.vcf.gz"), 4);
  EXPECT_EQ(shards[1], dir_ / "sharded.shard-00001-of-00004.vcf.gz");
  size_t records = 0;
  for (const auto& s : shards) {
    const std::string r = records_of(s);
    records += static_cast<size_t>(std::count(r.begin(), r.end(), '\n'));
    EXPECT_NE(header_of(s).find("##genomamba_shard="), std::string::npos);
  }
  EXPECT_EQ(records, 2174u) << "every record in exactly one shard";

  std::reverse(shards.begin(), shards.end());  // any order
  const std::string merged = dir_ / "merged.bcf";
  merge_vcf_shards(shards, merged, 'b', true);
  EXPECT_TRUE(fs::exists(merged + ".csi"));
  expect_same_scored_records(merged, whole);
  const std::string header = header_of(merged);
  EXPECT_EQ(header.find("##genomamba_shard"), std::string::npos);
  EXPECT_NE(header.find("##genomamba_command=" + options(vcf, dir_ / "sharded.vcf.gz").command_line),
            std::string::npos);

  // The same shards from an input without index (read whole, filtered) are the same.
  const std::string plain = dir_ / "plain.vcf";
  const std::string cmd = "bcftools view -Ov -o " + shell_quote(plain) + " " + shell_quote(vcf);
  ASSERT_EQ(std::system(cmd.c_str()), 0);
  const auto unindexed = run_shards(options(plain, dir_ / "unindexed.vcf.gz"), 4);
  for (size_t i = 0; i < unindexed.size(); ++i) {
    EXPECT_EQ(records_of(unindexed[i]), records_of(shards[3 - i])) << i << ": same records, same batches";
  }
}

TEST_F(ScoreShards, FinishedShardsAreSkippedAndAChangedCommandIsRefused) {
  const std::string vcf = data_path("setB/mills_and_1000G.indels.vcf.gz");
  ScoreOptions o = options(vcf, dir_ / "m.vcf.gz");
  o.shard = ShardSpec{0, 2};
  const ScoreSummary first = run_score(o, log_);
  ASSERT_FALSE(first.skipped);
  const auto written = fs::last_write_time(first.output);
  const ScoreSummary again = run_score(o, log_);
  EXPECT_TRUE(again.skipped);
  EXPECT_EQ(fs::last_write_time(first.output), written);
  o.command_line += " --window 99";
  EXPECT_THROW(run_score(o, log_), std::runtime_error);
}

TEST_F(ScoreShards, MergeRefusesIncompleteOrForeignShardSets) {
  const std::string vcf = data_path("setB/mills_and_1000G.indels.vcf.gz");
  const auto shards = run_shards(options(vcf, dir_ / "a.vcf.gz"), 3);
  auto message = [&](const std::vector<std::string>& files) {
    try {
      merge_vcf_shards(files, dir_ / "m.vcf.gz", 'z', false);
    } catch (const std::exception& e) {
      return std::string(e.what());
    }
    return std::string();
  };
  EXPECT_NE(message({shards[0], shards[2]}).find("missing"), std::string::npos);
  EXPECT_NE(message({shards[0], shards[1], shards[1], shards[2]}).find("twice"), std::string::npos);
  // A shard made with another model.
  const std::string other_weights = test::save_tiny_model(dir_ / "other.safetensors", 16, 1, 99);
  ScoreOptions o = options(vcf, dir_ / "b.vcf.gz");
  o.weights = other_weights;
  o.shard = ShardSpec{1, 3};
  const ScoreSummary foreign = run_score(o, log_);
  EXPECT_NE(message({shards[0], foreign.output, shards[2]}).find("model"), std::string::npos);
  // An unsharded output is not a shard.
  const std::string whole = dir_ / "whole.vcf.gz";
  run_score(options(vcf, whole), log_);
  EXPECT_NE(message({whole}).find("not a shard"), std::string::npos);
  EXPECT_FALSE(fs::exists(dir_ / "m.vcf.gz")) << "a refused merge writes nothing";
  // The complete set merges.
  merge_vcf_shards(shards, dir_ / "m.vcf.gz", 'z', false);
  expect_same_scored_records(dir_ / "m.vcf.gz", whole);
}

}  // namespace
}  // namespace gm
