// How the segmented selective-scan forward (selective_scan.cu, segmented_forward) cuts one
// long sequence into rows for the single-pass kernel. Plain C++ (no CUDA), so that the
// arithmetic is tested on any machine.
//
// A sequence of `length` steps has whole = length / kChunk whole chunks (at least 1). It is
// cut into `count` segments of whole chunks: segment b starts at chunk b q + min(b, r) (q =
// chunks, r = extra) and is q + 1 chunks long for b < r and q otherwise; the last segment
// runs on to the end of the sequence (its last chunk may be partial). Every segment starts
// on a chunk, so `saved` (the state before each chunk) keeps its layout.
#pragma once

#include <algorithm>
#include <cstdint>

// segment_first_chunk is also called on the device (scan_common.cuh, row_span).
#ifdef __CUDACC__
#define GM_SEGMENTS_HD __host__ __device__
#else
#define GM_SEGMENTS_HD
#endif

namespace gm::cuda::scan {

constexpr int kChunk = 512;  // steps per chunk; fixes the layout of `saved`

// The single-pass kernel's fastest regime starts near this many rows (batch x channels).
constexpr int64_t kSegmentRows = 32768;

struct Segments {
  int64_t count, chunks, extra;
};

// The segment count makes the two single-pass launches fill whole waves of their G = 8
// blocks (16 channels a block, 4 blocks per SM) near kSegmentRows rows, and the segments
// differ by at most one chunk. Before, all segments had the same whole number of chunks and
// the rest went through the chunked kernels: at 1 x 512 x 2^20, 64 segments of 32 chunks =
// 2,048 blocks on 528 slots (3.88 waves: the time of 4 waves of 32-chunk segments); at 1 x
// 512 x 1,000,000, 63 of 31 chunks and a 64-step rest (3.82 waves), 1.6% slower per token
// than 2^20. Now 66 segments = 2,112 blocks = 4 waves at both lengths, of 31 or 32 chunks at
// 2^20 and of 29 or 30 at 1,000,000 (H200: row 1 forward 7.06 -> 6.75 ms, L = 1,000,000 6.88
// -> 6.46-6.53).
inline Segments segments_for(int64_t length, int64_t channels, int sm_count) {
  const int64_t whole = std::max<int64_t>(1, length / kChunk);
  const int64_t blocks_per_segment = (channels + 15) / 16;
  const int64_t slots = 4 * static_cast<int64_t>(std::max(1, sm_count));
  const int64_t rows_wanted = std::max<int64_t>(1, kSegmentRows / channels);
  const int64_t waves = std::max<int64_t>(1, (rows_wanted * blocks_per_segment + slots / 2) / slots);
  const int64_t count =
      std::min<int64_t>({std::max<int64_t>(1, waves * slots / blocks_per_segment), whole, int64_t(65535)});
  return {count, whole / count, whole % count};
}

// The lean backward's flows (scan_lean_common.cuh, FlowArgs): per batch row, channel and
// 8-step sub-chunk, 16 f32 gradients and one sum of dt. They are 8.5 bytes per channel and
// step (4.5 GB at 8 x 512 x 131,072), so the backward runs in windows of chunks, from the
// last to the first, each window's flows within `budget` bytes: this many chunks a window
// (at least one), with the chunks spread evenly over the windows.
constexpr int kFlowStep = 8;
constexpr int kFlowSubs = kChunk / kFlowStep;
constexpr int64_t kFlowBytesPerSub = (16 + 1) * 4;
// The budget is Context::scan_flow_budget: its default, 1 GiB, cuts 8 x 512 x 131,072 (256
// chunks) into 5 windows, and 1 x 512 x 1,048,576 (2,048 chunks) into 5 as well; one window
// is 2-3% faster (bench/RESULTS.md).
inline int64_t flow_bytes(int64_t batch, int64_t channels, int64_t window) {
  return batch * channels * window * kFlowSubs * kFlowBytesPerSub;
}
inline int64_t flow_window_chunks(int64_t batch, int64_t channels, int64_t chunks, int64_t budget) {
  const int64_t per_chunk = flow_bytes(std::max<int64_t>(1, batch * channels), 1, 1);
  const int64_t most = std::clamp<int64_t>(budget / per_chunk, 1, std::max<int64_t>(1, chunks));
  const int64_t windows = (chunks + most - 1) / most;
  return windows > 0 ? (chunks + windows - 1) / windows : 1;
}

// First chunk of segment b.
GM_SEGMENTS_HD inline int64_t segment_first_chunk(const Segments& s, int64_t b) {
  return b * s.chunks + (b < s.extra ? b : s.extra);
}

}  // namespace gm::cuda::scan
