// `genomamba score` end to end through the binary: VCF from stdin to BCF with index,
// bgzip VCF from a file with -R and --tsv, bcftools reads every output; error messages
// and exit codes of bad options and bad input.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "tests/cli_runner.h"
#include "tests/test_pipelines_score_support.h"

namespace gm {
namespace {

namespace fs = std::filesystem;
using test::data_path;
using test::run_genomamba;
using test::shell_quote;

std::string sh(const std::string& cmd) {
  test::TempDir d;
  EXPECT_EQ(std::system(("(" + cmd + ") > " + shell_quote(d / "out")).c_str()), 0) << cmd;
  return test::slurp(d / "out");
}

class CliScore : public ::testing::Test {
 protected:
  void SetUp() override { weights_ = test::save_tiny_model(dir_ / "model.safetensors", 16, 1); }
  std::vector<std::string> base() {
    return {"score", "-m", weights_, "-f", data_path("setB/genome.fasta"), "--window", "17", "-@", "2"};
  }
  test::TempDir dir_;
  std::string weights_;
};

TEST_F(CliScore, StdinToIndexedBcf) {
  const std::string plain = dir_ / "in.vcf";
  sh("bcftools view " + shell_quote(data_path("setB/mills_and_1000G.indels.vcf.gz")) + " > " + shell_quote(plain));
  auto args = base();
  const std::string out = dir_ / "out.bcf";
  for (const char* a : {"-", "-o", out.c_str(), "-O", "b", "-W", "--scores", "llr,dll,emb", "--context", "32"}) {
    args.push_back(a);
  }
  const auto r = run_genomamba(args, plain);
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_NE(r.err.find("14 records"), std::string::npos) << r.err;
  EXPECT_TRUE(fs::exists(out + ".csi"));
  EXPECT_EQ(sh("bcftools view -H " + shell_quote(out) + " | wc -l"), "14\n");
  EXPECT_EQ(sh("bcftools query -i 'INFO/GM_DLL!=\".\" && INFO/GM_EMB!=\".\"' -f '%POS\\n' " + shell_quote(out) + " | wc -l"),
            "14\n");
  EXPECT_EQ(sh("bcftools view -H -r chr22:1-10000 " + shell_quote(out) + " | cut -f2 | tr '\\n' ' '"),
            sh("bcftools view -H -r chr22:1-10000 " + shell_quote(data_path("setB/mills_and_1000G.indels.vcf.gz")) +
               " | cut -f2 | tr '\\n' ' '"));
}

TEST_F(CliScore, RegionsFileTsvAndVcfToStdout) {
  const std::string bed = dir_ / "r.bed";
  std::ofstream(bed) << "chr22\t19999\t20300\n";
  auto args = base();
  const std::string tsv = dir_ / "s.tsv";
  for (const std::string& a : {data_path("setB/gnomAD.r2.1.1.vcf.gz"), std::string("-R"), bed, std::string("--tsv"), tsv,
                              std::string("--context"), std::string("full")}) {
    args.push_back(a);
  }
  const auto r = run_genomamba(args);
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(r.out.rfind("##fileformat=VCF", 0), 0u) << "VCF on stdout";
  EXPECT_NE(r.out.find("##genomamba_settings=scores=llr,dll;context=full"), std::string::npos);
  const auto rows = test::read_score_tsv(tsv);
  EXPECT_EQ(rows.size(), 24u);  // gnomAD records in chr22:20000-20300
  for (const auto& row : rows) EXPECT_TRUE(std::isfinite(row.dll)) << row.pos;
  const std::string vcf = dir_ / "stdout.vcf";
  std::ofstream(vcf) << r.out;
  EXPECT_EQ(sh("bcftools view -H " + shell_quote(vcf) + " | wc -l"), "24\n");
}

TEST_F(CliScore, BadOptionsAndInputsFailWithAClearMessage) {
  auto with = [&](std::vector<std::string> extra) {
    auto a = base();
    a.insert(a.end(), extra.begin(), extra.end());
    if (std::find(a.begin(), a.end(), "--context") == a.end()) {
      a.push_back("--context");
      a.push_back("32");
    }
    return run_genomamba(a);
  };
  const std::string vcf = data_path("setB/mills_and_1000G.indels.vcf.gz");
  auto r = with({vcf, "--scores", "llr,xyz"});
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.err.find("genomamba score: --scores: unknown score 'xyz'"), std::string::npos) << r.err;
  r = with({vcf, "--context", "0"});
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.err.find("--context"), std::string::npos) << r.err;
  r = with({vcf, "-O", "x"});
  EXPECT_EQ(r.status, 1);
  r = with({vcf, "-W"});  // index of stdout
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.err.find("-W"), std::string::npos) << r.err;
  r = with({vcf, "--shard", "3/2", "-o", dir_ / "x.vcf.gz"});
  EXPECT_EQ(r.status, 1);
  r = run_genomamba({"score", "-m", weights_, vcf});
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.err.find("-f REF.fa is required"), std::string::npos) << r.err;
  // Input errors exit 2 and name the file.
  r = with({data_path("setA/HG002_GIAB_v4.2.1.chr20_1-10M.vcf.gz"), "-r", "chr20:1-1000"});
  EXPECT_EQ(r.status, 2);
  EXPECT_NE(r.err.find("another assembly"), std::string::npos) << r.err;
  r = with({dir_ / "missing.vcf.gz"});
  EXPECT_EQ(r.status, 2);
  EXPECT_NE(r.err.find("missing.vcf.gz"), std::string::npos) << r.err;
  r = with({vcf, "--layer", "7", "--scores", "emb"});
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.err.find("--layer 7"), std::string::npos) << r.err;
  r = with({vcf, "--context", "full", "--chunk", "3000000000", "-o", dir_ / "big.vcf.gz"});
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.err.find("--chunk must be below 2^31"), std::string::npos) << r.err;
  EXPECT_FALSE(std::filesystem::exists(dir_ / "big.vcf.gz"));
}

}  // namespace
}  // namespace gm
