// VcfReader: record iteration, region restriction (counts cross-checked with
// `bcftools view -H`), header contig lengths, and the error cases.
#include <gtest/gtest.h>

#include <filesystem>
#include <functional>
#include <string>

#include "genomics/errors.h"
#include "genomics/fasta.h"
#include "genomics/vcf.h"
#include "tests/test_support.h"

namespace gm {
namespace {

namespace fs = std::filesystem;
using test::data_path;

const std::string kCohort = "setA/cohort-chr20_100k.vcf.gz";

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const InputError& e) {
    return e.what();
  }
  return "<no InputError>";
}

int64_t count_records(VcfReader& r) {
  VcfRecord rec;
  int64_t n = 0;
  while (r.next(rec)) ++n;
  return n;
}

TEST(Vcf, IteratesAllRecordsAndARegion) {
  VcfReader r(data_path(kCohort));
  VcfRecord first;
  ASSERT_TRUE(r.next(first));
  EXPECT_EQ(first.contig, "chr20");
  EXPECT_GE(first.pos, 60069);  // the file starts at chr20:60,070 (1-based)
  EXPECT_FALSE(first.ref.empty());
  EXPECT_EQ(1 + count_records(r), 1354);
  FastaReader ref(data_path("setA/grch38.chr20_and_21_10M.fa.gz"));
  r.set_region(parse_region("chr20:70000-80000", ref.contigs()));
  EXPECT_EQ(count_records(r), 283);  // bcftools view -H -r chr20:70000-80000 | wc -l
  r.set_region(parse_region("chr21", ref.contigs()));
  EXPECT_EQ(count_records(r), 0);
  r.set_whole_file();
  EXPECT_EQ(count_records(r), 1354);
}

TEST(Vcf, RecordFieldsMatchTheText) {
  VcfReader r(data_path("setB/dbsnp_146.hg38.vcf.gz"));
  VcfRecord rec;
  ASSERT_TRUE(r.next(rec));
  // First data line: chr22 66 rs568512106 A G
  EXPECT_EQ(rec.contig, "chr22");
  EXPECT_EQ(rec.pos, 65);
  EXPECT_EQ(rec.id, "rs568512106");
  EXPECT_EQ(rec.ref, "A");
  EXPECT_EQ(rec.alts, std::vector<std::string>{"G"});
}

TEST(Vcf, HeaderContigsAreCheckedAgainstTheReference) {
  VcfReader cohort(data_path(kCohort));
  const auto& contigs = cohort.header_contigs();
  ASSERT_GE(contigs.size(), 20u);
  EXPECT_EQ(contigs[0].name, "chr1");
  EXPECT_EQ(contigs[0].length, 248956422);
  // The bundled reference is chr20's first 10 Mb; the VCF header has the full chr20.
  FastaReader refA(data_path("setA/grch38.chr20_and_21_10M.fa.gz"));
  const std::string msg = error_of([&] { check_header_contigs(contigs, refA.contigs(), cohort.path()); });
  EXPECT_NE(msg.find("64,444,167"), std::string::npos) << msg;
  // ##contig=<ID=chr22> without a length is accepted.
  VcfReader dbsnp(data_path("setB/dbsnp_146.hg38.vcf.gz"));
  FastaReader refB(data_path("setB/genome.fasta"));
  EXPECT_NO_THROW(check_header_contigs(dbsnp.header_contigs(), refB.contigs(), dbsnp.path()));
}

TEST(VcfErrors, MissingIndexTruncatedAndMissingFile) {
  test::TempDir dir;
  const std::string noidx = dir / "noidx.vcf.gz";
  fs::copy_file(data_path(kCohort), noidx);
  VcfReader r(noidx);
  FastaReader ref(data_path("setA/grch38.chr20_and_21_10M.fa.gz"));
  const std::string msg = error_of([&] { r.set_region(parse_region("chr20:1-100000", ref.contigs())); });
  EXPECT_NE(msg.find("no index"), std::string::npos) << msg;

  const std::string cut = dir / "cut.vcf.gz";
  fs::copy_file(data_path("setA/HG002_GIAB_v4.2.1.chr20_1-10M.vcf.gz"), cut);
  fs::resize_file(cut, fs::file_size(cut) / 2);
  EXPECT_NE(error_of([&] {
              VcfReader t(cut);
              count_records(t);
            }).find("truncated"),
            std::string::npos);
  EXPECT_NE(error_of([] { VcfReader m("/nonexistent/x.vcf.gz"); }).find("No such file"), std::string::npos);
}

}  // namespace
}  // namespace gm
