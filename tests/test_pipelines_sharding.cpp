// Shard selection (explicit and from SLURM array variables), shard output names,
// contiguous ranges that cover every item once, and done markers.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <map>

#include "pipelines/sharding.h"
#include "tests/test_support.h"

namespace gm {
namespace {

EnvLookup env_of(std::map<std::string, std::string> vars) {
  return [vars = std::move(vars)](const char* name) -> const char* {
    const auto it = vars.find(name);
    return it == vars.end() ? nullptr : it->second.c_str();
  };
}

TEST(Sharding, ExplicitAndSlurm) {
  const auto none = env_of({});
  EXPECT_EQ(resolve_shard("", none).count, 1);
  const auto s = resolve_shard("2/5", none);
  EXPECT_EQ(s.index, 2);
  EXPECT_EQ(s.count, 5);
  EXPECT_THROW(resolve_shard("5/5", none), std::invalid_argument);
  EXPECT_THROW(resolve_shard("1of5", none), std::invalid_argument);
  EXPECT_THROW(resolve_shard("x/5", none), std::invalid_argument);
  // sbatch --array=10-30:10 -> ids 10, 20, 30; count 3.
  const auto slurm = resolve_shard("", env_of({{"SLURM_ARRAY_TASK_ID", "20"},
                                              {"SLURM_ARRAY_TASK_MIN", "10"},
                                              {"SLURM_ARRAY_TASK_STEP", "10"},
                                              {"SLURM_ARRAY_TASK_COUNT", "3"}}));
  EXPECT_EQ(slurm.index, 1);
  EXPECT_EQ(slurm.count, 3);
  // The explicit option wins over the environment.
  EXPECT_EQ(resolve_shard("0/2", env_of({{"SLURM_ARRAY_TASK_ID", "1"}, {"SLURM_ARRAY_TASK_COUNT", "2"}})).index, 0);
  EXPECT_THROW(resolve_shard("", env_of({{"SLURM_ARRAY_TASK_ID", "1"}})), std::invalid_argument);
}

TEST(Sharding, RangesCoverEveryItemOnceInOrder) {
  for (size_t n : {0u, 1u, 7u, 100u}) {
    for (int count : {1, 3, 8}) {
      size_t next = 0;
      for (int i = 0; i < count; ++i) {
        const auto [b, e] = shard_range({i, count}, n);
        EXPECT_EQ(b, next);
        EXPECT_LE(b, e);
        next = e;
      }
      EXPECT_EQ(next, n);
    }
  }
}

TEST(Sharding, OutputNames) {
  EXPECT_EQ(shard_output_path("out/emb.h5", {2, 10}), "out/emb.shard-00002-of-00010.h5");
  EXPECT_EQ(shard_output_path("x.vcf.gz", {0, 3}), "x.shard-00000-of-00003.vcf.gz");
  EXPECT_EQ(shard_output_path("a.b/scores", {1, 2}), "a.b/scores.shard-00001-of-00002");
  EXPECT_EQ(shard_output_path("emb.h5", {0, 1}), "emb.h5");
  EXPECT_EQ(command_without_shard("genomamba embed --shard 1/4 -o x.h5"), "genomamba embed -o x.h5");
  EXPECT_EQ(command_without_shard("genomamba embed --shard=1/4 -o x.h5"), "genomamba embed -o x.h5");
}

TEST(Sharding, DoneMarkers) {
  test::TempDir dir;
  const std::string out = dir / "emb.h5";
  const DoneMarker job{"genomamba embed -o emb.h5", "abc"};
  EXPECT_FALSE(shard_already_done(out, job));
  std::ofstream(out) << "data";
  write_done_marker(out, job);
  EXPECT_TRUE(shard_already_done(out, job));
  EXPECT_THROW(shard_already_done(out, {"genomamba embed -o emb.h5 --pool max", "abc"}), std::runtime_error);
  EXPECT_THROW(shard_already_done(out, {job.command, "def"}), std::runtime_error);
  std::filesystem::remove(out);  // marker without output: recompute
  EXPECT_FALSE(shard_already_done(out, job));
}

}  // namespace
}  // namespace gm
