// Building blocks of `genomamba score`: allele classes, window flanks, strand jobs (the
// reverse strand's coordinates, complemented alleles and swapped flanks), reading a
// contig stretch on either strand, regions and shard units, the contig rename map.
#include <gtest/gtest.h>

#include <fstream>

#include "genomics/errors.h"
#include "genomics/tokenizer.h"
#include "pipelines/score_alleles.h"
#include "pipelines/score_contigs.h"
#include "pipelines/score_sequence.h"
#include "tests/test_support.h"

namespace gm {
namespace {

using test::data_path;

TEST(ScoreAlleles, SequenceAllelesAndTokens) {
  for (const char* a : {"A", "acgt", "N", "ACGTRYKM"}) EXPECT_TRUE(is_sequence_allele(a)) << a;
  for (const char* a : {"<DEL>", "*", "G]chr2:100]", "]chr2:100]G", ".A", "A.", ".", "", "<*>"}) {
    EXPECT_FALSE(is_sequence_allele(a)) << a;
  }
  EXPECT_EQ(allele_tokens("aCgTr"), (std::vector<uint8_t>{token::kA, token::kC, token::kG, token::kT, token::kN}));
  EXPECT_EQ(reverse_complement_tokens({token::kA, token::kA, token::kC, token::kN}),
            (std::vector<uint8_t>{token::kN, token::kG, token::kT, token::kT}));
}

TEST(ScoreAlleles, WindowFlanksCentreTheVariant) {
  EXPECT_EQ(window_flanks(8192).left, 4096);
  EXPECT_EQ(window_flanks(8192).right, 4095);  // 4096 + 1 + 4095 = 8192 bases
  EXPECT_EQ(window_flanks(33).left, 16);
  EXPECT_EQ(window_flanks(33).right, 16);
  EXPECT_EQ(window_flanks(1).left + window_flanks(1).right, 0);
  EXPECT_THROW(window_flanks(0), std::invalid_argument);
}

TEST(ScoreAlleles, StrandJobsOfBothStrands) {
  JobGeometry g;
  g.llr = g.dll = g.emb = true;
  g.context = 100;
  g.window = 20;  // flanks 10 and 9
  const std::vector<uint8_t> ref = {token::kA, token::kC}, alt = {token::kA};  // deletion of C at 501
  const StrandJob f = make_strand_job(Strand::Forward, 500, ref, alt, 1000, g);
  EXPECT_EQ(f.pos, 500);
  EXPECT_EQ(f.context_start, 400);
  EXPECT_EQ(f.left, 10);
  EXPECT_EQ(f.right, 9);
  EXPECT_FALSE(f.llr);  // not an SNV
  EXPECT_FALSE(f.edge);
  const StrandJob r = make_strand_job(Strand::Reverse, 500, ref, alt, 1000, g);
  EXPECT_EQ(r.pos, 1000 - 500 - 2);
  EXPECT_EQ(r.ref, (std::vector<uint8_t>{token::kG, token::kT}));
  EXPECT_EQ(r.alt, (std::vector<uint8_t>{token::kT}));
  EXPECT_EQ(r.left, 9);  // the forward right flank
  EXPECT_EQ(r.right, 10);
  EXPECT_EQ(r.context_start, r.pos - 100);

  // Near the start: the forward context is short (edge); the reverse strand is fine there
  // but its right flank (the forward left flank) is clipped: edge too.
  const StrandJob f0 = make_strand_job(Strand::Forward, 3, {token::kG}, {token::kT}, 1000, g);
  EXPECT_TRUE(f0.llr);
  EXPECT_EQ(f0.context_start, 0);
  EXPECT_EQ(f0.left, 3);
  EXPECT_TRUE(f0.edge);
  const StrandJob r0 = make_strand_job(Strand::Reverse, 3, {token::kG}, {token::kT}, 1000, g);
  EXPECT_EQ(r0.right, 3);
  EXPECT_TRUE(r0.edge);
  // On the very first base the forward strand has nothing to predict from.
  EXPECT_FALSE(make_strand_job(Strand::Forward, 0, {token::kG}, {token::kT}, 1000, g).llr);
  EXPECT_TRUE(make_strand_job(Strand::Reverse, 0, {token::kG}, {token::kT}, 1000, g).llr);
  // Full context: only a strand's first base is an edge for LLR.
  JobGeometry full = g;
  full.context = 0;
  full.dll = full.emb = false;
  EXPECT_FALSE(make_strand_job(Strand::Forward, 3, {token::kG}, {token::kT}, 1000, full).edge);
  EXPECT_EQ(make_strand_job(Strand::Forward, 3, {token::kG}, {token::kT}, 1000, full).context_start, 0);
  EXPECT_THROW(make_strand_job(Strand::Forward, 999, ref, alt, 1000, g), std::invalid_argument);
}

TEST(ScoreAlleles, ContigTokensOnBothStrands) {
  FastaReader fasta(data_path("setB/genome.fasta"));
  const ContigTokens whole(fasta, 0, 0, 40001);
  const ContigTokens part(fasta, 0, 1000, 3000);
  EXPECT_EQ(part.contig_length(), 40001);
  std::vector<uint8_t> fwd(40001), rc(40001), flags(40001);
  whole.strand_slice(Strand::Forward, 0, 40001, fwd.data());
  whole.strand_slice(Strand::Reverse, 0, 40001, rc.data());
  std::vector<uint8_t> expect = fwd;
  reverse_complement(expect.data(), flags.data(), expect.size());
  EXPECT_EQ(rc, expect);
  // Strand [37001, 38001) is forward [2000, 3000): inside `part`.
  std::vector<uint8_t> a(1000);
  part.strand_slice(Strand::Reverse, 37001, 38001, a.data());
  EXPECT_TRUE(std::equal(a.begin(), a.end(), rc.begin() + 37001));
  EXPECT_THROW(part.strand_slice(Strand::Forward, 500, 1500, a.data()), std::out_of_range);
  EXPECT_EQ(part.forward(1000), fwd[1000]);
}

TEST(ScoreAlleles, ContigTokensFetchedInTheBackgroundEqualTheDirectFetch) {
  // 2.5 Mb of chr20: a first piece of 1 Mb, then 4 Mb pieces; read while it arrives.
  FastaReader fasta(data_path("setA/grch38.chr20_and_21_10M.fa.gz"));
  const int id = 0;
  const int64_t beg = 1000, end = 2500000;
  const auto background = ContigTokens::fetch_in_background(fasta, id, beg, end);
  EXPECT_EQ(background->forward(end - 1), background->forward(end - 1));  // waits for the last piece
  std::vector<uint8_t> tail(3000), head(5000);
  background->strand_slice(Strand::Forward, end - 3000, end, tail.data());
  const int64_t L = background->contig_length();
  background->strand_slice(Strand::Reverse, L - end, L - end + 5000, head.data());
  background->fetch_done();
  const ContigTokens direct(fasta, id, beg, end);
  std::vector<uint8_t> a(static_cast<size_t>(end - beg)), b(a.size());
  background->strand_slice(Strand::Forward, beg, end, a.data());
  direct.strand_slice(Strand::Forward, beg, end, b.data());
  EXPECT_EQ(a, b);
  EXPECT_TRUE(std::equal(tail.begin(), tail.end(), b.end() - 3000));
  std::vector<uint8_t> rc(5000);
  direct.strand_slice(Strand::Reverse, L - end, L - end + 5000, rc.data());
  EXPECT_EQ(head, rc);
  EXPECT_GT(background->fetch_seconds(), 0.0);
}

TEST(ScoreAlleles, ContigTokensBackgroundFetchErrorReachesTheReader) {
  // A character that is no base 1.5 Mb into the contig: past the first piece, so the start
  // is read fine and the error comes to whoever waits for the bases after it.
  test::TempDir dir;
  const std::string path = dir / "bad.fa";
  {
    std::ofstream f(path);
    f << ">chrX\n";
    const std::string line(60, 'A');
    for (int i = 0; i < 50000; ++i) f << (i == 25000 ? std::string(59, 'C') + "!" : line) << "\n";
  }
  FastaReader fasta(path);
  const auto seq = ContigTokens::fetch_in_background(fasta, 0, 0, 3000000);
  std::vector<uint8_t> start(1000);
  EXPECT_NO_THROW(seq->strand_slice(Strand::Forward, 0, 1000, start.data()));  // the first piece is whole
  EXPECT_EQ(start[999], start[0]);
  try {
    seq->fetch_done();
    FAIL() << "the bad character was not reported";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("chrX:1500060"), std::string::npos) << e.what();
  }
}

TEST(ScoreAlleles, RegionsAndShardUnits) {
  ContigIndex space({{"chrA", 25000}, {"chrB", 8000}});
  std::vector<Region> r = {parse_region("chrB:1-100", space), parse_region("chrA:15001-25000", space),
                           parse_region("chrA:1-12000", space), parse_region("chrA:11000-16000", space)};
  const auto norm = normalize_regions(r);
  ASSERT_EQ(norm.size(), 2u);  // chrA merged into one, then chrB (space order)
  EXPECT_EQ(norm[0].contig, "chrA");
  EXPECT_EQ(norm[0].beg, 0);
  EXPECT_EQ(norm[0].end, 25000);
  const auto blocks = shard_units(norm, false, 10000);
  ASSERT_EQ(blocks.size(), 4u);  // chrA: [0,10k) [10k,20k) [20k,25k); chrB: [0,100)
  EXPECT_EQ(blocks[2].region.beg, 20000);
  EXPECT_EQ(blocks[3].unit, 3);
  const auto contigs = shard_units(whole_contigs(space), true, 10000);
  ASSERT_EQ(contigs.size(), 2u);
  EXPECT_EQ(contigs[1].unit, 1);
}

TEST(ScoreAlleles, RenameMap) {
  test::TempDir dir;
  FastaReader fasta(data_path("setB/genome.fasta"));
  std::ofstream(dir / "ok.txt") << "# from to\n22 chr22\n\nMT chrM\n";
  const ContigMapping m(fasta.contigs(), dir / "ok.txt");
  EXPECT_EQ(m.find("22"), 0);
  EXPECT_EQ(m.fasta_name("MT"), "chrM");
  EXPECT_EQ(m.vcf_name("chr22"), "22");
  EXPECT_FALSE(m.find("chr1").has_value());
  const ContigMapping plain(fasta.contigs(), "");
  EXPECT_NE(plain.naming_hint("22").find("'chr22'"), std::string::npos);
  std::ofstream(dir / "bad.txt") << "22 chr22 extra\n";
  try {
    ContigMapping bad(fasta.contigs(), dir / "bad.txt");
    FAIL() << "three columns accepted";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("bad.txt:1"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace gm
