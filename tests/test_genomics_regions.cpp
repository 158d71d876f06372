// Region strings, BED parsing (split column, extra columns), contig naming hints.
#include <gtest/gtest.h>

#include <fstream>
#include <functional>
#include <string>

#include "genomics/bed.h"
#include "genomics/contigs.h"
#include "genomics/errors.h"
#include "genomics/fasta.h"
#include "genomics/intervals.h"
#include "genomics/region.h"
#include "tests/test_support.h"

namespace gm {
namespace {

using test::data_path;

ContigIndex setA_contigs() { return FastaReader(data_path("setA/grch38.chr20_and_21_10M.fa.gz")).contigs(); }

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const InputError& e) {
    return e.what();
  }
  return "<no InputError>";
}

TEST(Regions, ParsesSamtoolsStyleOneBasedInclusive) {
  const ContigIndex ref = setA_contigs();
  Region r = parse_region("chr20:1-10,000", ref);
  EXPECT_EQ(r.contig, "chr20");
  EXPECT_EQ(r.contig_id, 0);
  EXPECT_EQ(r.beg, 0);
  EXPECT_EQ(r.end, 10000);
  r = parse_region("chr21", ref);
  EXPECT_EQ(r.contig_id, 1);
  EXPECT_EQ(r.beg, 0);
  EXPECT_EQ(r.end, 10000000);
  r = parse_region("chr21:9000001-", ref);
  EXPECT_EQ(r.beg, 9000000);
  EXPECT_EQ(r.end, 10000000);
  r = parse_region("chr21:5", ref);
  EXPECT_EQ(r.beg, 4);
  EXPECT_EQ(r.end, 10000000);
  r = parse_region("chr20:7-7", ref);
  EXPECT_EQ(r.length(), 1);
  EXPECT_EQ(r.to_string(), "chr20:7-7");
}

TEST(Regions, ContigNamesWithColonsAreMatchedWhole) {
  ContigIndex ref({{"HLA-A*01:01:01:01", 3503}, {"chr1", 100}});
  const Region r = parse_region("HLA-A*01:01:01:01", ref);
  EXPECT_EQ(r.contig_id, 0);
  EXPECT_EQ(r.end, 3503);
  const Region s = parse_region("HLA-A*01:01:01:01:11-20", ref);
  EXPECT_EQ(s.beg, 10);
  EXPECT_EQ(s.end, 20);
}

TEST(Regions, BadRegionsAreClearErrors) {
  const ContigIndex ref = setA_contigs();
  EXPECT_NE(error_of([&] { parse_region("chr20:9999990-10000010", ref); }).find("past the end of chr20"),
            std::string::npos);
  EXPECT_NE(error_of([&] { parse_region("chr20:20000000-", ref); }).find("past the end"), std::string::npos);
  EXPECT_NE(error_of([&] { parse_region("chr20:500-100", ref); }).find("after end"), std::string::npos);
  EXPECT_NE(error_of([&] { parse_region("chr20:0-100", ref); }).find(">= 1"), std::string::npos);
  EXPECT_NE(error_of([&] { parse_region("chr20:abc-100", ref); }).find("bad start"), std::string::npos);
  EXPECT_NE(error_of([&] { parse_region("chr22:1-100", ref); }).find("unknown contig 'chr22'"), std::string::npos);
}

TEST(ContigNaming, HintWhenChrPrefixDiffers) {
  const ContigIndex ref = setA_contigs();
  const std::string msg = error_of([&] { parse_region("21:1-100", ref); });
  EXPECT_NE(msg.find("unknown contig '21'"), std::string::npos) << msg;
  EXPECT_NE(msg.find("the FASTA names it 'chr21'"), std::string::npos) << msg;
  ContigIndex ensembl({{"21", 100}, {"MT", 16569}});
  EXPECT_NE(error_of([&] { ensembl.require("chr21", "x"); }).find("names it '21'"), std::string::npos);
  EXPECT_NE(error_of([&] { ensembl.require("chrM", "x"); }).find("names it 'MT'"), std::string::npos);
  // No hint when neither style exists.
  EXPECT_EQ(error_of([&] { ref.require("chrUn_xyz", "x"); }).find("names it"), std::string::npos);
}

TEST(ContigNaming, HeaderChecksCatchOtherAssembliesAndNamingStyles) {
  const ContigIndex ref = setA_contigs();
  EXPECT_NO_THROW(check_header_contigs({{"chr20", 10000000}, {"chr1", 248956422}}, ref, "f.bam"));
  EXPECT_NO_THROW(check_header_contigs({{"chr20", 0}}, ref, "f.vcf"));  // VCF without length
  const std::string len = error_of([&] { check_header_contigs({{"chr20", 64444167}}, ref, "f.bam"); });
  EXPECT_NE(len.find("f.bam"), std::string::npos) << len;
  EXPECT_NE(len.find("another assembly"), std::string::npos) << len;
  const std::string style = error_of([&] { check_header_contigs({{"20", 10000000}}, ref, "f.bam"); });
  EXPECT_NE(style.find("names it 'chr20'"), std::string::npos) << style;
}

TEST(Bed, ReadsPlainBedKeepingExtraColumns) {
  test::TempDir dir;
  std::ofstream(dir / "a.bed") << "track name=x\n# comment\nchr20\t100\t200\tgeneA\t0\t-\textra1\n\nchr21\t5\t6\n";
  const BedFile bed = read_bed(dir / "a.bed");
  EXPECT_FALSE(bed.has_split_column);
  ASSERT_EQ(bed.records.size(), 2u);
  const BedRecord& r = bed.records[0];
  EXPECT_EQ(r.contig, "chr20");
  EXPECT_EQ(r.beg, 100);
  EXPECT_EQ(r.end, 200);
  EXPECT_EQ(r.name, "geneA");
  EXPECT_EQ(r.score, "0");
  EXPECT_EQ(r.strand, '-');
  EXPECT_EQ(r.fields, (std::vector<std::string>{"geneA", "0", "-", "extra1"}));
  EXPECT_EQ(r.line, 3);
  EXPECT_EQ(bed.records[1].line, 5);
  EXPECT_EQ(bed.records[1].strand, '.');
}

TEST(Bed, FourthColumnTrainValidTestIsASplit) {
  test::TempDir dir;
  std::ofstream(dir / "s.bed") << "chr20\t0\t131072\ttrain\nchr20\t131072\t262144\tvalid\nchr21\t9000000\t9131072\ttest\n";
  const BedFile bed = read_bed(dir / "s.bed");
  EXPECT_TRUE(bed.has_split_column);
  EXPECT_EQ(bed.records[0].split, Split::Train);
  EXPECT_EQ(bed.records[1].split, Split::Valid);
  EXPECT_EQ(bed.records[2].split, Split::Test);
  EXPECT_TRUE(bed.records[0].name.empty());
  const ContigIndex ref = setA_contigs();
  const auto valid = intervals_from_bed(bed, ref, Split::Valid);
  ASSERT_EQ(valid.size(), 1u);
  EXPECT_EQ(valid[0].region.beg, 131072);
  EXPECT_EQ(intervals_from_bed(bed, ref).size(), 3u);
  // A BED without the column cannot select a split.
  const BedFile plain = read_bed(data_path("setA/chr21_roi.bed"));
  EXPECT_FALSE(plain.has_split_column);
  EXPECT_THROW(intervals_from_bed(plain, ref, Split::Train), InputError);
}

TEST(Bed, RealFilesParse) {
  const ContigIndex ref = setA_contigs();
  const BedFile roi = read_bed(data_path("setA/chr21_roi.bed"));
  EXPECT_EQ(roi.records.size(), 121u);
  EXPECT_EQ(bed_regions(roi, ref).size(), 121u);
  const BedFile exons = read_bed(data_path("setA/chr21_exons.ensembl105.contig21.bed"));
  EXPECT_EQ(exons.records.size(), 95u);
  EXPECT_EQ(exons.records[0].name, "ENSG00000279493_1");
}

TEST(BedErrors, NamesFileAndLine) {
  test::TempDir dir;
  std::ofstream(dir / "few.bed") << "chr20\t1\t5\nchr20\t7\n";
  std::ofstream(dir / "rev.bed") << "chr20\t1\t5\n\nchr20\t90\t80\n";
  std::ofstream(dir / "num.bed") << "chr20\t1\tfive\n";
  const std::string few = error_of([&] { read_bed(dir / "few.bed"); });
  EXPECT_NE(few.find("few.bed:2:"), std::string::npos) << few;
  EXPECT_NE(few.find("at least 3"), std::string::npos) << few;
  const std::string rev = error_of([&] { read_bed(dir / "rev.bed"); });
  EXPECT_NE(rev.find("rev.bed:3:"), std::string::npos) << rev;
  EXPECT_NE(rev.find("after end"), std::string::npos) << rev;
  EXPECT_NE(error_of([&] { read_bed(dir / "num.bed"); }).find("num.bed:1:"), std::string::npos);
  EXPECT_NE(error_of([&] { read_bed(dir / "missing.bed"); }).find("No such file"), std::string::npos);
}

TEST(BedErrors, RealIntervalPastContigEnd) {
  // The GIAB BED's last interval runs past the 10 Mb contig on purpose.
  const ContigIndex ref = setA_contigs();
  const BedFile bed = read_bed(data_path("setA/HG002_GIAB_v4.2.1.chr20_1-10M.bed"));
  const std::string msg = error_of([&] { bed_regions(bed, ref); });
  EXPECT_NE(msg.find("HG002_GIAB_v4.2.1.chr20_1-10M.bed:" + std::to_string(bed.records.size()) + ":"),
            std::string::npos)
      << msg;
  EXPECT_NE(msg.find("past the end of chr20"), std::string::npos) << msg;
}

TEST(BedErrors, RealContigNamingMismatchGivesHint) {
  const ContigIndex ref = setA_contigs();
  const BedFile bed = read_bed(data_path("setA/chr21_exons.ensembl105.contig21.bed"));
  const std::string msg = error_of([&] { bed_regions(bed, ref); });
  EXPECT_NE(msg.find("chr21_exons.ensembl105.contig21.bed:1:"), std::string::npos) << msg;
  EXPECT_NE(msg.find("the FASTA names it 'chr21'"), std::string::npos) << msg;
}

TEST(Intervals, RegionsOrWholeContigs) {
  const ContigIndex ref = setA_contigs();
  const auto all = intervals_from_regions({}, ref);
  ASSERT_EQ(all.size(), 2u);
  EXPECT_EQ(all[1].region.length(), 10000000);
  const auto valid = intervals_from_regions({"chr21"}, ref, Split::Valid);
  ASSERT_EQ(valid.size(), 1u);
  EXPECT_EQ(valid[0].split, Split::Valid);
  EXPECT_EQ(valid[0].region.contig, "chr21");
}

}  // namespace
}  // namespace gm
