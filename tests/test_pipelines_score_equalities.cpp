// The defining equalities of `genomamba score` on real variants (setB: dbSNP 146 and
// gnomAD on GRCh38 chr22:16.57-16.61 Mb) with a tiny random model:
// - window mode equals fresh forward passes per variant (the oracle of
//   test_pipelines_score_support.h), for LLR, DLL and EMB, on both strands, including
//   multi-allelic records, indels and variants on a contig's first and last base;
// - --context full equals window mode with a context covering the whole contig;
// - full-context scores do not depend on which records are selected (-r) or on the shard.
#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>
#include <sstream>
#include <utility>

#include "pipelines/score.h"
#include "tests/cli_runner.h"
#include "tests/test_pipelines_score_support.h"

namespace gm {
namespace {

using test::data_path;
using test::read_score_tsv;
using test::same_score;
using test::shell_quote;

const std::string kFasta = "setB/genome.fasta";

class ScoreEqualities : public ::testing::Test {
 protected:
  void SetUp() override {
    weights_ = test::save_tiny_model(dir_ / "model.safetensors");
    // dbSNP records at both contig ends and around a multi-allelic site, plus two planted
    // SNVs on the contig's first and last base (REF from the FASTA).
    FastaReader fasta(data_path(kFasta));
    const std::string first = fasta.fetch_string(Region{0, "chr22", 0, 1});
    const std::string last = fasta.fetch_string(Region{0, "chr22", 40000, 40001});
    auto other = [](const std::string& b) { return std::string(b == "A" ? "C" : "A"); };
    vcf_ = dir_ / "sub.vcf.gz";
    const std::string src = shell_quote(data_path("setB/dbsnp_146.hg38.vcf.gz"));
    const std::string cmd = "(bcftools view -h " + src + "; printf 'chr22\\t1\\tplanted1\\t" + first + "\\t" +
                            other(first) + "\\t.\\tPASS\\t.\\n'; bcftools view -H -r chr22:1-400,chr22:3300-3400,"
                            "chr22:39700-40001 " + src + " | grep -v '^chr22.40001\\b'; printf 'chr22\\t40001\\tplanted2\\t" +
                            last + "\\t" + other(last) + "\\t.\\tPASS\\t.\\n') | bgzip > " + shell_quote(vcf_) +
                            " && tabix -p vcf " + shell_quote(vcf_);
    ASSERT_EQ(std::system(cmd.c_str()), 0);
  }

  std::vector<test::TsvRow> run(ScoreOptions o) {
    o.tsv = dir_ / ("run" + std::to_string(++runs_) + ".tsv");
    run_score(o, log_);
    return read_score_tsv(shard_output_path(o.tsv, o.shard));
  }

  ScoreOptions options() { return test::score_options(vcf_, data_path(kFasta), weights_, dir_ / "out.vcf.gz"); }

  test::TempDir dir_;
  std::string weights_, vcf_;
  std::ostringstream log_;
  int runs_ = 0;
};

TEST_F(ScoreEqualities, WindowModeEqualsFreshForwardPassPerVariant) {
  ScoreOptions o = options();
  o.scores = parse_score_selection("llr,dll,emb");
  o.context = 48;
  o.window = 33;  // odd: flanks 16 and 16
  o.layer = 1;
  o.batch_rows = 6;
  const auto rows = run(o);
  ASSERT_GT(rows.size(), 40u);
  test::ScoreOracle oracle(weights_, data_path(kFasta), "chr22");
  int snvs = 0, indels = 0, edges = 0;
  for (const auto& r : rows) {
    SCOPED_TRACE(r.chrom + ":" + std::to_string(r.pos) + " " + r.ref + ">" + r.alt);
    const auto want = oracle.score(r.pos - 1, r.ref, r.alt, o.context, o.window, o.layer);
    EXPECT_TRUE(same_score(r.llr, want.llr, 2e-5, 1e-4)) << r.llr << " vs " << want.llr;
    EXPECT_TRUE(same_score(r.dll, want.dll, 2e-4, 1e-4)) << r.dll << " vs " << want.dll;
    EXPECT_TRUE(same_score(r.emb, want.emb, 2e-5, 1e-3)) << r.emb << " vs " << want.emb;
    EXPECT_TRUE(std::isfinite(r.dll));
    EXPECT_TRUE(std::isfinite(r.emb));
    const bool snv = r.ref.size() == 1 && r.alt.size() == 1;
    EXPECT_EQ(std::isfinite(r.llr), snv) << "LLR is for SNVs only";
    snvs += snv;
    indels += !snv;
    edges += r.has("GM_EDGE");
    // Within `context` of either end, fewer bases than asked: flagged.
    const bool near_end = r.pos - 1 < o.context || 40001 - (r.pos - 1 + static_cast<int64_t>(r.ref.size())) < o.context;
    EXPECT_EQ(r.has("GM_EDGE"), near_end);
  }
  EXPECT_GT(snvs, 30);
  EXPECT_GE(indels, 6);
  EXPECT_GT(edges, 4);
  // The planted SNVs on the first and last base: only one strand has an LLR, still scored.
  EXPECT_EQ(rows.front().pos, 1);
  EXPECT_TRUE(std::isfinite(rows.front().llr));
  EXPECT_EQ(rows.back().pos, 40001);
  EXPECT_TRUE(std::isfinite(rows.back().llr));
}

TEST_F(ScoreEqualities, FullContextEqualsWindowCoveringTheContig) {
  // LLR on the forward strand alone streams while the records are still read (jobs taken
  // chunk by chunk); the other selections take the contig's jobs first.
  const std::pair<const char*, ScoreStrands> cases[] = {
      {"llr", ScoreStrands::Both}, {"llr,dll,emb", ScoreStrands::Both}, {"llr", ScoreStrands::Forward}};
  for (const auto& [scores, strand] : cases) {
    SCOPED_TRACE(std::string(scores) + " " + score_strands_name(strand));
    ScoreOptions full = options();
    full.strand = strand;
    full.scores = parse_score_selection(scores);
    full.full_context = true;
    full.window = 65;
    full.chunk = 512;  // several grid points, rows starting before their allele
    full.batch_rows = 6;
    full.regions = {"chr22:3300-3400", "chr22:39950-40001"};
    ScoreOptions window = full;
    window.full_context = false;
    window.context = 50000;  // longer than the contig: every base before the allele
    const auto a = run(full), b = run(window);
    ASSERT_EQ(a.size(), b.size());
    ASSERT_GT(a.size(), 8u);
    for (size_t i = 0; i < a.size(); ++i) {
      SCOPED_TRACE(a[i].chrom + ":" + std::to_string(a[i].pos) + " " + a[i].ref + ">" + a[i].alt);
      EXPECT_EQ(a[i].pos, b[i].pos);
      EXPECT_EQ(a[i].alt, b[i].alt);
      EXPECT_TRUE(same_score(a[i].llr, b[i].llr, 2e-5, 1e-4)) << a[i].llr << " vs " << b[i].llr;
      EXPECT_TRUE(same_score(a[i].dll, b[i].dll, 2e-4, 1e-4)) << a[i].dll << " vs " << b[i].dll;
      EXPECT_TRUE(same_score(a[i].emb, b[i].emb, 2e-5, 1e-3)) << a[i].emb << " vs " << b[i].emb;
      if (std::string(scores) == "llr" && (strand == ScoreStrands::Both || a[i].pos > 1)) {
        EXPECT_EQ(std::isfinite(a[i].llr), a[i].ref.size() == 1 && a[i].alt.size() == 1);
      }
    }
  }
}

TEST_F(ScoreEqualities, FullContextScoresDoNotDependOnTheSelection) {
  ScoreOptions whole = options();
  whole.vcf = data_path("setB/gnomAD.r2.1.1.vcf.gz");
  whole.scores = parse_score_selection("llr,dll");
  whole.full_context = true;
  whole.window = 33;
  whole.chunk = 256;
  const auto all = run(whole);
  ASSERT_EQ(all.size(), 3500u);

  ScoreOptions part = whole;
  part.regions = {"chr22:20000-20300", "chr22:31000-31100"};
  const auto some = run(part);
  ASSERT_GT(some.size(), 20u);
  size_t j = 0;
  for (const auto& r : some) {
    while (j < all.size() && !(all[j].pos == r.pos && all[j].ref == r.ref && all[j].alt == r.alt)) ++j;
    ASSERT_LT(j, all.size()) << "record " << r.pos << " of the -r run is not in the whole run";
    // Bitwise: the stream's chunk grid is fixed by the contig, not by the selection.
    EXPECT_TRUE(test::same_bits(r.llr, all[j].llr)) << r.pos << " " << r.llr << " vs " << all[j].llr;
    EXPECT_TRUE(same_score(r.dll, all[j].dll, 1e-6, 1e-6)) << r.pos << " " << r.dll << " vs " << all[j].dll;
  }

  // Shards of a full-context job hold whole contigs (here one): together they are the job.
  std::vector<test::TsvRow> sharded;
  for (int i = 0; i < 2; ++i) {
    ScoreOptions shard = whole;
    shard.shard = ShardSpec{i, 2};
    const auto rows = run(shard);
    sharded.insert(sharded.end(), rows.begin(), rows.end());
  }
  ASSERT_EQ(sharded.size(), all.size());
  for (size_t i = 0; i < all.size(); ++i) {
    EXPECT_TRUE(test::same_bits(sharded[i].llr, all[i].llr)) << all[i].pos;
    EXPECT_TRUE(test::same_bits(sharded[i].dll, all[i].dll)) << all[i].pos;
  }
}

}  // namespace
}  // namespace gm
