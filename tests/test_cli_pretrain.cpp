// End-to-end tests of `genomamba pretrain`, `eval` and `info` on the bundled genome:
// a run killed with SIGKILL and resumed ends with bitwise the same weights as an
// uninterrupted run; every shipped recipe runs (shrunk in width, context and steps); a
// memory budget changes the step plan but not the weights; bad options fail cleanly.
#include <gtest/gtest.h>

#include <chrono>
#include <cstring>
#include <map>
#include <filesystem>
#include <thread>

#include "mamba/safetensors.h"
#include "tests/cli_runner.h"

namespace gm {
namespace {

namespace fs = std::filesystem;
using test::data_path;
using test::run_genomamba;

const std::string kRef = "setA/grch38.chr20_and_21_10M.fa.gz";

std::vector<std::string> small_run(const std::string& out_dir, int steps) {
  return {"pretrain", "--model", (test::source_dir() / "configs/tiny.ini").string(), "--d-model", "16", "--n-layer",
          "2", data_path(kRef), "-o", out_dir, "--train-region", "chr20:1000001-3000000", "--valid-region",
          "chr21:5100001-5300000", "--seq-len", "96", "--batch-size", "3", "--grad-accum", "2", "--steps",
          std::to_string(steps), "--warmup", "3", "--lr", "0.01", "--checkpoint-every", "2", "--eval-every", "0",
          "--eval-seq-len", "256", "--eval-max-windows", "4", "--rc-augment", "-@", "2", "--seed", "7"};
}

// The final weights of a run directory, tensor by tensor.
std::map<std::string, std::vector<float>> final_weights(const std::string& run_dir) {
  std::ifstream latest(fs::path(run_dir) / "checkpoints" / "latest");
  std::string name;
  latest >> name;
  const auto file = SafetensorsFile::open((fs::path(run_dir) / "checkpoints" / name / "model.safetensors").string());
  std::map<std::string, std::vector<float>> out;
  for (const auto& n : file.names()) out[n] = file.read_f32(n);
  return out;
}

TEST(CliPretrain, KilledAndResumedRunEndsBitwiseIdentical) {
  test::TempDir dir;
  const int steps = 14;
  const auto whole = run_genomamba(small_run(dir / "whole", steps));
  ASSERT_EQ(whole.status, 0) << whole.err;

  // Kill the second run with SIGKILL once it has written a checkpoint past step 2.
  const fs::path latest = fs::path(dir / "killed") / "checkpoints" / "latest";
  const pid_t pid = test::spawn_genomamba(small_run(dir / "killed", steps));
  bool checkpointed = false;
  for (int i = 0; i < 6000 && !checkpointed; ++i) {
    std::ifstream in(latest);
    std::string name;
    checkpointed = (in >> name) && name >= "step-00000004";
    if (!checkpointed) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  kill(pid, SIGKILL);
  int raw = 0;
  waitpid(pid, &raw, 0);
  ASSERT_TRUE(checkpointed) << "the run never wrote a checkpoint";
  ASSERT_TRUE(WIFSIGNALED(raw)) << "the run finished before it could be killed; make it longer";

  auto resumed_args = small_run(dir / "killed", steps);
  resumed_args.push_back("--resume");
  const auto resumed = run_genomamba(resumed_args);
  ASSERT_EQ(resumed.status, 0) << resumed.err;
  EXPECT_NE(resumed.err.find("resumed from"), std::string::npos) << resumed.err;

  const auto a = final_weights(dir / "whole");
  const auto b = final_weights(dir / "killed");
  ASSERT_EQ(a.size(), b.size());
  for (const auto& [name, values] : a) {
    ASSERT_TRUE(b.count(name)) << name;
    ASSERT_EQ(values.size(), b.at(name).size()) << name;
    EXPECT_EQ(0, std::memcmp(values.data(), b.at(name).data(), values.size() * sizeof(float)))
        << name << " differs after resume";
  }
  // Training moved the weights (the comparison is not between two untouched inits).
  const auto init_run = run_genomamba(small_run(dir / "zero", 1));
  ASSERT_EQ(init_run.status, 0) << init_run.err;
  const auto c = final_weights(dir / "zero");
  EXPECT_NE(0, std::memcmp(a.at("backbone.layers.0.mixer.in_proj.weight").data(),
                           c.at("backbone.layers.0.mixer.in_proj.weight").data(),
                           a.at("backbone.layers.0.mixer.in_proj.weight").size() * sizeof(float)));
}

TEST(CliPretrain, NoTemporaryCheckpointLeftBehind) {
  test::TempDir dir;
  const auto r = run_genomamba(small_run(dir / "run", 4));
  ASSERT_EQ(r.status, 0) << r.err;
  for (const auto& e : fs::directory_iterator(fs::path(dir / "run") / "checkpoints")) {
    EXPECT_EQ(e.path().filename().string().find(".tmp"), std::string::npos) << e.path();
  }
  EXPECT_TRUE(fs::exists(fs::path(dir / "run") / "checkpoints" / "step-00000004" / "config.json"));
  EXPECT_TRUE(fs::exists(fs::path(dir / "run") / "checkpoints" / "step-00000004" / "train_state.safetensors"));
  // metrics.jsonl has one train line per step and the final validation.
  const std::string metrics = test::slurp(dir / "run/metrics.jsonl");
  size_t train_lines = 0, pos = 0;
  while ((pos = metrics.find("\"event\":\"train\"", pos)) != std::string::npos) ++train_lines, ++pos;
  EXPECT_EQ(train_lines, 4u);
  EXPECT_NE(metrics.find("\"event\":\"valid\""), std::string::npos);

  const auto info = run_genomamba({"info", dir / "run"});
  ASSERT_EQ(info.status, 0) << info.err;
  EXPECT_NE(info.out.find("d_model 16 x 2 layers"), std::string::npos) << info.out;
  EXPECT_NE(info.out.find("sha256\t"), std::string::npos);

  const auto eval = run_genomamba({"eval", "-m", dir / "run", "-r", "chr21:5100001-5200000", "--window", "512", "--min-acgt", "100",
                                   data_path(kRef)});
  ASSERT_EQ(eval.status, 0) << eval.err;
  EXPECT_NE(eval.out.find("bits_per_base\t"), std::string::npos) << eval.out;
}

TEST(CliPretrain, EveryRecipeRunsShrunk) {
  for (const char* recipe : {"peers-reference.ini", "hg38-hyena-warmup.ini", "hg38-131k.ini", "demo.ini"}) {
    SCOPED_TRACE(recipe);
    test::TempDir dir;
    std::vector<std::string> args = {"pretrain", "--config",
                                     (test::source_dir() / "configs/recipes" / recipe).string(), "--d-model", "16",
                                     "--n-layer", "1", "--steps", "3", "--warmup", "1", "--eval-seq-len", "256",
                                     "--eval-max-windows", "2", "--eval-every", "0", "--checkpoint-every", "0", "-o",
                                     dir / "run", data_path(kRef), "-@", "2"};
    const std::string name = recipe;
    if (name.rfind("hg38", 0) == 0) {
      // hg38 recipes read the split BED given on the command line; shrink the context.
      std::ofstream bed(dir / "splits.bed");
      bed << "chr20\t1000000\t1400000\ttrain\nchr20\t2000000\t2400000\ttrain\nchr21\t5100000\t5300000\tvalid\n";
      bed.close();
      args.insert(args.end(), {"--splits", dir / "splits.bed", "--seq-len-schedule", "0:64,2:128",
                               "--tokens-per-batch", "512", "--seq-len", "128"});
    } else {
      args.insert(args.end(), {"--seq-len", "128", "--batch-size", "2"});
    }
    const auto r = run_genomamba(args);
    EXPECT_EQ(r.status, 0) << r.err;
    EXPECT_NE(r.err.find("validation:"), std::string::npos) << r.err;
  }
}

// --memory-budget makes the step plan recompute every layer (a budget nothing fits) or keep
// every layer whole (a budget with room), as the log says; the weights are bitwise those of
// the run without a budget (the CPU plans nothing then).
TEST(CliPretrain, MemoryBudgetChangesThePlanNotTheRun) {
  test::TempDir dir;
  auto with_budget = [&](const std::string& name, const std::string& gib) {
    std::vector<std::string> args = small_run(dir / name, 4);
    if (!gib.empty()) args.insert(args.end(), {"--memory-budget", gib});
    return run_genomamba(args);
  };
  const auto free = with_budget("free", ""), tight = with_budget("tight", "0.000001"), roomy = with_budget("roomy", "1");
  ASSERT_EQ(free.status, 0) << free.err;
  ASSERT_EQ(tight.status, 0) << tight.err;
  ASSERT_EQ(roomy.status, 0) << roomy.err;
  EXPECT_NE(free.err.find("0 of 2 layers recomputed, 0 kept whole"), std::string::npos) << free.err;
  EXPECT_NE(tight.err.find("2 of 2 layers recomputed, 0 kept whole"), std::string::npos) << tight.err;
  EXPECT_NE(roomy.err.find("0 of 2 layers recomputed, 2 kept whole"), std::string::npos) << roomy.err;
  const auto weights = final_weights(dir / "free");
  ASSERT_FALSE(weights.empty());
  EXPECT_EQ(final_weights(dir / "tight"), weights);
  EXPECT_EQ(final_weights(dir / "roomy"), weights);
  const auto bad = with_budget("bad", "-1");
  EXPECT_EQ(bad.status, 1);
  EXPECT_NE(bad.err.find("--memory-budget"), std::string::npos) << bad.err;
}

TEST(CliPretrain, BadOptionsFailCleanly) {
  test::TempDir dir;
  auto r = run_genomamba({"pretrain", "--model", (test::source_dir() / "configs/tiny.ini").string(), "-o",
                          dir / "run", data_path(kRef), "--train-region", "chr1:1-1000"});
  EXPECT_EQ(r.status, 2);
  EXPECT_NE(r.err.find("chr1"), std::string::npos) << r.err;
  r = run_genomamba({"pretrain", "-o", dir / "run", data_path(kRef)});
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.err.find("--model"), std::string::npos) << r.err;
  r = run_genomamba({"pretrain", "--model", (test::source_dir() / "configs/tiny.ini").string(), "-o", dir / "run",
                     data_path(kRef), "--seq-len-schedule", "5:100"});
  EXPECT_EQ(r.status, 1);
  r = run_genomamba({"eval", "-m", dir / "nonexistent", data_path(kRef)});
  EXPECT_EQ(r.status, 2);
  EXPECT_NE(r.err.find("no such checkpoint"), std::string::npos) << r.err;
  r = run_genomamba({"pretrain", "--no-such-option"});
  EXPECT_EQ(r.status, 1);
}

}  // namespace
}  // namespace gm
