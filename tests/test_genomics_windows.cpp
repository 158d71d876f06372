// Window plans and WindowDataset on the bundled references: exact tiling, symmetric
// clipped extension, very long windows, random windows (N threshold, seed), the
// PEERS.md evaluation windows, RC augmentation, and cursor resume.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <fstream>
#include <thread>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "genomics/bed.h"
#include "genomics/errors.h"
#include "genomics/fasta.h"
#include "genomics/intervals.h"
#include "genomics/prefetch_loader.h"
#include "genomics/tokenizer.h"
#include "genomics/window_dataset.h"
#include "genomics/window_plan.h"
#include "tests/test_support.h"

namespace gm {
namespace {

using test::data_path;

const std::string kRefA = "setA/grch38.chr20_and_21_10M.fa.gz";
const std::string kRefB = "setB/genome.fasta";

Interval interval(const ContigIndex& ref, const std::string& region, Split split = Split::All) {
  return Interval{parse_region(region, ref), split};
}

// The token row a window must hold, computed from the FASTA text independently of the dataset.
std::vector<uint8_t> expected_row(const FastaReader& fasta, const RowInfo& info, int64_t length) {
  std::vector<uint8_t> row(static_cast<size_t>(length), token::kPad);
  const int contig = *fasta.contigs().find(info.contig);
  const std::string seq(fasta.fetch(contig, info.start, info.end).view());
  const size_t offset = info.strand == '-' ? static_cast<size_t>(length - info.offset - (info.end - info.start))
                                           : static_cast<size_t>(info.offset);
  for (size_t i = 0; i < seq.size(); ++i) {
    const char u = static_cast<char>(std::toupper(static_cast<unsigned char>(seq[i])));
    row[offset + i] = u == 'A' ? token::kA : u == 'C' ? token::kC : u == 'G' ? token::kG : u == 'T' ? token::kT : token::kN;
  }
  if (info.strand == '-') {
    std::reverse(row.begin(), row.end());
    for (auto& t : row) {
      t = t == token::kA ? token::kT : t == token::kT ? token::kA : t == token::kC ? token::kG : t == token::kG ? token::kC : t;
    }
  }
  return row;
}

TEST(WindowPlan, TilesEveryIntervalExactly) {
  FastaReader fasta(data_path(kRefA));
  const BedFile bed = read_bed(data_path("setA/chr21_roi.bed"));
  std::vector<Interval> ivs = intervals_from_bed(bed, fasta.contigs());
  ivs.push_back(interval(fasta.contigs(), "chr20:1000001-1100000"));
  ivs.push_back(interval(fasta.contigs(), "chr20:2000001-2131072"));
  for (int64_t length : {64, 100, 1000, 32768}) {
    for (int64_t stride : {length, length / 2 + 1}) {
      const WindowPlan plan(ivs, fasta.contigs(), WindowMode::Tiled, length, stride);
      for (size_t k = 0; k < ivs.size(); ++k) {
        const Region& r = ivs[k].region;
        std::vector<char> covered(static_cast<size_t>(r.length()), 0);
        uint64_t first = 0;
        for (size_t j = 0; j < k; ++j) first += plan.count_in_interval(j);
        for (uint64_t i = first; i < first + plan.count_in_interval(k); ++i) {
          const WindowSpan w = plan.window(i);
          ASSERT_EQ(w.interval, k);
          ASSERT_EQ(w.end - w.beg + w.pad_left + w.pad_right, length);
          if (r.length() >= length) {
            // Inside the interval, never beyond it.
            ASSERT_GE(w.beg, r.beg);
            ASSERT_LE(w.end, r.end);
            ASSERT_EQ(w.pad_left + w.pad_right, 0);
          } else {
            // One window, extended symmetrically around the interval.
            ASSERT_EQ(plan.count_in_interval(k), 1u);
            const int64_t extra = length - r.length();
            ASSERT_EQ(r.beg - w.beg + w.pad_left, extra / 2);
            ASSERT_EQ(w.end - r.end + w.pad_right, extra - extra / 2);
          }
          for (int64_t p = std::max(w.beg, r.beg); p < std::min(w.end, r.end); ++p) covered[static_cast<size_t>(p - r.beg)] = 1;
        }
        ASSERT_TRUE(std::all_of(covered.begin(), covered.end(), [](char c) { return c == 1; }))
            << "interval " << r.to_string() << " not covered by windows of " << length << " stride " << stride;
        // No more windows than needed: one less would leave a gap.
        if (r.length() > length) {
          ASSERT_EQ(plan.count_in_interval(k), static_cast<uint64_t>((r.length() - length + stride - 1) / stride + 1));
        }
      }
    }
  }
}

TEST(WindowPlan, ExtensionIsClippedAtContigEndsAndPadded) {
  FastaReader b(data_path(kRefB));  // chr22 of 40,001 bases
  const std::vector<Interval> ivs = {interval(b.contigs(), "chr22:11-20"), interval(b.contigs(), "chr22:39991-40001")};
  const WindowPlan plan(ivs, b.contigs(), WindowMode::Tiled, 1000);
  const WindowSpan near_start = plan.window(0);
  EXPECT_EQ(near_start.beg, 0);
  EXPECT_EQ(near_start.pad_left, 485);  // 10 - 495
  EXPECT_EQ(near_start.end, 20 + 495);
  const WindowSpan near_end = plan.window(1);
  EXPECT_EQ(near_end.beg, 39990 - 494);
  EXPECT_EQ(near_end.end, 40001);
  EXPECT_EQ(near_end.pad_right, 495);
  // A window longer than the whole contig: both sides clipped.
  const WindowPlan huge({interval(b.contigs(), "chr22:20001-20100")}, b.contigs(), WindowMode::Tiled, 4194304);
  const WindowSpan w = huge.window(0);
  EXPECT_EQ(w.beg, 0);
  EXPECT_EQ(w.end, 40001);
  EXPECT_EQ(w.pad_left + w.pad_right + 40001, 4194304);
  EXPECT_EQ(w.pad_left, (4194304 - 100) / 2 - 20000);
}

TEST(WindowDataset, RowsHoldTheWindowsSequenceAndPadding) {
  FastaReader b(data_path(kRefB));
  WindowDatasetOptions o;
  o.length = 1000;
  o.rows = 3;
  o.shuffle = false;
  o.repeat = false;
  WindowDataset ds(data_path(kRefB), {interval(b.contigs(), "chr22:11-20"), interval(b.contigs(), "chr22:101-2600"),
                                      interval(b.contigs(), "chr22:39991-40001")},
                   o);
  Batch batch;
  std::vector<RowInfo> rows;
  while (ds.next(batch)) {
    for (int r = 0; r < batch.rows; ++r) {
      const RowInfo& info = batch.info[static_cast<size_t>(r)];
      const std::vector<uint8_t> want = expected_row(b, info, o.length);
      ASSERT_TRUE(std::equal(want.begin(), want.end(), batch.row_tokens(r))) << info.contig << ":" << info.start;
      EXPECT_EQ(batch.row_flags(r)[0] & kFlagDocStart, kFlagDocStart);
      for (int i = 1; i < batch.length; ++i) ASSERT_EQ(batch.row_flags(r)[i] & kFlagDocStart, 0);
      rows.push_back(info);
    }
  }
  // 1 extended + 3 tiles of 2,500 bases + 1 extended.
  ASSERT_EQ(rows.size(), 5u);
  EXPECT_EQ(rows[0].offset, 485);
  EXPECT_EQ(rows[1].start, 100);
  EXPECT_EQ(rows[2].start, 1100);
  EXPECT_EQ(rows[3].start, 1600);  // last tile aligned to the interval end
  EXPECT_EQ(rows[3].end, 2600);
  EXPECT_EQ(rows[4].end, 40001);
}

TEST(WindowDataset, SoftMaskFlagsFollowLowercase) {
  // The bundled references carry no soft-masking, so a small one is made here.
  test::TempDir dir;
  std::string seq;
  for (int i = 0; i < 3000; ++i) {
    const char base = "ACGT"[(i * 7 + i / 13) % 4];
    seq.push_back((i / 250) % 3 == 1 ? static_cast<char>(std::tolower(base)) : base);
  }
  std::ofstream(dir / "soft.fa") << ">soft\n" << seq.substr(0, 1500) << "\n" << seq.substr(1500) << "\n";
  FastaReader f(dir / "soft.fa");
  WindowDatasetOptions o;
  o.length = 1000;
  o.rows = 3;
  o.shuffle = false;
  WindowDataset ds(dir / "soft.fa", {interval(f.contigs(), "soft")}, o);
  Batch batch;
  ASSERT_TRUE(ds.next(batch));
  for (int r = 0; r < 3; ++r) {
    for (int i = 0; i < 1000; ++i) {
      const char c = seq[static_cast<size_t>(batch.info[static_cast<size_t>(r)].start + i)];
      ASSERT_EQ((batch.row_flags(r)[i] & kFlagSoftMasked) != 0, std::islower(static_cast<unsigned char>(c)) != 0);
      ASSERT_EQ(batch.row_tokens(r)[i], token_of_char(c));
    }
  }
}

TEST(WindowDataset, VeryLongWindowsAreTiledAndFetched) {
  FastaReader a(data_path(kRefA));
  const WindowPlan plan({interval(a.contigs(), "chr20")}, a.contigs(), WindowMode::Tiled, 1 << 20);
  EXPECT_EQ(plan.size(), 10u);  // ceil((10,000,000 - 1,048,576) / 1,048,576) + 1
  EXPECT_EQ(plan.window(9).end, 10000000);
  WindowDatasetOptions o;
  o.length = 4194304;
  o.rows = 1;
  o.shuffle = false;
  WindowDataset ds(data_path(kRefA), {interval(a.contigs(), "chr21:5000001-5131072")}, o);
  Batch batch;
  ASSERT_TRUE(ds.next(batch));
  EXPECT_EQ(batch.length, 4194304);
  const RowInfo& info = batch.info[0];
  EXPECT_EQ(info.end - info.start, 4194304);
  EXPECT_EQ(info.start, 5000000 - (4194304 - 131072) / 2);
  const std::vector<uint8_t> want = expected_row(a, info, o.length);
  EXPECT_TRUE(std::equal(want.begin(), want.end(), batch.row_tokens(0)));
}

TEST(WindowDataset, ShuffledEpochVisitsEveryWindowOnce) {
  FastaReader a(data_path(kRefA));
  WindowDatasetOptions o;
  o.length = 1000;
  o.rows = 7;
  o.seed = 11;
  o.repeat = false;
  const std::vector<Interval> ivs = intervals_from_bed(read_bed(data_path("setA/chr21_roi.bed")), a.contigs());
  WindowDataset ds(data_path(kRefA), ivs, o);
  std::multiset<std::pair<int64_t, int64_t>> seen, plan;
  for (uint64_t i = 0; i < ds.plan().size(); ++i) plan.insert({ds.plan().window(i).beg, ds.plan().window(i).end});
  Batch batch;
  std::vector<int64_t> order;
  while (ds.next(batch)) {
    for (const auto& info : batch.info) {
      seen.insert({info.start, info.end});
      order.push_back(info.start);
    }
  }
  EXPECT_EQ(seen, plan);
  EXPECT_FALSE(std::is_sorted(order.begin(), order.end()));  // shuffled
}

TEST(WindowDataset, RandomWindowsRespectTheNThresholdAndTheSeed) {
  FastaReader a(data_path(kRefA));
  WindowDatasetOptions o;
  o.mode = WindowMode::Random;
  o.length = 2000;
  o.rows = 16;
  o.max_n_frac = 0.1;
  o.seed = 5;
  // chr21's first 10 Mb are 63% N, so many draws are rejected.
  const std::vector<Interval> ivs = {interval(a.contigs(), "chr21")};
  WindowDataset x(data_path(kRefA), ivs, o), y(data_path(kRefA), ivs, o);
  o.seed = 6;
  WindowDataset z(data_path(kRefA), ivs, o);
  Batch bx, by, bz;
  std::set<int64_t> starts;
  for (int step = 0; step < 5; ++step) {
    ASSERT_TRUE(x.next(bx));
    ASSERT_TRUE(y.next(by));
    ASSERT_TRUE(z.next(bz));
    EXPECT_EQ(bx.tokens, by.tokens);
    EXPECT_NE(bx.tokens, bz.tokens);
    for (int r = 0; r < bx.rows; ++r) {
      const int64_t n = std::count(bx.row_tokens(r), bx.row_tokens(r) + bx.length, token::kN);
      EXPECT_LT(static_cast<double>(n), 0.1 * 2000) << bx.info[static_cast<size_t>(r)].start;
      starts.insert(bx.info[static_cast<size_t>(r)].start);
      EXPECT_GE(bx.info[static_cast<size_t>(r)].start, 0);
      EXPECT_LE(bx.info[static_cast<size_t>(r)].end, 10000000);
    }
  }
  EXPECT_GT(x.windows_rejected(), 0);
  EXPECT_EQ(starts.size(), 80u);  // 80 draws over millions of starts: no repeats
}

TEST(WindowDataset, RandomWindowsThatCanNeverPassAreAnError) {
  test::TempDir dir;
  std::ofstream(dir / "n.fa") << ">allN\n" << std::string(5000, 'N') << "\n";
  FastaReader f(dir / "n.fa");
  WindowDatasetOptions o;
  o.mode = WindowMode::Random;
  o.length = 100;
  o.max_n_frac = 0.5;
  o.max_consecutive_rejections = 1000;
  WindowDataset ds(dir / "n.fa", {interval(f.contigs(), "allN")}, o);
  Batch b;
  EXPECT_THROW(ds.next(b), InputError);
  o.mode = WindowMode::Tiled;
  WindowDataset tiled(dir / "n.fa", {interval(f.contigs(), "allN")}, o);
  EXPECT_THROW(tiled.next(b), InputError);
}

TEST(WindowDataset, PeersEvaluationWindows) {
  // chr21 windows of 32,769 at 0, 32,768, ... while whole; skip those with < 1,000 non-N.
  FastaReader a(data_path(kRefA));
  WindowDatasetOptions o;
  o.mode = WindowMode::Strided;
  o.length = 32769;
  o.stride = 32768;
  o.min_non_n = 1000;
  o.rows = 16;
  o.shuffle = false;
  o.repeat = false;
  WindowDataset ds(data_path(kRefA), {interval(a.contigs(), "chr21")}, o);
  std::vector<int64_t> got;
  Batch batch;
  while (ds.next(batch)) {
    for (const auto& info : batch.info) got.push_back(info.start);
  }
  std::vector<int64_t> want;
  for (int64_t s = 0; s + 32769 <= 10000000; s += 32768) {
    const std::string seq(a.fetch(1, s, s + 32769).view());
    const auto n = std::count_if(seq.begin(), seq.end(), [](char c) { return c == 'N' || c == 'n'; });
    if (32769 - n >= 1000) want.push_back(s);
  }
  EXPECT_EQ(got, want);
  EXPECT_LT(want.size(), 305u);  // some windows were skipped (chr21 is 63% N)
  EXPECT_GT(want.size(), 50u);
}

TEST(WindowDataset, ReverseComplementAugmentation) {
  FastaReader a(data_path(kRefA));
  WindowDatasetOptions o;
  o.length = 777;
  o.rows = 32;
  o.rc_augment = true;
  o.seed = 3;
  WindowDataset ds(data_path(kRefA), {interval(a.contigs(), "chr20:5000001-5100000")}, o);
  Batch batch;
  ASSERT_TRUE(ds.next(batch));
  int minus = 0;
  for (int r = 0; r < batch.rows; ++r) {
    const RowInfo& info = batch.info[static_cast<size_t>(r)];
    minus += info.strand == '-';
    const std::vector<uint8_t> want = expected_row(a, info, o.length);
    ASSERT_TRUE(std::equal(want.begin(), want.end(), batch.row_tokens(r))) << r << " " << info.strand;
    EXPECT_EQ(batch.row_flags(r)[0] & kFlagDocStart, kFlagDocStart);
  }
  EXPECT_GT(minus, 4);
  EXPECT_LT(minus, 28);
}

// Takes `n` batches, returning their tokens + flags concatenated.
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

std::vector<uint8_t> take(PrefetchLoader& loader, int n) {
  std::vector<uint8_t> out;
  Batch b;
  for (int i = 0; i < n; ++i) {
    EXPECT_TRUE(loader.next(b));
    out.insert(out.end(), b.tokens.begin(), b.tokens.end());
    out.insert(out.end(), b.flags.begin(), b.flags.end());
  }
  return out;
}

TEST(WindowDataset, SavedCursorResumesWithTheSameNextBatch) {
  FastaReader a(data_path(kRefA));
  for (WindowMode mode : {WindowMode::Tiled, WindowMode::Random}) {
    WindowDatasetOptions o;
    o.mode = mode;
    o.length = 500;
    o.rows = 5;
    o.rc_augment = true;
    o.max_n_frac = 0.5;
    o.seed = 42;
    // 24 tiled windows: batches of 5 cross epoch boundaries.
    const std::vector<Interval> ivs = {interval(a.contigs(), "chr20:100001-106000"),
                                       interval(a.contigs(), "chr21:9000001-9006000")};
    WindowDataset first(data_path(kRefA), ivs, o);
    take(first, 7);
    const std::string cursor = first.save_cursor();
    const auto expected = take(first, 4);
    WindowDataset resumed(data_path(kRefA), ivs, o);
    resumed.restore_cursor(cursor);
    EXPECT_EQ(take(resumed, 4), expected) << window_mode_name(mode);
    // A cursor of another configuration is refused.
    o.seed = 43;
    WindowDataset other(data_path(kRefA), ivs, o);
    EXPECT_THROW(other.restore_cursor(cursor), InputError);
    EXPECT_THROW(other.restore_cursor("garbage"), InputError);
  }
}

TEST(WindowDataset, CursorThroughTheBackgroundLoaderIsTheConsumers) {
  FastaReader a(data_path(kRefA));
  WindowDatasetOptions o;
  o.length = 300;
  o.rows = 3;
  o.seed = 9;
  o.rc_augment = true;
  const std::vector<Interval> ivs = {interval(a.contigs(), "chr20:200001-210000")};
  PrefetchLoader loader(std::make_unique<WindowDataset>(data_path(kRefA), ivs, o), 4);
  take(loader, 5);
  // Let the producer run ahead so the queue is full before the cursor is taken.
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  const std::string cursor = loader.cursor();
  const auto expected = take(loader, 6);

  PrefetchLoader resumed(std::make_unique<WindowDataset>(data_path(kRefA), ivs, o), 2);
  take(resumed, 1);
  resumed.restore(cursor);
  EXPECT_EQ(take(resumed, 6), expected);

  // The same thing straight from the dataset: the cursor is after 5 batches.
  WindowDataset direct(data_path(kRefA), ivs, o);
  take(direct, 5);
  EXPECT_EQ(direct.save_cursor(), cursor);
}

}  // namespace
}  // namespace gm
