// The SLURM scripts of pipelines/workflows/slurm run as a job array would run them:
// each array task (SLURM_ARRAY_TASK_ID/MIN/STEP/COUNT set as sbatch sets them) embeds
// or scores its shard with the same command line, merge.sbatch joins the shards, and
// the result equals the unsharded job (to float rounding: a shard packs its regions
// into other batch shapes, which changes the GEMMs' blocking). A rerun of a finished task is skipped.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "tests/cli_runner.h"

namespace gm {
namespace {

namespace fs = std::filesystem;

// bash SCRIPT ARGS... with extra environment, output captured.
test::CliResult run_script(const std::string& script, const std::vector<std::string>& args,
                           const std::vector<std::pair<std::string, std::string>>& env) {
  test::TempDir logs;
  std::string cmd;
  for (const auto& [k, v] : env) cmd += k + "=" + test::shell_quote(v) + " ";
  cmd += "bash " + test::shell_quote((test::source_dir() / "pipelines/workflows/slurm" / script).string());
  for (const auto& a : args) cmd += " " + test::shell_quote(a);
  cmd += " > " + test::shell_quote(logs / "out") + " 2> " + test::shell_quote(logs / "err");
  const int raw = std::system(cmd.c_str());
  test::CliResult r;
  r.status = WIFEXITED(raw) ? WEXITSTATUS(raw) : -1;
  r.out = test::slurp(logs / "out");
  r.err = test::slurp(logs / "err");
  return r;
}

std::string tiny_checkpoint(const test::TempDir& dir) {
  const auto r = test::run_genomamba({"pretrain", "--model", (test::source_dir() / "configs/tiny.ini").string(),
                                      "--d-model", "16", "--n-layer", "1", "--steps", "1", "--seq-len", "64",
                                      "--batch-size", "2", "-o", dir / "model", "-@", "1",
                                      test::data_path("setB/genome.fasta")});
  EXPECT_EQ(r.status, 0) << r.err;
  return dir / "model";
}

TEST(SlurmScripts, EmbedArrayThenMergeEqualsOneJob) {
  test::TempDir dir;
  const std::string model = tiny_checkpoint(dir);
  {
    std::ofstream bed(dir / "regions.bed");
    for (int i = 0; i < 7; ++i) bed << "chr22\t" << 1000 + 4000 * i << "\t" << 1600 + 4000 * i << "\tr" << i << "\t0\t"
                                    << (i % 2 ? '-' : '+') << "\n";
  }
  const std::string ref = test::data_path("setB/genome.fasta");
  const std::vector<std::pair<std::string, std::string>> base = {
      {"GENOMAMBA", test::genomamba_binary()}, {"DEVICE", "cpu"}, {"SLURM_CPUS_PER_TASK", "1"}};
  // sbatch --array=4-8:2 -> task ids 4, 6, 8 (count 3).
  for (int id : {4, 6, 8}) {
    auto env = base;
    env.insert(env.end(), {{"SLURM_ARRAY_TASK_ID", std::to_string(id)},
                           {"SLURM_ARRAY_TASK_MIN", "4"},
                           {"SLURM_ARRAY_TASK_STEP", "2"},
                           {"SLURM_ARRAY_TASK_COUNT", "3"}});
    const auto r = run_script("embed_array.sbatch", {model, ref, dir / "regions.bed", dir / "emb.h5ad"}, env);
    ASSERT_EQ(r.status, 0) << r.err;
  }
  for (int i = 0; i < 3; ++i) {
    char name[64];
    std::snprintf(name, sizeof name, "emb.shard-%05d-of-00003.h5ad", i);
    EXPECT_TRUE(fs::exists(dir / name)) << name;
    EXPECT_TRUE(fs::exists(dir / (std::string(name) + ".done"))) << name;
  }
  // A requeued task whose shard is finished does no work and succeeds.
  auto env = base;
  env.insert(env.end(), {{"SLURM_ARRAY_TASK_ID", "6"}, {"SLURM_ARRAY_TASK_MIN", "4"}, {"SLURM_ARRAY_TASK_STEP", "2"},
                         {"SLURM_ARRAY_TASK_COUNT", "3"}});
  const auto again = run_script("embed_array.sbatch", {model, ref, dir / "regions.bed", dir / "emb.h5ad"}, env);
  EXPECT_EQ(again.status, 0) << again.err;

  const auto merged = run_script("merge.sbatch", {dir / "emb.h5ad", "3"}, base);
  ASSERT_EQ(merged.status, 0) << merged.err;
  ASSERT_TRUE(fs::exists(dir / "emb.h5ad"));

  // The unsharded job, then the two files compared value for value by h5py.
  const auto whole = test::run_genomamba({"embed", "-m", model, "-R", dir / "regions.bed", "--device", "cpu", "-@", "1",
                                          "-o", dir / "whole.h5ad", ref});
  ASSERT_EQ(whole.status, 0) << whole.err;
  if (!fs::exists("/usr/bin/python3")) GTEST_SKIP() << "no /usr/bin/python3 to compare the HDF5 files";
  const std::string py =
      "import h5py, numpy, sys\n"
      "a, b = h5py.File(sys.argv[1]), h5py.File(sys.argv[2])\n"
      "assert a['X'].shape == b['X'].shape == (7, 16), (a['X'].shape, b['X'].shape)\n"
      "x, y = a['X'][()], b['X'][()]\n"
      "assert numpy.isfinite(x).all() and numpy.abs(x).max() > 0\n"
      "assert numpy.abs(x - y).max() <= 1e-5 * numpy.abs(y).max(), numpy.abs(x - y).max()\n"
      "import anndata\n"
      "oa, ob = anndata.read_h5ad(sys.argv[1]).obs, anndata.read_h5ad(sys.argv[2]).obs\n"
      "assert oa.equals(ob), (oa, ob)\n"
      "assert list(oa['strand']) == ['+', '-', '+', '-', '+', '-', '+'], list(oa['strand'])\n"
      "print('same')\n";
  {
    std::ofstream(dir / "cmp.py") << py;
  }
  const std::string cmd = "/usr/bin/python3 " + test::shell_quote(dir / "cmp.py") + " " +
                          test::shell_quote(dir / "emb.h5ad") + " " + test::shell_quote(dir / "whole.h5ad") + " 2>&1";
  FILE* p = popen(cmd.c_str(), "r");
  ASSERT_NE(p, nullptr);
  char buf[4096];
  std::string out;
  while (fgets(buf, sizeof buf, p)) out += buf;
  const int rc = pclose(p);
  if (out.find("No module named") != std::string::npos) GTEST_SKIP() << "python3-h5py/anndata missing: " << out;
  EXPECT_EQ(rc, 0) << out;
  EXPECT_NE(out.find("same"), std::string::npos) << out;
}

}  // namespace
}  // namespace gm
