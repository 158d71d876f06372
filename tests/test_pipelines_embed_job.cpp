// The embed job end to end through run_embed (no CLI): the file's obs, values and
// provenance against independent computations, per-token and float16 output, shards
// merged with merge_embedding_shards equal one unsharded run, done markers, and the
// bad-input cases (each a clear error and no file left behind).
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

#include "genomics/errors.h"
#include "mamba/json.h"
#include "mamba/sha256.h"
#include "pipelines/embed.h"
#include "pipelines/merge.h"
#include "tests/test_pipelines_embed_util.h"
#include "tests/test_support.h"

namespace gm {
namespace {

namespace fs = std::filesystem;
using test::max_rel_diff;

const char* no_env(const char*) { return nullptr; }

std::vector<std::string> files_in(const fs::path& dir) {
  std::vector<std::string> out;
  for (const auto& e : fs::directory_iterator(dir)) out.push_back(e.path().filename().string());
  std::sort(out.begin(), out.end());
  return out;
}

class EmbedJobTest : public ::testing::Test {
 protected:
  void SetUp() override {
    test::save_tiny_model(dir / "model.safetensors");
    fs::create_directory(dir / "out");
    bed = dir / "regions.bed";
    std::ofstream(bed) << "track name=test\n"
                          "chr22\t100\t400\tfirst\t0\t+\n"
                          "chr22\t1000\t1100\tsecond\t0\t-\n"
                          "chr22\t39000\t40001\tthird\t0\t.\n"
                          "chr22\t5\t6\tfourth\t0\t+\n";
  }

  EmbedJob job(const std::string& output) const {
    EmbedJob j;
    j.fasta = test::data_path("setB/genome.fasta");
    j.model = dir / "model.safetensors";
    j.output = output;
    j.regions.bed_path = bed;
    j.threads = 2;
    j.chunk = 300;
    j.command_line = "genomamba embed (test)";
    return j;
  }

  EmbedSummary run(const EmbedJob& j, const EnvLookup& env = no_env) {
    std::ostringstream log;
    return run_embed(j, env, {}, log);
  }

  test::TempDir dir;
  std::string bed;
};

TEST_F(EmbedJobTest, PooledFileHoldsRegionsValuesAndProvenance) {
  EmbedJob j = job(dir / "out/emb.h5ad");
  j.layers = "0,last";
  j.flank = 30;
  const EmbedSummary s = run(j);
  EXPECT_EQ(s.regions, 4);
  EXPECT_EQ(files_in(dir / "out"), std::vector<std::string>{"emb.h5ad"});  // no temp file, no marker

  EmbeddingFileReader r(dir / "out/emb.h5ad");
  EXPECT_EQ(r.spec().layout, EmbeddingLayout::Pooled);
  EXPECT_EQ(r.spec().layers, (std::vector<int>{0, 2}));
  EXPECT_EQ(r.spec().dim, 16);
  const RegionTable t = r.regions();
  EXPECT_EQ(t.index, (std::vector<std::string>{"0", "1", "2", "3"}));
  EXPECT_EQ(t.chrom, (std::vector<std::string>(4, "chr22")));
  EXPECT_EQ(t.start, (std::vector<int64_t>{100, 1000, 39000, 5}));
  EXPECT_EQ(t.end, (std::vector<int64_t>{400, 1100, 40001, 6}));
  EXPECT_EQ(t.name, (std::vector<std::string>{"first", "second", "third", "fourth"}));
  EXPECT_EQ(t.strand, (std::vector<std::string>{"+", "-", ".", "+"}));

  // Values: the mean of one plain forward per region, computed here.
  CpuContext ctx(2);
  auto model = load_model(ctx, dir / "model.safetensors");
  FastaReader fasta(j.fasta);
  for (size_t slot = 0; slot < 2; ++slot) {
    const std::vector<float> stored = r.read_rows(slot, 0, 4);
    for (size_t i = 0; i < 4; ++i) {
      const auto tokens = test::reference_tokens(ctx, *model, fasta, 0, t.start[i], t.end[i], t.strand[i] == "-", 30,
                                                 r.spec().layers[slot]);
      std::vector<float> mean(16, 0.f);
      const size_t rows = tokens.size() / 16;
      for (size_t q = 0; q < rows; ++q)
        for (size_t c = 0; c < 16; ++c) mean[c] += tokens[q * 16 + c] / static_cast<float>(rows);
      const std::vector<float> got(stored.begin() + static_cast<long>(i * 16), stored.begin() + static_cast<long>(i * 16 + 16));
      EXPECT_LT(max_rel_diff(got, mean), 1e-4) << "slot " << slot << " region " << i;
      const auto raw = test::fetch_tokens(fasta, 0, t.start[i], t.end[i]);
      EXPECT_DOUBLE_EQ(t.n_fraction[i], static_cast<double>(std::count(raw.begin(), raw.end(), token::kN)) / raw.size());
    }
  }

  const EmbeddingProvenance& p = r.provenance();
  EXPECT_EQ(p.checkpoint_sha256, sha256_file(dir / "model.safetensors"));
  ASSERT_EQ(p.reference_md5.size(), 1u);
  EXPECT_EQ(p.reference_md5[0], std::make_pair(std::string("chr22"), fasta.md5(0)));
  EXPECT_EQ(ModelConfig::from_json(Json::parse(p.model_config)), test::tiny_embed_config());
  EXPECT_EQ(p.command, "genomamba embed (test)");
  EXPECT_EQ(p.version, GENOMAMBA_VERSION);
  EXPECT_EQ(p.pool, "mean");
  EXPECT_EQ(p.flank, 30);
}

TEST_F(EmbedJobTest, PerTokenFloat16HoldsTheFloat32ValuesRounded) {
  EmbedJob j = job(dir / "out/tok32.h5");
  j.pool = Pool::None;
  j.strand = StrandMode::Both;
  run(j);
  j.output = dir / "out/tok16.h5";
  j.dtype = StoredDtype::F16;
  run(j);
  EmbeddingFileReader r32(dir / "out/tok32.h5"), r16(dir / "out/tok16.h5");
  EXPECT_EQ(r32.spec().layout, EmbeddingLayout::PerToken);
  EXPECT_EQ(r32.offsets(), (std::vector<int64_t>{0, 300, 400, 1401, 1402}));
  EXPECT_EQ(r16.offsets(), r32.offsets());
  EXPECT_EQ(r16.spec().tokens, 1402);
  const auto a = r32.read_rows(0, 0, 1402);
  const auto b = r16.read_rows(0, 0, 1402);
  ASSERT_EQ(a.size(), b.size());
  size_t mismatches = 0;
  for (size_t i = 0; i < a.size(); ++i) mismatches += h5::half_to_float(h5::float_to_half(a[i])) != b[i];
  EXPECT_EQ(mismatches, 0u);
}

TEST_F(EmbedJobTest, ShardsMergedEqualOneUnshardedRun) {
  for (Pool pool : {Pool::Mean, Pool::None}) {
    EmbedJob j = job("");
    j.regions.bed_path.clear();
    j.regions.regions = {"chr22:1-12000", "chr22:20001-21000"};
    j.regions.window = 500;
    j.regions.stride = 400;
    j.pool = pool;
    j.layers = "1,2";
    j.output = dir / ("out/all_" + std::string(pool_name(pool)) + ".h5");
    run(j);
    std::vector<std::string> shards;
    for (int i = 0; i < 3; ++i) {
      j.output = dir / ("out/sharded_" + std::string(pool_name(pool)) + ".h5");
      j.shard = std::to_string(i) + "/3";
      const EmbedSummary s = run(j);
      EXPECT_TRUE(fs::exists(s.output)) << s.output;
      EXPECT_TRUE(fs::exists(done_marker_path(s.output)));
      shards.push_back(s.output);
    }
    std::reverse(shards.begin(), shards.end());  // any order
    const std::string merged = dir / ("out/merged_" + std::string(pool_name(pool)) + ".h5");
    merge_embedding_shards(shards, merged);

    EmbeddingFileReader whole(dir / ("out/all_" + std::string(pool_name(pool)) + ".h5"));
    EmbeddingFileReader joined(merged);
    const RegionTable a = whole.regions(), b = joined.regions();
    EXPECT_EQ(a.index, b.index);
    EXPECT_EQ(a.chrom, b.chrom);
    EXPECT_EQ(a.start, b.start);
    EXPECT_EQ(a.end, b.end);
    EXPECT_EQ(a.n_fraction, b.n_fraction);
    EXPECT_EQ(a.size(), 30u + 3u);
    EXPECT_EQ(joined.spec().rows(), whole.spec().rows());
    if (pool == Pool::None) {
      EXPECT_EQ(joined.offsets(), whole.offsets());
    }
    for (size_t k = 0; k < 2; ++k)
      EXPECT_LT(max_rel_diff(joined.read_rows(k, 0, joined.spec().rows()), whole.read_rows(k, 0, whole.spec().rows())),
                1e-5);
    EXPECT_EQ(joined.provenance().shard_count, 1);
    EXPECT_EQ(joined.provenance().command, whole.provenance().job_command);
  }
}

TEST_F(EmbedJobTest, EmptyShardsAndSlurmVariables) {
  EmbedJob j = job(dir / "out/few.h5ad");
  j.regions.bed_path.clear();
  j.regions.regions = {"chr22:1-100", "chr22:201-300"};
  run(j);
  std::vector<std::string> shards;
  for (const char* id : {"10", "11", "12"}) {  // sbatch --array=10-12
    const std::map<std::string, std::string> vars = {
        {"SLURM_ARRAY_TASK_ID", id}, {"SLURM_ARRAY_TASK_MIN", "10"}, {"SLURM_ARRAY_TASK_COUNT", "3"}};
    const EmbedSummary s = run(j, [&](const char* name) -> const char* {
      const auto it = vars.find(name);
      return it == vars.end() ? nullptr : it->second.c_str();
    });
    shards.push_back(s.output);
  }
  EXPECT_EQ(EmbeddingFileReader(shards[0]).spec().regions, 0);  // 2 regions over 3 shards
  merge_embedding_shards(shards, dir / "out/few_merged.h5ad");
  EmbeddingFileReader a(dir / "out/few.h5ad"), b(dir / "out/few_merged.h5ad");
  EXPECT_EQ(a.regions().start, b.regions().start);
  EXPECT_LT(max_rel_diff(a.read_rows(0, 0, 2), b.read_rows(0, 0, 2)), 1e-5);
}

TEST_F(EmbedJobTest, DoneMarkerSkipsOnlyTheSameJob) {
  EmbedJob j = job(dir / "out/emb.h5ad");
  j.shard = "1/2";
  j.command_line = "genomamba embed -R x.bed --shard 1/2 -o emb.h5ad";
  const EmbedSummary first = run(j);
  ASSERT_FALSE(first.skipped);
  const auto written = fs::last_write_time(first.output);
  j.command_line = "genomamba embed -R x.bed --shard=1/2 -o emb.h5ad";  // the same job
  EXPECT_TRUE(run(j).skipped);
  EXPECT_EQ(fs::last_write_time(first.output), written);

  j.command_line = "genomamba embed -R x.bed --shard 1/2 --flank 10 -o emb.h5ad";
  try {
    run(j);
    FAIL() << "a marker of another command must be an error";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find(".done"), std::string::npos) << e.what();
  }
  j.command_line = "genomamba embed -R x.bed --shard 1/2 -o emb.h5ad";
  test::save_tiny_model(dir / "other.safetensors", 99);
  j.model = dir / "other.safetensors";
  EXPECT_THROW(run(j), std::runtime_error);
}

TEST_F(EmbedJobTest, MergeRejectsIncompleteOrMixedShards) {
  EmbedJob j = job(dir / "out/s.h5ad");
  std::vector<std::string> shards;
  for (int i = 0; i < 3; ++i) {
    j.shard = std::to_string(i) + "/3";
    shards.push_back(run(j).output);
  }
  auto merge_error = [&](const std::vector<std::string>& inputs) {
    try {
      merge_embedding_shards(inputs, dir / "out/merged.h5ad");
    } catch (const std::exception& e) {
      return std::string(e.what());
    }
    return std::string();
  };
  EXPECT_NE(merge_error({shards[0], shards[2]}).find("missing shard(s) 1"), std::string::npos);
  EXPECT_NE(merge_error({shards[0], shards[1], shards[1]}).find("given twice"), std::string::npos);
  j.command_line = "genomamba embed --flank 5";
  j.flank = 5;
  j.output = dir / "out/other.h5ad";
  j.shard = "1/3";
  const std::string foreign = run(j).output;
  EXPECT_NE(merge_error({shards[0], foreign, shards[2]}).find("not shards of one job"), std::string::npos);
  EXPECT_NE(merge_error({}).find("no shard"), std::string::npos);
  EXPECT_NE(merge_error({dir / "regions.bed"}).find("not an HDF5 file"), std::string::npos);
  EXPECT_FALSE(fs::exists(dir / "out/merged.h5ad"));
}

// Runs the job, expects an exception whose message contains `needle`, and no file left.
template <class Error>
void expect_clean_failure(const EmbedJob& j, const std::string& needle) {
  std::ostringstream log;
  try {
    run_embed(j, no_env, {}, log);
    ADD_FAILURE() << "expected an error containing '" << needle << "'";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
  }
  const fs::path out(j.output);
  if (fs::is_directory(out)) return;
  EXPECT_FALSE(fs::exists(out));
  if (fs::is_directory(out.parent_path())) {
    for (const auto& e : fs::directory_iterator(out.parent_path()))
      EXPECT_NE(e.path().filename().string().rfind(out.filename().string() + ".", 0), 0u) << "left behind: " << e.path();
  }
}

TEST_F(EmbedJobTest, BadInputIsAClearErrorAndLeavesNoFile) {
  EmbedJob a = job(dir / "out/a.h5ad");
  a.fasta = test::data_path("setA/grch38.chr20_and_21_10M.fa.gz");
  a.regions.bed_path = test::data_path("setA/HG002_GIAB_v4.2.1.chr20_1-10M.bed");  // last interval passes 10 Mb
  expect_clean_failure<InputError>(a, "past the end of chr20");
  a.regions.bed_path = test::data_path("setA/chr21_exons.ensembl105.contig21.bed");  // names chr21 '21'
  expect_clean_failure<InputError>(a, "the FASTA names it 'chr21'");
  a.regions.bed_path.clear();
  a.regions.regions = {"21:5000001-5001000"};
  expect_clean_failure<InputError>(a, "chr1 vs 1");
  a.regions.regions = {"chr21:9999001-10000100"};
  expect_clean_failure<InputError>(a, "past the end");

  EmbedJob b = job(dir / "out/b.h5ad");
  std::ofstream(dir / "empty.bed") << "# nothing here\n";
  b.regions.bed_path = dir / "empty.bed";
  expect_clean_failure<InputError>(b, "empty");

  EmbedJob c = job(dir / "out/c.h5ad");
  test::save_tiny_model(dir / "vocab32.safetensors", 3, test::tiny_embed_config(16, 2, 32));
  c.model = dir / "vocab32.safetensors";
  expect_clean_failure<InputError>(c, "vocabulary of 32");
  c.model = dir / "missing.safetensors";
  expect_clean_failure<std::runtime_error>(c, "no such checkpoint");

  EmbedJob d = job(dir / "no/such/dir/d.h5ad");
  expect_clean_failure<std::runtime_error>(d, "does not exist");
  d.output = dir / "out";  // a directory
  expect_clean_failure<std::runtime_error>(d, "is a directory");

  EmbedJob e = job(dir / "out/e.h5ad");
  e.layers = "3";
  expect_clean_failure<std::invalid_argument>(e, "outside [0, 2]");
  e.layers = "1,x";
  expect_clean_failure<std::invalid_argument>(e, "not a layer number");
  EXPECT_TRUE(files_in(dir / "out").empty());
}

}  // namespace
}  // namespace gm
