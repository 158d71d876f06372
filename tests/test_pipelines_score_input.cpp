// `genomamba score` input handling on the bundled real VCFs: every record once with its
// original fields, bcftools reads the output (VCF.gz + index, BCF), planted REF mismatch,
// multi-allelic and symbolic ALTs, indels get DLL, the GIAB chr20 truth set against the
// 10 Mb FASTA (length check, --allow-partial-reference, records past the end), naming
// mismatch and --rename-contigs, MD5 check, unsorted input, missing index, BCF input.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "genomics/errors.h"
#include "mamba/sha256.h"
#include "pipelines/score.h"
#include "tests/cli_runner.h"
#include "tests/test_pipelines_score_support.h"

namespace gm {
namespace {

namespace fs = std::filesystem;
using test::data_path;
using test::read_score_tsv;
using test::shell_quote;

const std::string kSetB = "setB/genome.fasta";
const std::string kSetA = "setA/grch38.chr20_and_21_10M.fa.gz";
const std::string kGiab = "setA/HG002_GIAB_v4.2.1.chr20_1-10M.vcf.gz";

// stdout of a shell command (fails the test when it fails).
std::string sh(const std::string& cmd) {
  test::TempDir d;
  const std::string full = "(" + cmd + ") > " + shell_quote(d / "out") + " 2> " + shell_quote(d / "err");
  const int rc = std::system(full.c_str());
  EXPECT_EQ(rc, 0) << cmd << "\n" << test::slurp(d / "err");
  return test::slurp(d / "out");
}

class ScoreInput : public ::testing::Test {
 protected:
  void SetUp() override { weights_ = test::save_tiny_model(dir_ / "model.safetensors", 16, 1); }

  ScoreOptions options(const std::string& vcf, const std::string& fasta = data_path(kSetB)) {
    ScoreOptions o = test::score_options(vcf, fasta, weights_, dir_ / ("out" + std::to_string(++n_) + ".vcf.gz"));
    o.context = 32;
    o.window = 17;
    o.tsv = dir_ / ("out" + std::to_string(n_) + ".tsv");
    return o;
  }
  ScoreSummary run(const ScoreOptions& o) { return run_score(o, log_); }
  // A bgzipped, indexed VCF made by a shell pipeline writing VCF text to stdout.
  std::string make_vcf(const std::string& name, const std::string& pipeline) {
    const std::string path = dir_ / name;
    sh("(" + pipeline + ") | bgzip > " + shell_quote(path) + " && tabix -f -p vcf " + shell_quote(path));
    return path;
  }
  std::string error_of(const ScoreOptions& o) {
    try {
      run(o);
    } catch (const std::exception& e) {
      return e.what();
    }
    return "";
  }

  test::TempDir dir_;
  std::string weights_;
  std::ostringstream log_;
  int n_ = 0;
};

TEST_F(ScoreInput, EveryRecordOnceWithItsFieldsAndBcftoolsReadsTheOutput) {
  for (const std::string vcf : {"setB/dbsnp_146.hg38.vcf.gz", "setB/mills_and_1000G.indels.vcf.gz"}) {
    SCOPED_TRACE(vcf);
    ScoreOptions o = options(data_path(vcf));
    o.write_index = "tbi";
    const ScoreSummary s = run(o);
    const std::string in = sh("bcftools view -H " + shell_quote(data_path(vcf)));
    // Remove what genomamba added: the rest must be the input, record for record.
    const std::string out = sh("bcftools annotate -x INFO/GM_LLR,INFO/GM_DLL,INFO/GM_EDGE " + shell_quote(o.output) +
                               " | bcftools view -H");
    EXPECT_EQ(out, in);
    const auto n_in = std::count(in.begin(), in.end(), '\n');
    EXPECT_EQ(s.records, n_in);
    EXPECT_TRUE(fs::exists(o.output + ".tbi"));
    // The index works: a region query returns the records of the input's region.
    EXPECT_EQ(sh("bcftools view -H -r chr22:10000-20000 " + shell_quote(o.output) + " | cut -f1-5"),
              sh("bcftools view -H -r chr22:10000-20000 " + shell_quote(data_path(vcf)) + " | cut -f1-5"));
    const std::string header = sh("bcftools view -h " + shell_quote(o.output));
    EXPECT_NE(header.find("##INFO=<ID=GM_LLR,Number=A,Type=Float"), std::string::npos);
    EXPECT_NE(header.find("##INFO=<ID=GM_DLL,Number=A,Type=Float"), std::string::npos);
    EXPECT_NE(header.find("##INFO=<ID=GM_EDGE,Number=0,Type=Flag"), std::string::npos);
    EXPECT_NE(header.find("##INFO=<ID=GM_REFMISMATCH,Number=0,Type=Flag"), std::string::npos);
    EXPECT_NE(header.find("##genomamba_model=" + sha256_file(weights_)), std::string::npos);
    EXPECT_NE(header.find("##genomamba_command=genomamba score"), std::string::npos);
    // Scores read back through bcftools equal the TSV's.
    const auto rows = read_score_tsv(o.tsv);
    const std::string dll = sh("bcftools query -f '%INFO/GM_DLL\\n' " + shell_quote(o.output));
    std::istringstream lines(dll);
    std::string line;
    size_t i = 0;
    while (std::getline(lines, line)) {
      std::istringstream values(line);
      std::string v;
      while (std::getline(values, v, ',')) {
        ASSERT_LT(i, rows.size());
        EXPECT_TRUE(test::same_score(test::parse_score(v), rows[i].dll, 1e-5, 1e-5)) << v << " vs " << rows[i].dll;
        ++i;
      }
    }
    EXPECT_EQ(i, rows.size());
  }
}

TEST_F(ScoreInput, HeaderWithoutContigLinesGetsTheFastaContigs) {
  const std::string vcf = dir_ / "nocontig.vcf";
  sh("bcftools view " + shell_quote(data_path("setB/mills_and_1000G.indels.vcf.gz")) + " | grep -v '^##contig' > " +
     shell_quote(vcf));
  ScoreOptions o = options(vcf);
  o.output = dir_ / "nocontig.bcf";
  o.output_type = 'b';
  EXPECT_EQ(run(o).scored_alleles, 14);
  EXPECT_NE(sh("bcftools view -h " + shell_quote(o.output)).find("##contig=<ID=chr22,length=40001>"), std::string::npos);
  EXPECT_EQ(sh("bcftools view -H " + shell_quote(o.output) + " | cut -f1,2"),
            sh("bcftools view -H " + shell_quote(data_path("setB/mills_and_1000G.indels.vcf.gz")) + " | cut -f1,2"));
}

TEST_F(ScoreInput, IndelsGetDllAndNoLlr) {
  ScoreOptions o = options(data_path("setB/mills_and_1000G.indels.vcf.gz"));
  const ScoreSummary s = run(o);
  const auto rows = read_score_tsv(o.tsv);
  ASSERT_EQ(rows.size(), 14u);
  EXPECT_EQ(s.scored_alleles, 14);
  for (const auto& r : rows) {
    EXPECT_NE(r.ref.size(), r.alt.size());
    EXPECT_TRUE(std::isfinite(r.dll)) << r.pos;
    EXPECT_TRUE(std::isnan(r.llr)) << r.pos;
  }
}

TEST_F(ScoreInput, PlantedRefMismatchMultiAllelicAndSymbolicAlleles) {
  // dbSNP around its multi-allelic site chr22:3330 T>A,G; the REF of chr22:3310 (A) is
  // changed to C, and two records with symbolic / spanning-deletion ALTs are added.
  FastaReader fasta(data_path(kSetB));
  const std::string b3336 = fasta.fetch_string(Region{0, "chr22", 3335, 3336});
  const std::string b3337 = fasta.fetch_string(Region{0, "chr22", 3336, 3337});
  const std::string alt3337 = b3337 == "A" ? "C" : "A";
  const std::string src = shell_quote(data_path("setB/dbsnp_146.hg38.vcf.gz"));
  const std::string vcf = make_vcf(
      "planted.vcf.gz", "bcftools view -h " + src + "; bcftools view -H -r chr22:3300-3400 " + src +
                            " | awk 'BEGIN{OFS=\"\\t\"} $2==3310 {$4=\"C\"} {print} $2==3335 "
                            "{print $1,3336,\"sym1\",\"" + b3336 + "\",\"<DEL>\",\".\",\"PASS\",\".\"; "
                            "print $1,3337,\"sym2\",\"" + b3337 + "\",\"" + alt3337 + ",*\",\".\",\"PASS\",\".\"}'");
  ScoreOptions o = options(vcf);
  o.scores = parse_score_selection("llr,dll,emb");
  const ScoreSummary s = run(o);
  const auto rows = read_score_tsv(o.tsv);
  EXPECT_EQ(s.ref_mismatch, 1);
  EXPECT_EQ(s.symbolic_alleles, 2);
  int multi = 0;
  for (const auto& r : rows) {
    SCOPED_TRACE(std::to_string(r.pos) + " " + r.ref + ">" + r.alt);
    if (r.pos == 3310) {
      EXPECT_TRUE(r.has("GM_REFMISMATCH"));
      EXPECT_TRUE(std::isnan(r.llr) && std::isnan(r.dll) && std::isnan(r.emb));
    } else if (r.alt == "<DEL>" || r.alt == "*") {
      EXPECT_TRUE(std::isnan(r.llr) && std::isnan(r.dll) && std::isnan(r.emb));
      EXPECT_FALSE(r.has("GM_REFMISMATCH"));
    } else {
      EXPECT_FALSE(r.has("GM_REFMISMATCH"));
      EXPECT_TRUE(std::isfinite(r.dll));
      EXPECT_TRUE(std::isfinite(r.emb));
      EXPECT_GE(r.emb, 0.0);
    }
    if (r.pos == 3330) {
      ++multi;
      EXPECT_TRUE(std::isfinite(r.llr));
    }
  }
  EXPECT_EQ(multi, 2);
  // In the VCF: one value per ALT, '.' for the unscorable one.
  std::istringstream llr(sh("bcftools query -i 'POS==3330' -f '%INFO/GM_LLR' " + shell_quote(o.output)));
  std::string value;
  int n_values = 0;
  while (std::getline(llr, value, ',')) {
    EXPECT_TRUE(std::isfinite(test::parse_score(value))) << value;
    ++n_values;
  }
  EXPECT_EQ(n_values, 2);
  EXPECT_EQ(sh("bcftools query -i 'POS==3337' -f '%ALT %INFO/GM_DLL' " + shell_quote(o.output)).substr(0, 4),
            alt3337 + ",* ");
  EXPECT_NE(sh("bcftools query -i 'POS==3337' -f '%INFO/GM_DLL' " + shell_quote(o.output)).find(",."),
            std::string::npos);
  EXPECT_EQ(sh("bcftools query -i 'POS==3336' -f '%INFO/GM_DLL'" + std::string(" ") + shell_quote(o.output)), ".");
}

TEST_F(ScoreInput, GiabTruthSetAgainstThe10MbReference) {
  // The header declares chr20 at 64,444,167 bp; the FASTA holds its first 10,000,000.
  ScoreOptions plain = options(data_path(kGiab), data_path(kSetA));
  plain.regions = {"chr20:1-100000"};
  const std::string err = error_of(plain);
  EXPECT_NE(err.find("64,444,167"), std::string::npos) << err;
  EXPECT_NE(err.find("10,000,000"), std::string::npos) << err;
  EXPECT_NE(err.find("--allow-partial-reference"), std::string::npos) << err;

  // The last GIAB records inside 10 Mb, and copies moved past the FASTA's end (one spanning it).
  const std::string src = shell_quote(data_path(kGiab));
  const std::string vcf = make_vcf(
      "giab_tail.vcf.gz", "bcftools view -h " + src + "; bcftools view -H -r chr20:9990000-10000000 " + src +
                              "; printf 'chr20\\t9999999\\tspan\\tACGTA\\tA\\t50\\tPASS\\t.\\tGT\\t0/1\\n';"
                              " bcftools view -H -r chr20:9990000-10000000 " + src +
                              " | head -3 | awk 'BEGIN{OFS=\"\\t\"} {$2=$2+100000; print}'");
  ScoreOptions o = options(vcf, data_path(kSetA));
  o.allow_partial_reference = true;
  o.write_index = "csi";
  o.regions = {"chr20:9990000-10200000"};
  const ScoreSummary s = run(o);
  const auto rows = read_score_tsv(o.tsv);
  ASSERT_GT(rows.size(), 5u);
  int outside = 0;
  for (const auto& r : rows) {
    const bool past = r.pos - 1 + static_cast<int64_t>(r.ref.size()) > 10000000;
    EXPECT_EQ(r.has("GM_OUTSIDE"), past) << r.pos;
    if (past) {
      ++outside;
      EXPECT_TRUE(std::isnan(r.dll)) << r.pos;
    } else if (!r.has("GM_REFMISMATCH")) {
      EXPECT_TRUE(std::isfinite(r.dll)) << r.pos;
    }
  }
  EXPECT_EQ(outside, 4);
  EXPECT_EQ(s.outside, 4);
  EXPECT_EQ(s.ref_mismatch, 0);  // the truth set matches the FASTA
  EXPECT_NE(log_.str().find("4 GM_OUTSIDE"), std::string::npos) << log_.str();
  // Samples and FORMAT pass through.
  EXPECT_EQ(sh("bcftools query -f '%POS[ %GT %DP]\\n' " + shell_quote(o.output)),
            sh("bcftools query -f '%POS[ %GT %DP]\\n' " + shell_quote(vcf)));

  // A record on a contig the FASTA lacks: an error, unless the FASTA is declared partial.
  const std::string chr1 = make_vcf("chr1.vcf.gz", "bcftools view -h " + src +
                                                       "; printf 'chr1\\t1000\\tx\\tA\\tG\\t50\\tPASS\\t.\\tGT\\t0/1\\n'");
  ScoreOptions partial = options(chr1, data_path(kSetA));
  partial.allow_partial_reference = true;
  EXPECT_EQ(run(partial).outside, 1);
}

TEST_F(ScoreInput, ContigNamingMismatchHasTheHintAndRenameFixesIt) {
  const std::string src = shell_quote(data_path("setB/mills_and_1000G.indels.vcf.gz"));
  const std::string vcf = make_vcf("named22.vcf.gz", "bcftools view " + src + " | sed 's/^chr22\\t/22\\t/; s/ID=chr22,/ID=22,/'");
  const std::string err = error_of(options(vcf));
  EXPECT_NE(err.find("'22'"), std::string::npos) << err;
  EXPECT_NE(err.find("'chr22'"), std::string::npos) << err;
  EXPECT_NE(err.find("--rename-contigs"), std::string::npos) << err;

  const std::string map = dir_ / "rename.txt";
  std::ofstream(map) << "# VCF FASTA\n22\tchr22\n";
  ScoreOptions o = options(vcf);
  o.rename_contigs = map;
  EXPECT_EQ(run(o).scored_alleles, 14);
  EXPECT_EQ(sh("bcftools view -H " + shell_quote(o.output) + " | cut -f1 | sort -u"), "22\n");  // names kept
}

TEST_F(ScoreInput, HeaderMd5MustMatchTheFasta) {
  const std::string src = shell_quote(data_path("setB/mills_and_1000G.indels.vcf.gz"));
  const std::string bad = make_vcf("md5.vcf.gz", "bcftools view " + src +
                                                     " | sed 's/^##contig=<ID=chr22,length=40001/&,md5=0123456789abcdef0123456789abcdef/'");
  const std::string err = error_of(options(bad));
  EXPECT_NE(err.find("MD5"), std::string::npos) << err;
  EXPECT_NE(err.find("another assembly"), std::string::npos) << err;
  FastaReader fasta(data_path(kSetB));
  const std::string good = make_vcf("md5ok.vcf.gz", "bcftools view " + src + " | sed 's/^##contig=<ID=chr22,length=40001/&,md5=" +
                                                        fasta.md5(0) + "/'");
  EXPECT_EQ(run(options(good)).records, 14);
}

TEST_F(ScoreInput, UnsortedInputNeedsSortingOnlyForFullContext) {
  const std::string src = shell_quote(data_path("setB/mills_and_1000G.indels.vcf.gz"));
  const std::string vcf = dir_ / "unsorted.vcf";
  sh("(bcftools view -h " + src + "; bcftools view -H " + src + " | sort -k2,2nr) > " + shell_quote(vcf));
  ScoreOptions full = options(vcf);
  full.full_context = true;
  const std::string err = error_of(full);
  EXPECT_NE(err.find("not sorted"), std::string::npos) << err;
  EXPECT_NE(err.find("bcftools sort"), std::string::npos) << err;
  // Window mode scores records independently: unsorted input is fine, order kept.
  ScoreOptions window = options(vcf);
  const ScoreSummary s = run(window);
  EXPECT_EQ(s.records, 14);
  const auto rows = read_score_tsv(window.tsv);
  EXPECT_GT(rows.front().pos, rows.back().pos);
}

TEST_F(ScoreInput, RegionsNeedAnIndex) {
  const std::string vcf = dir_ / "noindex.vcf.gz";
  fs::copy_file(data_path("setB/mills_and_1000G.indels.vcf.gz"), vcf);
  ScoreOptions o = options(vcf);
  o.regions = {"chr22:1-20000"};
  const std::string err = error_of(o);
  EXPECT_NE(err.find("no index"), std::string::npos) << err;
  EXPECT_NE(err.find("bcftools index"), std::string::npos) << err;
  EXPECT_FALSE(fs::exists(o.output)) << "no output is left behind by a failed run";
  // Without regions the same file is read from start to end.
  EXPECT_EQ(run(options(vcf)).records, 14);
}

TEST_F(ScoreInput, BcfInputAndRegionsFileGiveTheSameScores) {
  const std::string src = data_path("setB/gnomAD.r2.1.1.vcf.gz");
  const std::string bcf = dir_ / "in.bcf";
  sh("bcftools view -Ob -o " + shell_quote(bcf) + " " + shell_quote(src) + " && bcftools index " + shell_quote(bcf));
  const std::string bed = dir_ / "regions.bed";
  std::ofstream(bed) << "chr22\t5000\t6000\nchr22\t5500\t7000\n";  // overlapping: records once
  ScoreOptions a = options(src), b = options(bcf);
  a.regions = {"chr22:5001-7000"};
  b.regions_file = bed;
  run(a);
  run(b);
  const auto ra = read_score_tsv(a.tsv), rb = read_score_tsv(b.tsv);
  ASSERT_GT(ra.size(), 30u);
  ASSERT_EQ(ra.size(), rb.size());
  for (size_t i = 0; i < ra.size(); ++i) {
    EXPECT_EQ(ra[i].pos, rb[i].pos);
    EXPECT_TRUE(test::same_bits(ra[i].llr, rb[i].llr));
    EXPECT_TRUE(test::same_bits(ra[i].dll, rb[i].dll));
  }
}

}  // namespace
}  // namespace gm
