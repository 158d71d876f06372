// End-to-end tests of `genomamba embed` (the built binary): real BEDs of data/setA and
// data/setB embedded with a tiny checkpoint, the files read back by an independent
// Python reader (Debian's /usr/bin/python3 with h5py and anndata: tests/embed_check.py),
// sharding through --shard and the SLURM variables with rerun skipping, and the
// bad-input cases (message on stderr, non-zero exit, no file).
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "tests/cli_runner.h"
#include "tests/test_pipelines_embed_util.h"
#include "tests/test_support.h"

namespace gm {
namespace {

namespace fs = std::filesystem;
using test::data_path;
using test::run_genomamba;
using test::shell_quote;

const char* const kPython = "/usr/bin/python3";

// Empty when /usr/bin/python3 has h5py and anndata, else why not.
std::string python_missing() {
  if (!fs::exists(kPython)) return std::string(kPython) + " does not exist";
  const std::string cmd = std::string(kPython) + " -c 'import h5py, anndata' > /dev/null 2>&1";
  if (std::system(cmd.c_str()) != 0) return std::string(kPython) + " lacks h5py or anndata (python3-h5py, python3-anndata)";
  return "";
}

int run_check(const std::vector<std::string>& args, std::string& output) {
  test::TempDir tmp;
  std::string cmd = std::string(kPython) + " " + shell_quote((test::source_dir() / "tests/embed_check.py").string());
  for (const auto& a : args) cmd += " " + shell_quote(a);
  cmd += " > " + shell_quote(tmp / "out") + " 2>&1";
  const int raw = std::system(cmd.c_str());
  output = test::slurp(tmp / "out");
  return WIFEXITED(raw) ? WEXITSTATUS(raw) : -1;
}

class CliEmbed : public ::testing::Test {
 protected:
  void SetUp() override { test::save_tiny_model(model); }
  test::TempDir dir;
  std::string model = dir / "model.safetensors";
};

TEST_F(CliEmbed, RealBedReadBackByAnndataAndH5py) {
  const std::string missing = python_missing();
  if (!missing.empty()) GTEST_SKIP() << missing;
  const std::string ref = data_path("setA/grch38.chr20_and_21_10M.fa.gz");
  const std::string bed = data_path("setA/chr21_roi.bed");
  const std::string pooled = dir / "roi.h5ad", tokens = dir / "roi_tokens.h5";
  auto r = run_genomamba({"embed", "-m", model, "-R", bed, "--layer", "2,1", "--flank", "200", "--chunk", "4096",
                          "-@", "2", "-o", pooled, ref});
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_NE(r.err.find("embedded 121 regions"), std::string::npos) << r.err;
  r = run_genomamba({"embed", "-m", model, "-R", bed, "--layer", "2,1", "--flank", "200", "--chunk", "4096",
                     "--pool", "none", "-@", "2", "-o", tokens, ref});
  ASSERT_EQ(r.status, 0) << r.err;
  std::string out;
  EXPECT_EQ(run_check({"--pooled", pooled, "--tokens", tokens, "--bed", bed, "--fasta", ref, "--checkpoint", model,
                       "--layers", "2,1"},
                      out),
            0)
      << out;

  // setB: a BED with strands, both strands averaged, float16 values.
  const std::string refb = data_path("setB/genome.fasta");
  const std::string bedb = dir / "stranded.bed";
  std::ofstream(bedb) << "chr22\t0\t1500\tstart\t0\t+\nchr22\t20000\t20800\tmiddle\t0\t-\nchr22\t39001\t40001\tend\t0\t+\n";
  const std::string pooled16 = dir / "b16.h5ad", tokens16 = dir / "b16_tokens.h5";
  for (const auto& [pool, path] : {std::pair<std::string, std::string>{"mean", pooled16}, {"none", tokens16}}) {
    r = run_genomamba({"embed", "-m", model, "-R", bedb, "--strand", "both", "--dtype", "float16", "--pool", pool,
                       "--flank", "50", "-o", path, refb});
    ASSERT_EQ(r.status, 0) << r.err;
  }
  // float16 means of float16 tokens: compare at float16 precision, so only the pooled file.
  EXPECT_EQ(run_check({"--pooled", pooled16, "--bed", bedb, "--fasta", refb, "--checkpoint", model, "--layers", "2",
                       "--dtype", "float16"},
                      out),
            0)
      << out;
}

TEST_F(CliEmbed, AllNRegionsAreFlaggedAndCounted) {
  const std::string ref = data_path("setA/grch38.chr20_and_21_10M.fa.gz");
  const auto r = run_genomamba({"embed", "-m", model, "-r", "chr21:1-5000", "-r", "chr20:100001-101000", "-o",
                                dir / "n.h5ad", ref});
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_NE(r.err.find("warning: 1 of 2 regions are entirely N"), std::string::npos) << r.err;
}

TEST_F(CliEmbed, ShardsFromOptionAndSlurmSkipWhenDone) {
  const std::string ref = data_path("setB/genome.fasta");
  const std::vector<std::string> base = {"embed", "-m", model, "--window", "2000", "-o", dir / "w.h5ad", ref};
  auto with = [&](std::vector<std::string> extra) {
    std::vector<std::string> a = base;
    a.insert(a.end(), extra.begin(), extra.end());
    return a;
  };
  auto r = run_genomamba(with({"--shard", "0/2"}));
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_TRUE(fs::exists(dir / "w.shard-00000-of-00002.h5ad"));
  EXPECT_TRUE(fs::exists(dir / "w.shard-00000-of-00002.h5ad.done"));
  ::setenv("SLURM_ARRAY_TASK_ID", "1", 1);
  ::setenv("SLURM_ARRAY_TASK_COUNT", "2", 1);
  r = run_genomamba(base);
  ::setenv("SLURM_ARRAY_TASK_ID", "0", 1);
  const auto again = run_genomamba(base);  // shard 0 from SLURM: the same job as --shard 0/2
  ::unsetenv("SLURM_ARRAY_TASK_ID");
  ::unsetenv("SLURM_ARRAY_TASK_COUNT");
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_TRUE(fs::exists(dir / "w.shard-00001-of-00002.h5ad"));
  EXPECT_EQ(again.status, 0) << again.err;
  EXPECT_NE(again.err.find("already complete"), std::string::npos) << again.err;
  r = run_genomamba(with({"--shard", "0/2", "--flank", "7"}));
  EXPECT_EQ(r.status, 2);
  EXPECT_NE(r.err.find("records another job"), std::string::npos) << r.err;
}

// Non-zero exit, the message on stderr, and nothing left in `out_dir`.
void expect_failure(const std::vector<std::string>& args, int status, const std::string& needle,
                    const fs::path& out_dir) {
  const auto r = run_genomamba(args);
  EXPECT_EQ(r.status, status) << r.err;
  EXPECT_NE(r.err.find(needle), std::string::npos) << r.err;
  EXPECT_EQ(r.err.rfind("genomamba embed: ", 0), 0u) << r.err;
  EXPECT_TRUE(fs::is_empty(out_dir)) << "files left in " << out_dir;
}

TEST_F(CliEmbed, BadInputExitsNonZeroWithAClearMessageAndNoFile) {
  const std::string ref = data_path("setA/grch38.chr20_and_21_10M.fa.gz");
  fs::create_directory(dir / "out");
  const fs::path outd = dir / "out";
  const std::string out = outd / "e.h5ad";
  expect_failure({"embed", "-m", model, "-R", data_path("setA/chr21_exons.ensembl105.contig21.bed"), "-o", out, ref}, 2,
                 "the FASTA names it 'chr21'", outd);
  expect_failure({"embed", "-m", model, "-R", data_path("setA/HG002_GIAB_v4.2.1.chr20_1-10M.bed"), "-o", out, ref}, 2,
                 "past the end of chr20", outd);
  std::ofstream(dir / "empty.bed").close();
  expect_failure({"embed", "-m", model, "-R", dir / "empty.bed", "-o", out, ref}, 2, "BED file is empty", outd);
  test::save_tiny_model(dir / "v32.safetensors", 5, test::tiny_embed_config(16, 1, 32));
  expect_failure({"embed", "-m", dir / "v32.safetensors", "-r", "chr20:1-100", "-o", out, ref}, 2, "vocabulary of 32",
                 outd);
  expect_failure({"embed", "-m", model, "-r", "chr20:1-100", "-o", dir / "nowhere/e.h5ad", ref}, 2, "does not exist",
                 outd);
  expect_failure({"embed", "-m", model, "-r", "chr20:1-100", "--layer", "9", "-o", out, ref}, 2, "outside [0, 2]", outd);
  expect_failure({"embed", "-m", model, "-r", "chr20:1-100", "--pool", "median", "-o", out, ref}, 1, "unknown --pool",
                 outd);
  expect_failure({"embed", "-m", model, "-r", "chr20:1-100", ref}, 1, "-o OUT.h5ad is required", outd);
}

}  // namespace
}  // namespace gm
