// ReadReader on the bundled BAM/CRAM files: filter counts (cross-checked with
// `samtools view -c`), sequencing orientation, BAM == CRAM, and the error cases.
#include <gtest/gtest.h>
#include <htslib/sam.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <string>
#include <vector>

#include "genomics/errors.h"
#include "genomics/fasta.h"
#include "genomics/reads.h"
#include "tests/test_support.h"

namespace gm {
namespace {

namespace fs = std::filesystem;
using test::data_path;

const std::string kBamB = "setB/test.paired_end.sorted.bam";
const std::string kCramB = "setB/test.paired_end.sorted.cram";
const std::string kRefB = "setB/genome.fasta";
const std::string kBamA = "setA/grch38_1k_subset_chr20_and_chr21.bam";
const std::string kRefA = "setA/grch38.chr20_and_21_10M.fa.gz";

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const InputError& e) {
    return e.what();
  }
  return "<no InputError>";
}

std::vector<Read> all_reads(ReadReader& reader) {
  std::vector<Read> out;
  Read r;
  while (reader.next(r)) out.push_back(r);
  return out;
}

TEST(Reads, DefaultFilterCountsMatchSamtools) {
  // samtools view -c: all records, then -F 0xF00 (the default filter).
  FastaReader refB(data_path(kRefB));
  ReadReader b(data_path(kBamB), &refB);
  const auto reads = all_reads(b);
  EXPECT_EQ(b.stats().records, 5644);
  EXPECT_EQ(b.stats().kept, 5642);
  EXPECT_EQ(b.stats().dropped_flags, 2);
  EXPECT_EQ(b.stats().no_seq, 0);
  EXPECT_EQ(static_cast<int64_t>(reads.size()), 5642);
  int64_t unmapped = 0, bases = 0;
  for (const auto& r : reads) {
    unmapped += (r.flag & BAM_FUNMAP) != 0;
    bases += static_cast<int64_t>(r.seq.size());
  }
  EXPECT_EQ(unmapped, 2);  // samtools view -c -f 4 -F 0xF00: unmapped reads are kept
  EXPECT_EQ(b.stats().kept_bases, bases);

  FastaReader refA(data_path(kRefA));
  ReadReader a(data_path(kBamA), &refA);
  all_reads(a);
  EXPECT_EQ(a.stats().records, 3629);
  EXPECT_EQ(a.stats().kept, 2543);
}

TEST(Reads, MapqAndUnmappedFilters) {
  FastaReader refA(data_path(kRefA));
  ReadFilter f;
  f.min_mapq = 30;
  ReadReader a(data_path(kBamA), &refA, f);
  all_reads(a);
  // samtools view -c -F 0xF00 -q 30 gives 758; -q also drops unmapped reads (MAPQ 0),
  // which this filter keeps: 28 unmapped reads pass -F 0xF00 (samtools view -c -f 4 -F 0xF00).
  EXPECT_EQ(a.stats().kept, 758 + 28);
  f.keep_unmapped = false;
  ReadReader a2(data_path(kBamA), &refA, f);
  all_reads(a2);
  EXPECT_EQ(a2.stats().kept, 758);
  EXPECT_EQ(a2.stats().dropped_unmapped, 28);
}

TEST(Reads, SequenceIsInSequencingOrientationWithSoftClips) {
  // Independent decode of the stored SEQ with htslib's own tables.
  samFile* fp = sam_open(data_path(kBamA).c_str(), "r");
  ASSERT_NE(fp, nullptr);
  sam_hdr_t* hdr = sam_hdr_read(fp);
  bam1_t* b = bam_init1();
  std::vector<std::pair<std::string, bool>> stored;  // SEQ as stored, reverse flag
  while (sam_read1(fp, hdr, b) >= 0) {
    if (b->core.flag & 0xF00) continue;
    std::string s;
    for (int i = 0; i < b->core.l_qseq; ++i) s.push_back(seq_nt16_str[bam_seqi(bam_get_seq(b), i)]);
    stored.emplace_back(s, (b->core.flag & BAM_FREVERSE) != 0);
  }
  bam_destroy1(b);
  sam_hdr_destroy(hdr);
  sam_close(fp);

  ReadReader reader(data_path(kBamA), nullptr);
  const auto reads = all_reads(reader);
  ASSERT_EQ(reads.size(), stored.size());
  auto rc = [](std::string s) {
    std::reverse(s.begin(), s.end());
    for (char& c : s) c = c == 'A' ? 'T' : c == 'T' ? 'A' : c == 'C' ? 'G' : c == 'G' ? 'C' : 'N';
    return s;
  };
  int reversed = 0, clipped = 0;
  for (size_t i = 0; i < reads.size(); ++i) {
    EXPECT_EQ(reads[i].reverse, stored[i].second);
    EXPECT_EQ(reads[i].seq, stored[i].second ? rc(stored[i].first) : stored[i].first) << reads[i].name;
    reversed += stored[i].second;
    clipped += reads[i].seq.size() == 151 ? 0 : 1;
  }
  EXPECT_GT(reversed, 100);
  // Soft clips are part of SEQ: every kept read here is a full 2x151 read.
  EXPECT_EQ(clipped, 0);
}

TEST(Reads, CramAndBamGiveTheSameReads) {
  FastaReader ref(data_path(kRefB));
  ReadReader bam(data_path(kBamB), &ref);
  ReadReader cram(data_path(kCramB), &ref);
  EXPECT_FALSE(bam.is_cram());
  EXPECT_TRUE(cram.is_cram());
  const auto x = all_reads(bam);
  const auto y = all_reads(cram);
  ASSERT_EQ(x.size(), y.size());
  for (size_t i = 0; i < x.size(); ++i) {
    ASSERT_EQ(x[i].name, y[i].name) << i;
    ASSERT_EQ(x[i].flag, y[i].flag) << i;
    ASSERT_EQ(x[i].pos, y[i].pos) << i;
    ASSERT_EQ(x[i].seq, y[i].seq) << x[i].name;
  }
  EXPECT_EQ(bam.stats().kept, cram.stats().kept);
}

TEST(Reads, RegionQueryMatchesSamtools) {
  FastaReader ref(data_path(kRefB));
  ReadReader bam(data_path(kBamB), &ref);
  bam.set_region(parse_region("chr22:2001-3000", ref.contigs()));
  EXPECT_EQ(all_reads(bam).size(), 2730u);  // samtools view -c -F 0xF00 ... chr22:2001-3000
  ReadReader cram(data_path(kCramB), &ref);
  cram.set_region(parse_region("chr22:2001-3000", ref.contigs()));
  EXPECT_EQ(all_reads(cram).size(), 2730u);
  FastaReader refA(data_path(kRefA));
  ReadReader a(data_path(kBamA), &refA);
  a.set_region(parse_region("chr20:60001-61000", refA.contigs()));
  EXPECT_EQ(all_reads(a).size(), 86u);
  a.set_whole_file();
  EXPECT_EQ(all_reads(a).size(), 2543u);
}

TEST(Reads, RecordsWithoutSeqAreSkippedAndCounted) {
  test::TempDir dir;
  std::ofstream(dir / "noseq.sam") << "@HD\tVN:1.6\n@SQ\tSN:chr22\tLN:40001\n"
                                      "r1\t0\tchr22\t100\t60\t4M\t*\t0\t0\tACGT\tIIII\n"
                                      "r2\t0\tchr22\t200\t60\t4M\t*\t0\t0\t*\t*\n"
                                      "r3\t256\tchr22\t300\t0\t4M\t*\t0\t0\t*\t*\n"
                                      "r4\t16\tchr22\t400\t60\t2S3M\t*\t0\t0\tAACCG\tIIIII\n";
  FastaReader ref(data_path(kRefB));
  ReadReader r(dir / "noseq.sam", &ref);
  const auto reads = all_reads(r);
  ASSERT_EQ(reads.size(), 2u);
  EXPECT_EQ(reads[0].seq, "ACGT");
  EXPECT_EQ(reads[1].seq, "CGGTT");  // reverse strand, soft clip kept, flipped back
  EXPECT_EQ(r.stats().records, 4);
  EXPECT_EQ(r.stats().no_seq, 1);        // r2; r3 is dropped as secondary first
  EXPECT_EQ(r.stats().dropped_flags, 1);
}

TEST(ReadErrors, CramWithoutReference) {
  const std::string msg = error_of([] { ReadReader r(data_path(kCramB), nullptr); });
  EXPECT_NE(msg.find("CRAM"), std::string::npos) << msg;
  EXPECT_NE(msg.find("reference"), std::string::npos) << msg;
}

TEST(ReadErrors, CramWithAnotherReferenceNeverFetchesFromTheNetwork) {
  // setA has no chr22, so htslib would look the reference up by MD5 (by default on
  // the EBI server); the reader must fail locally instead.
  FastaReader refA(data_path(kRefA));
  const std::string msg = error_of([&] {
    ReadReader r(data_path(kCramB), &refA);
    Read read;
    while (r.next(read)) {
    }
  });
  EXPECT_NE(msg.find("test.paired_end.sorted.cram"), std::string::npos) << msg;
  const char* ref_path = std::getenv("REF_PATH");
  ASSERT_NE(ref_path, nullptr);
  EXPECT_EQ(std::string(ref_path).find("http"), std::string::npos);
}

TEST(ReadErrors, BamWithoutIndexWhenARegionIsAsked) {
  test::TempDir dir;
  const std::string bam = dir / "noindex.bam";
  fs::copy_file(data_path(kBamB), bam);
  FastaReader ref(data_path(kRefB));
  ReadReader r(bam, &ref);
  const std::string msg = error_of([&] { r.set_region(parse_region("chr22:1-100", ref.contigs())); });
  EXPECT_NE(msg.find("no index"), std::string::npos) << msg;
  EXPECT_NE(msg.find("samtools index"), std::string::npos) << msg;
  // The whole file still reads without an index.
  ReadReader whole(bam, &ref);
  EXPECT_EQ(all_reads(whole).size(), 5642u);
}

TEST(ReadErrors, ContigLengthsDifferingFromTheFasta) {
  test::TempDir dir;
  // chr22 cut to 30,000 bases: the BAM/CRAM headers say 40,001.
  FastaReader full(data_path(kRefB));
  std::ofstream(dir / "short.fa") << ">chr22\n" << std::string(full.fetch(0, 0, 30000).view()) << "\n";
  FastaReader cut(dir / "short.fa");
  for (const std::string& rel : {kBamB, kCramB}) {
    const std::string msg = error_of([&] { ReadReader r(data_path(rel), &cut); });
    EXPECT_NE(msg.find("another assembly"), std::string::npos) << msg;
    EXPECT_NE(msg.find("40,001"), std::string::npos) << msg;
  }
}

TEST(ReadErrors, MissingTruncatedAndNotBam) {
  EXPECT_NE(error_of([] { ReadReader r("/nonexistent/x.bam", nullptr); }).find("No such file"), std::string::npos);
  test::TempDir dir;
  const std::string cut = dir / "cut.bam";
  fs::copy_file(data_path(kBamA), cut);
  fs::resize_file(cut, fs::file_size(cut) / 2);
  EXPECT_NE(error_of([&] {
              ReadReader r(cut, nullptr);
              Read read;
              while (r.next(read)) {
              }
            }).find("truncated"),
            std::string::npos);
  EXPECT_THROW(ReadReader r(data_path(kRefB), nullptr), InputError);
}

}  // namespace
}  // namespace gm
