// PackedReadDataset: reads packed back to back with document-start flags at read
// starts, BAM and CRAM alike, finite and repeating streams, cursor resume.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "genomics/errors.h"
#include "genomics/fasta.h"
#include "genomics/prefetch_loader.h"
#include "genomics/read_dataset.h"
#include "genomics/reads.h"
#include "genomics/tokenizer.h"
#include "tests/test_support.h"

namespace gm {
namespace {

using test::data_path;

const std::string kBamB = "setB/test.paired_end.sorted.bam";
const std::string kCramB = "setB/test.paired_end.sorted.cram";
const std::string kRefB = "setB/genome.fasta";
const std::string kBamA = "setA/grch38_1k_subset_chr20_and_chr21.bam";

struct Stream {
  std::vector<uint8_t> tokens;
  std::vector<size_t> starts;  // offsets of read starts
};

// What the packed rows must concatenate to: every kept read, tokenized, in file order.
Stream expected_stream(const std::string& bam, const std::string& ref) {
  std::unique_ptr<FastaReader> fasta = ref.empty() ? nullptr : std::make_unique<FastaReader>(ref);
  ReadReader reader(bam, fasta.get());
  Stream s;
  Read r;
  while (reader.next(r)) {
    s.starts.push_back(s.tokens.size());
    for (char c : r.seq) s.tokens.push_back(static_cast<uint8_t>(token_of_char(c)));
  }
  return s;
}

TEST(PackedReads, RowsConcatenateToTheReadsWithDocStartsAtReadStarts) {
  const Stream want = expected_stream(data_path(kBamA), "");
  PackedReadOptions o;
  o.rows = 4;
  o.length = 1000;  // reads are 151 bases: many straddle a row boundary
  o.repeat = false;
  PackedReadDataset ds(data_path(kBamA), "", o);
  std::vector<uint8_t> tokens, flags;
  Batch b;
  int batches = 0;
  while (ds.next(b)) {
    ++batches;
    for (int r = 0; r < b.rows; ++r) EXPECT_EQ(b.row_flags(r)[0] & kFlagDocStart, kFlagDocStart);
    tokens.insert(tokens.end(), b.tokens.begin(), b.tokens.end());
    flags.insert(flags.end(), b.flags.begin(), b.flags.end());
  }
  const size_t n = want.tokens.size();
  ASSERT_GE(tokens.size(), n);
  EXPECT_TRUE(std::equal(want.tokens.begin(), want.tokens.end(), tokens.begin()));
  // Only [PAD] after the last read, and less than one row of it.
  EXPECT_TRUE(std::all_of(tokens.begin() + static_cast<long>(n), tokens.end(), [](uint8_t t) { return t == token::kPad; }));
  EXPECT_LT(tokens.size() - n, 1000u);
  std::vector<char> is_start(n, 0);
  for (size_t s : want.starts) is_start[s] = 1;
  for (size_t i = 0; i < n; ++i) {
    const bool row_start = i % 1000 == 0;
    ASSERT_EQ((flags[i] & kFlagDocStart) != 0, is_start[i] || row_start) << i;
  }
  EXPECT_EQ(batches, static_cast<int>((n + 3999) / 4000));
}

TEST(PackedReads, CramPacksLikeBam) {
  PackedReadOptions o;
  o.rows = 8;
  o.length = 4096;
  o.repeat = false;
  PackedReadDataset bam(data_path(kBamB), data_path(kRefB), o);
  PackedReadDataset cram(data_path(kCramB), data_path(kRefB), o);
  Batch x, y;
  int n = 0;
  for (;;) {
    const bool more = bam.next(x);
    ASSERT_EQ(more, cram.next(y));
    if (!more) break;
    ASSERT_EQ(x.tokens, y.tokens);
    ASSERT_EQ(x.flags, y.flags);
    ++n;
  }
  EXPECT_GT(n, 10);
  EXPECT_EQ(bam.stats().kept, 5642);
}

TEST(PackedReads, RepeatingStreamStartsOverAndRegionsRestrict) {
  const Stream all = expected_stream(data_path(kBamB), "");
  PackedReadOptions o;
  o.rows = 1;
  o.length = static_cast<int64_t>(all.tokens.size());  // one row holds the whole file
  PackedReadDataset ds(data_path(kBamB), "", o);
  Batch b;
  ASSERT_TRUE(ds.next(b));
  ASSERT_TRUE(std::equal(all.tokens.begin(), all.tokens.end(), b.tokens.begin()));
  ASSERT_TRUE(ds.next(b));  // second epoch: the same reads again
  EXPECT_TRUE(std::equal(all.tokens.begin(), all.tokens.end(), b.tokens.begin()));

  o.regions = {"chr22:2001-3000"};
  o.length = 151;
  o.repeat = false;
  PackedReadDataset region(data_path(kBamB), data_path(kRefB), o);
  int64_t rows = 0;
  while (region.next(b)) rows += b.rows;
  EXPECT_EQ(region.stats().kept, 2730);  // samtools view -c -F 0xF00 ... chr22:2001-3000
  EXPECT_EQ(rows, (region.stats().kept_bases + 150) / 151);
}

std::vector<uint8_t> take(BatchSource& ds, int n) {
  std::vector<uint8_t> out;
  Batch b;
  for (int i = 0; i < n; ++i) {
    EXPECT_TRUE(ds.next(b));
    out.insert(out.end(), b.tokens.begin(), b.tokens.end());
    out.insert(out.end(), b.flags.begin(), b.flags.end());
  }
  return out;
}

TEST(PackedReads, SavedCursorResumesMidReadAndAcrossEpochs) {
  PackedReadOptions o;
  o.rows = 3;
  o.length = 1000;
  const std::string bam = data_path(kBamB);
  PackedReadDataset first(bam, "", o);
  // setB holds about 850 k bases: 300 batches of 3,000 tokens cross into the second epoch.
  take(first, 250);
  const std::string mid = first.save_cursor();
  const auto expected = take(first, 60);
  PackedReadDataset resumed(bam, "", o);
  resumed.restore_cursor(mid);
  EXPECT_EQ(take(resumed, 60), expected);

  // Through the background loader too.
  PrefetchLoader loader(std::make_unique<PackedReadDataset>(bam, "", o), 3);
  Batch b;
  for (int i = 0; i < 250; ++i) ASSERT_TRUE(loader.next(b));
  EXPECT_EQ(loader.cursor(), mid);

  o.length = 999;
  PackedReadDataset other(bam, "", o);
  EXPECT_THROW(other.restore_cursor(mid), InputError);
}

TEST(PackedReads, CramWithoutReferenceIsAnError) {
  PackedReadOptions o;
  o.length = 100;
  EXPECT_THROW(PackedReadDataset(data_path(kCramB), "", o), InputError);
}

}  // namespace
}  // namespace gm
