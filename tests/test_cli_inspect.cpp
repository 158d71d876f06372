// End-to-end tests of `genomamba inspect` (the built binary, GENOMAMBA_BINARY): the
// table's numbers against independent counts, and the bad-input cases, each a clear
// message on stderr and a non-zero exit.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "genomics/fasta.h"
#include "tests/cli_runner.h"
#include "tests/test_support.h"

namespace gm {
namespace {

namespace fs = std::filesystem;
using test::data_path;

const std::string kRefA = "setA/grch38.chr20_and_21_10M.fa.gz";

using CliRun = test::CliResult;

CliRun inspect(std::vector<std::string> args) {
  args.insert(args.begin(), "inspect");
  return test::run_genomamba(args);
}

// The whitespace-separated fields of the first line starting with `first`.
std::vector<std::string> row(const std::string& text, const std::string& first) {
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream fields(line);
    std::vector<std::string> out;
    std::string f;
    while (fields >> f) out.push_back(f);
    if (!out.empty() && out[0] == first) return out;
  }
  return {};
}

std::string commas(int64_t v) {
  std::string s = std::to_string(v), out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (i > 0 && (s.size() - i) % 3 == 0) out += ',';
    out += s[i];
  }
  return out;
}

std::string pct(int64_t part, int64_t whole) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.2f%%", 100.0 * static_cast<double>(part) / static_cast<double>(whole));
  return buf;
}

void expect_failure(const CliRun& r, const std::string& needle) {
  EXPECT_NE(r.status, 0) << r.out;
  // htslib may print its own lines first; ours is the one starting "genomamba inspect: ".
  const size_t at = r.err.rfind("genomamba inspect: ");
  ASSERT_NE(at, std::string::npos) << r.err;
  EXPECT_TRUE(at == 0 || r.err[at - 1] == '\n') << r.err;
  EXPECT_NE(r.err.find(needle, at), std::string::npos) << "stderr: " << r.err;
}

TEST(CliInspect, ContigTableMatchesIndependentCounts) {
  const CliRun r = inspect({data_path(kRefA), "-@", "2"});
  ASSERT_EQ(r.status, 0) << r.err;
  FastaReader fasta(data_path(kRefA));
  for (int id = 0; id < 2; ++id) {
    const Contig& c = fasta.contigs()[static_cast<size_t>(id)];
    int64_t n = 0, gc = 0, soft = 0;
    for (int64_t beg = 0; beg < c.length; beg += 1000000) {
      const auto chunk = fasta.fetch(id, beg, std::min(c.length, beg + 1000000));
      for (char ch : chunk.view()) {
        n += ch == 'N' || ch == 'n';
        gc += ch == 'G' || ch == 'C' || ch == 'g' || ch == 'c';
        soft += ch >= 'a' && ch <= 'z';
      }
    }
    const auto fields = row(r.out, c.name);
    ASSERT_EQ(fields.size(), 6u) << r.out;
    EXPECT_EQ(fields[1], "10,000,000");
    EXPECT_EQ(fields[2], commas(n));
    EXPECT_EQ(fields[3], pct(n, c.length));
    EXPECT_EQ(fields[4], pct(soft, c.length));
    EXPECT_EQ(fields[5], pct(gc, c.length - n));
  }
  EXPECT_EQ(row(r.out, "chr20")[2], "60,725");  // samtools faidx chr20 | tr -cd Nn | wc -c
}

TEST(CliInspect, WindowsAndRejectionsMatchADirectCount) {
  const CliRun r = inspect({data_path(kRefA), "-r", "chr21", "--window", "32768", "--max-n-frac", "0.1"});
  ASSERT_EQ(r.status, 0) << r.err;
  FastaReader fasta(data_path(kRefA));
  // Tiled: starts 0, 32768, ... and a last window aligned to the contig end.
  std::vector<int64_t> starts;
  for (int64_t s = 0; s + 32768 < 10000000; s += 32768) starts.push_back(s);
  starts.push_back(10000000 - 32768);
  int64_t rejected = 0;
  for (int64_t s : starts) {
    const auto seq = fasta.fetch(1, s, s + 32768);
    const auto n = std::count(seq.view().begin(), seq.view().end(), 'N');
    rejected += static_cast<double>(n) >= 0.1 * 32768;
  }
  const auto fields = row(r.out, "all");
  ASSERT_EQ(fields.size(), 6u) << r.out;
  EXPECT_EQ(fields[1], "1");
  EXPECT_EQ(fields[2], "10,000,000");
  EXPECT_EQ(fields[3], commas(static_cast<int64_t>(starts.size())));
  EXPECT_EQ(fields[4], commas(rejected));
  EXPECT_EQ(fields[5], commas(static_cast<int64_t>(starts.size()) - rejected));
  EXPECT_GT(rejected, 100);  // chr21's first 10 Mb are 63% N
}

TEST(CliInspect, SplitsFromABedSplitColumn) {
  test::TempDir dir;
  std::ofstream(dir / "splits.bed") << "chr20\t0\t131072\ttrain\nchr20\t131072\t262144\ttrain\n"
                                       "chr20\t5000000\t5131072\tvalid\nchr21\t9000000\t9100000\ttest\n";
  const CliRun r = inspect({data_path(kRefA), "-R", dir / "splits.bed", "-w", "65536"});
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(row(r.out, "train"), (std::vector<std::string>{"train", "2", "262,144", "4", "0", "4"})) << r.out;
  EXPECT_EQ(row(r.out, "valid"), (std::vector<std::string>{"valid", "1", "131,072", "2", "0", "2"})) << r.out;
  EXPECT_EQ(row(r.out, "test"), (std::vector<std::string>{"test", "1", "100,000", "2", "0", "2"})) << r.out;
}

TEST(CliInspect, ReadsKeptAndDroppedForBamAndCram) {
  for (const char* f : {"setB/test.paired_end.sorted.bam", "setB/test.paired_end.sorted.cram"}) {
    const CliRun r = inspect({data_path("setB/genome.fasta"), "--reads", data_path(f)});
    ASSERT_EQ(r.status, 0) << r.err;
    // samtools view -c: 5,644 records; -F 0xF00: 5,642.
    EXPECT_EQ(row(r.out, "records").at(1), "5,644") << r.out;
    EXPECT_EQ(row(r.out, "kept").at(1), "5,642") << r.out;
    EXPECT_NE(r.out.find("dropped: flags 0xf00"), std::string::npos) << r.out;
  }
  const CliRun q = inspect({data_path(kRefA), "--reads", data_path("setA/grch38_1k_subset_chr20_and_chr21.bam"), "-q",
                         "30", "--drop-unmapped"});
  ASSERT_EQ(q.status, 0) << q.err;
  EXPECT_EQ(row(q.out, "kept").at(1), "758");  // samtools view -c -F 0xF00 -q 30
}

TEST(CliInspectErrors, MissingFileAndUsage) {
  expect_failure(inspect({"/nonexistent/ref.fa"}), "No such file");
  const CliRun usage = inspect({});
  EXPECT_EQ(usage.status, 1);
  EXPECT_NE(usage.err.find("no reference"), std::string::npos) << usage.err;
}

TEST(CliInspectErrors, PlainGzipTruncatedEmptyAndNonIupacFasta) {
  test::TempDir dir;
  fs::copy_file(data_path("other/lambda_virus.fa.gz"), dir / "lambda.fa.gz");
  expect_failure(inspect({dir / "lambda.fa.gz"}), "bgzip");
  fs::copy_file(data_path(kRefA), dir / "cut.fa.gz");
  fs::resize_file(dir / "cut.fa.gz", 1000000);
  expect_failure(inspect({dir / "cut.fa.gz"}), "truncated");
  std::ofstream(dir / "empty.fa").close();
  expect_failure(inspect({dir / "empty.fa"}), "no sequences");
  std::ofstream(dir / "u.fa") << ">rna\nACGUACGU\n";
  expect_failure(inspect({dir / "u.fa"}), "rna:4");
}

TEST(CliInspectErrors, BadBedAndRegions) {
  test::TempDir dir;
  std::ofstream(dir / "few.bed") << "chr20\t1\t100\nchr20\t5\n";
  expect_failure(inspect({data_path(kRefA), "-R", dir / "few.bed"}), "few.bed:2:");
  std::ofstream(dir / "rev.bed") << "chr20\t500\t100\n";
  expect_failure(inspect({data_path(kRefA), "-R", dir / "rev.bed"}), "rev.bed:1:");
  expect_failure(inspect({data_path(kRefA), "-R", data_path("setA/HG002_GIAB_v4.2.1.chr20_1-10M.bed")}),
                 "past the end of chr20");
  expect_failure(inspect({data_path(kRefA), "-R", data_path("setA/chr21_exons.ensembl105.contig21.bed")}),
                 "the FASTA names it 'chr21'");
  expect_failure(inspect({data_path(kRefA), "-r", "chr20:9000000-11000000"}), "past the end of chr20");
  expect_failure(inspect({data_path(kRefA), "-r", "21:1-100"}), "the FASTA names it 'chr21'");
}

TEST(CliInspectErrors, ReadsErrors) {
  test::TempDir dir;
  fs::copy_file(data_path("setB/test.paired_end.sorted.bam"), dir / "noindex.bam");
  expect_failure(inspect({data_path("setB/genome.fasta"), "--reads", dir / "noindex.bam", "-r", "chr22:1-1000"}),
                 "samtools index");
  // The CRAM's reference is not setA: decoding fails locally (never over the network).
  expect_failure(inspect({data_path(kRefA), "--reads", data_path("setB/test.paired_end.sorted.cram")}),
                 "test.paired_end.sorted.cram");
  FastaReader full(data_path("setB/genome.fasta"));
  std::ofstream(dir / "short.fa") << ">chr22\n" << std::string(full.fetch(0, 0, 30000).view()) << "\n";
  expect_failure(inspect({dir / "short.fa", "--reads", data_path("setB/test.paired_end.sorted.bam")}),
                 "another assembly");
  expect_failure(inspect({dir / "short.fa", "--reads", data_path("setB/test.paired_end.sorted.cram")}),
                 "another assembly");
}

}  // namespace
}  // namespace gm
