// The segmented selective-scan forward's cut of one sequence into rows
// (mamba/cuda/scan_segments.h): whole-chunk segments that cover the sequence, differ by at
// most one chunk, and fill whole waves of the single-pass launches where the length allows.
// Plain arithmetic: runs without a GPU.
#include <gtest/gtest.h>

#include <string>

#include "mamba/cuda/scan_segments.h"

namespace {

using gm::cuda::scan::kChunk;
using gm::cuda::scan::segment_first_chunk;
using gm::cuda::scan::segments_for;
using gm::cuda::scan::Segments;

TEST(ScanSegments, H200ShapesOfThePeersTable) {
  // 512 channels, 132 SMs: 66 segments = 2,112 blocks of 16 channels = 4 waves of 528.
  const Segments pow2 = segments_for(1048576, 512, 132);
  EXPECT_EQ(pow2.count, 66);
  EXPECT_EQ(pow2.chunks, 31);
  EXPECT_EQ(pow2.extra, 2);  // 2,048 chunks = 66 x 31 + 2
  const Segments odd = segments_for(1000000, 512, 132);
  EXPECT_EQ(odd.count, 66);
  EXPECT_EQ(odd.chunks, 29);
  EXPECT_EQ(odd.extra, 39);  // 1,953 whole chunks = 66 x 29 + 39, then 64 steps
}

TEST(ScanSegments, CoverTheSequenceInNearlyEqualWaveFillingPieces) {
  for (int sms : {1, 66, 132, 144}) {
    for (int64_t channels : {1, 16, 48, 512, 768, 1536, 4096}) {
      for (int64_t length : {int64_t{512}, int64_t{33000}, int64_t{32768 + 3 * 512}, int64_t{1000000},
                             int64_t{1048576}, int64_t{4194304}}) {
        SCOPED_TRACE(std::to_string(sms) + " SMs, " + std::to_string(channels) + " channels, L " +
                     std::to_string(length));
        const Segments s = segments_for(length, channels, sms);
        const int64_t whole = std::max<int64_t>(1, length / kChunk);
        ASSERT_GE(s.count, 1);
        ASSERT_LE(s.count, whole);
        ASSERT_LE(s.count, 65535);
        EXPECT_GE(s.chunks, 1);
        EXPECT_LT(s.extra, s.count);
        // Consecutive, whole-chunk segments from chunk 0 up to the last whole chunk; the
        // last one runs on to the end of the sequence.
        EXPECT_EQ(segment_first_chunk(s, 0), 0);
        EXPECT_EQ(segment_first_chunk(s, s.count), whole);
        for (int64_t b = 0; b + 1 < s.count; ++b) {
          const int64_t len = segment_first_chunk(s, b + 1) - segment_first_chunk(s, b);
          EXPECT_TRUE(len == s.chunks || len == s.chunks + 1) << "segment " << b;
        }
        // Where whole chunks do not limit the count, the blocks fill k whole waves as far as
        // whole segments can: one segment more would pass the k-th wave.
        const int64_t bps = (channels + 15) / 16, slots = 4 * int64_t{sms};
        if (s.count < whole && s.count < 65535) {
          const int64_t k = (s.count * bps + slots - 1) / slots;
          EXPECT_LE(s.count * bps, k * slots);
          EXPECT_GT((s.count + 1) * bps, k * slots);
        }
      }
    }
  }
}

// The backward's windows of chunks: within the flow budget (at least one chunk), the
// windows of one call differing by at most one chunk, one window when everything fits.
TEST(ScanSegments, FlowWindowsStayWithinTheBudget) {
  using gm::cuda::scan::flow_bytes;
  using gm::cuda::scan::flow_window_chunks;
  // 8 x 512 x 131,072 (256 chunks): 17.8 MB of flows a chunk; 1 GiB holds 60, so 5 windows
  // of 52 (the last 48).
  EXPECT_EQ(flow_bytes(8, 512, 1), 8 * 512 * 64 * 68);
  EXPECT_EQ(flow_window_chunks(8, 512, 256, int64_t{1} << 30), 52);
  EXPECT_EQ(flow_window_chunks(1, 40, 6, int64_t{1} << 30), 6);
  EXPECT_EQ(flow_window_chunks(1, 40, 6, 0), 1);
  for (int64_t chunks : {1, 2, 6, 7, 256, 2048}) {
    for (int64_t budget : {int64_t{0}, int64_t{1} << 20, int64_t{100} << 20, int64_t{1} << 30}) {
      const int64_t w = flow_window_chunks(2, 512, chunks, budget);
      ASSERT_GE(w, 1);
      ASSERT_LE(w, chunks);
      if (w > 1) EXPECT_LE(flow_bytes(2, 512, w), budget);
      const int64_t windows = (chunks + w - 1) / w;
      EXPECT_GE(chunks - (windows - 1) * w, w - windows) << "the last window is at most one chunk per window short";
      if (flow_bytes(2, 512, chunks) <= budget) EXPECT_EQ(w, chunks);
    }
  }
}

}  // namespace
