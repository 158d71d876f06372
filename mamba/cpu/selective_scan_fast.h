// The fast f32 selective scan behind gm::cpu::selective_scan_fwd / _bwd: the math,
// layouts and gradient conventions of selective_scan_ref.h (the double-capable
// reference it is tested against), computed with float vectors over the state (16
// lanes at a time, the N = 16 of Mamba in one group).
//
// Differences from selective_scan_forward_ref<float> (all within float rounding; the
// norm-wise distance is about 2e-7, tests/test_mamba_ops_scan_fast.cpp):
// - exp, softplus, sigmoid are vec_math.h's (<= 2 ulp) instead of libm's;
// - multiply-adds are contracted into FMA on the AVX2+FMA and AVX-512 levels;
// - sums over the state (y, and in the backward du, ddelta) and over channels (dB, dC)
//   are taken in float in a fixed order (a fixed tree over lanes, then ascending lane
//   groups; ascending blocks of kScanChannelBlock channels) instead of in double;
//   dA (through float sums of 16 steps), dDskip and ddelta_bias in double.
// Nothing depends on the thread count: rows are independent, and channel sums combine
// fixed channel blocks in a fixed order.
//
// Checkpoints: the state before every chunk of kScanChunk steps, f32 [B, D, chunks, N]
// with chunks = ceil(L / kScanChunk) (scan_checkpoint_numel). The forward writes them
// when given a buffer; the backward reads them when given, else recomputes them (one
// more forward pass over the states, without the output, into a buffer of that size).
// Besides them the backward holds D * (ld + 32) doubles (ld = N rounded up to 16), two
// [ceil(D / kScanChannelBlock), kScanSpan, ld] float partial sums and per thread
// O(kScanSpan * ld) floats: bounded in L.
#pragma once

#include "mamba/cpu/selective_scan_ref.h"
#include "mamba/cpu/simd_level.h"

namespace gm::cpu {

constexpr int64_t kScanChannelBlock = 16;           // channels whose dB/dC terms are summed together
constexpr int64_t kScanSpanChunks = 4;              // chunks between two channel reductions
constexpr int64_t kScanSpan = kScanSpanChunks * kScanChunk;

int64_t scan_checkpoint_numel(const ScanDims& dims);

// out and h_last (may be null) as selective_scan_forward_ref; checkpoints may be null.
// A level above best_simd_level() throws std::invalid_argument.
void selective_scan_forward_fast(const ScanDims& dims, const ScanRefInputs<float>& in, Rows3<float> out,
                                 float* h_last, float* checkpoints, int threads,
                                 SimdLevel level = best_simd_level());

// Gradients as selective_scan_backward_ref (all overwritten). checkpoints: those the
// forward wrote for the same inputs, or null.
void selective_scan_backward_fast(const ScanDims& dims, const ScanRefInputs<float>& in, const float* checkpoints,
                                  Rows3<const float> dout, const ScanRefGrads<float>& grads, int threads,
                                  SimdLevel level = best_simd_level());

}  // namespace gm::cpu
