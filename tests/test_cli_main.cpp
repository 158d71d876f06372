// The command line's top level: --help, --version, every subcommand's --help, unknown
// subcommands and options (usage + exit 1), and --config files (the command line wins).
#include <gtest/gtest.h>

#include <fstream>

#include "tests/cli_runner.h"

namespace gm {
namespace {

using test::run_genomamba;

const char* const kSubcommands[] = {"inspect", "pretrain", "eval", "info", "embed", "score", "merge"};

TEST(CliMain, HelpAndVersion) {
  auto r = run_genomamba({"--version"});
  EXPECT_EQ(r.status, 0);
  EXPECT_EQ(r.out.rfind("genomamba ", 0), 0u) << r.out;
  r = run_genomamba({"--help"});
  EXPECT_EQ(r.status, 0);
  for (const char* sub : kSubcommands) {
    EXPECT_NE(r.out.find(std::string("  ") + sub + " "), std::string::npos) << sub << " missing from --help";
    const auto h = run_genomamba({sub, "--help"});
    EXPECT_EQ(h.status, 0) << sub << ": " << h.err;
    EXPECT_NE(h.out.find(std::string("Usage: genomamba ") + sub), std::string::npos) << h.out;
    EXPECT_NE(h.out.find("--config"), std::string::npos) << sub;
    EXPECT_NE(h.out.find("--threads"), std::string::npos) << sub;
  }
}

TEST(CliMain, UsageErrorsExitOne) {
  auto r = run_genomamba({});
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.err.find("Usage: genomamba <subcommand>"), std::string::npos) << r.err;
  r = run_genomamba({"frobnicate"});
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.err.find("unknown subcommand 'frobnicate'"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("Usage:"), std::string::npos) << r.err;
  for (const char* sub : kSubcommands) {
    r = run_genomamba({sub, "--no-such-option"});
    EXPECT_EQ(r.status, 1) << sub;
    EXPECT_NE(r.err.find(std::string("genomamba ") + sub + ":"), std::string::npos) << r.err;
    EXPECT_NE(r.err.find("--help"), std::string::npos) << r.err;
  }
  r = run_genomamba({"inspect", "--config", "/nonexistent/x.ini"});
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.err.find("/nonexistent/x.ini"), std::string::npos) << r.err;
}

TEST(CliMain, ConfigFileAndCommandLinePrecedence) {
  test::TempDir dir;
  const std::string fasta = test::data_path("setB/genome.fasta");
  {
    std::ofstream ini(dir / "run.ini");
    ini << "# inspect options from a file\nwindow = 1000\nstride = 500\n";
  }
  // From the file alone: window 1000, stride 500.
  auto r = run_genomamba({"inspect", "--config", dir / "run.ini", fasta});
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_NE(r.out.find("length 1,000, stride 500"), std::string::npos) << r.out;
  // The command line wins for the window; the stride still comes from the file.
  r = run_genomamba({"inspect", "--config", dir / "run.ini", "--window", "2000", fasta});
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_NE(r.out.find("length 2,000, stride 500"), std::string::npos) << r.out;
  // An unknown key in the file is a usage error naming the file.
  {
    std::ofstream ini(dir / "bad.ini");
    ini << "window = 1000\nbogus-key = 1\n";
  }
  r = run_genomamba({"inspect", "--config", dir / "bad.ini", fasta});
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.err.find("bad.ini"), std::string::npos) << r.err;
  EXPECT_EQ(r.err.find("--model"), std::string::npos) << r.err;
  // A model file given to --config: pretrain says where model files go; inspect, which
  // has no --model, only names the key.
  {
    std::ofstream ini(dir / "model.ini");
    ini << "[model]\nd_model = 64\nn_layer = 2\n";
  }
  r = run_genomamba({"pretrain", "--config", dir / "model.ini", "-o", dir / "run", fasta});
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.err.find("model.ini"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("model files go to --model"), std::string::npos) << r.err;
  r = run_genomamba({"inspect", "--config", dir / "model.ini", fasta});
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.err.find("model.d_model"), std::string::npos) << r.err;
  EXPECT_EQ(r.err.find("--model"), std::string::npos) << r.err;
}

TEST(CliMain, ScoreWriteIndexFlagBeforeTheInput) {
  // "-W in.vcf.gz": the word after -W is the input (the index format must be attached:
  // -Wtbi), so parsing gets past the input check to the missing checkpoint.
  const std::string vcf = test::data_path("setB/dbsnp_146.hg38.vcf.gz");
  auto r = run_genomamba({"score", "-f", test::data_path("setB/genome.fasta"), "-m", "/nonexistent/ckpt", "-W", vcf});
  EXPECT_EQ(r.status, 2) << r.err;
  EXPECT_NE(r.err.find("no such checkpoint"), std::string::npos) << r.err;
  r = run_genomamba({"score", "-f", test::data_path("setB/genome.fasta"), "-m", "/nonexistent/ckpt", "-W", "x.vcf", vcf});
  EXPECT_EQ(r.status, 1) << r.err;
  EXPECT_NE(r.err.find("csi or tbi"), std::string::npos) << r.err;
}

}  // namespace
}  // namespace gm
