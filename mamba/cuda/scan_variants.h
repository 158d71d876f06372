// Selective-scan kernel variants of the CUDA backend. gm::cuda::selective_scan_fwd/bwd
// run the default variant; tests run every variant against the CPU reference and the
// benchmark times each, so a simple variant stays available as a tested reference when
// faster ones are added. All variants share the `saved` layout (see selective_scan.cu).
// Plain C++ header.
#pragma once

#include <cstdint>
#include <vector>

#include "mamba/context.h"
#include "mamba/op_types.h"

namespace gm::cuda {

enum class ScanVariant : int {
  // Chunk-parallel in length: per chunk, thread-per-channel forward passes and a
  // thread-per-(channel, state) backward, written plainly (scan_fwd.cuh, scan_bwd.cuh).
  kReference = 0,
  // The same algorithm with loads issued a step ahead, double-buffered shared memory
  // and fast activation math (scan_fwd_fast.cuh, scan_bwd_fast.cuh).
  kPipelined = 1,
  // Thread-per-channel chunk kernels fed by asynchronous copies, without per-step
  // branches (scan_fwd_lean.cuh), and a backward main kernel with four lanes per channel
  // and 8 steps of states in registers, walking each chunk's sub-chunks forwards from the
  // gradient flows its reverse summary leaves (scan_bwd_lean.cuh).
  kLean = 2,
  // The pipelined forward with kLean's backward (the default before kDefault).
  kLeanBackward = 3,
  // kLean with 4 of the 16 exponentials per step of the thread-per-channel kernels on
  // the FMA pipe (those kernels wait on the queue the special-function unit shares).
  kLeanPoly = 4,
  // Single-pass forward (scan_fwd_serial.cuh: each channel's whole sequence walked once
  // by G lanes, 16 / G states each, every exponential computed once) with kLean's
  // backward; G = 4, 2, 1 (and 8, 16 below). They need batch x channels large enough to
  // fill the GPU.
  kSerial4 = 5,
  kSerial2 = 6,
  kSerial1 = 7,
  // The default (scan_variants().front()): the serial forward with
  // default_fwd_serial_lanes lanes per channel where that is not 0, else the pipelined
  // one; kLean's backward.
  kDefault = 8,
  // The single-pass forward with G = 8 and 16 lanes per channel (2 and 1 states per
  // lane): 2x and 4x the warps of G = 4 at the same rows; the default runs G = 16 from
  // 2,560 rows, G = 8 from 5,632 (default_fwd_serial_lanes).
  kSerial8 = 9,
  kSerial16 = 10,
  // The single-pass kernel over segments of each sequence (whole chunks, the last one
  // running on to the end) taken as rows, twice: states only from zero (each segment's end
  // state and sum of dt), then y and `saved` from the segment starts chained from those;
  // kLean's backward. The default's forward for one or a few long sequences.
  kSegmented = 11,
};

const char* scan_variant_name(ScanVariant v);
// Every variant, the default first.
std::vector<ScanVariant> scan_variants();

// Lanes per channel (4, 8 or 16) of the single-pass kernel the default variant's forward
// runs at this shape, 0 where it runs a chunk-parallel one (pipelined, or segmented from
// 32,768 steps; the rule and the measurement behind it: selective_scan.cu).
int default_fwd_serial_lanes(int64_t batch, int64_t channels);
// default_fwd_serial_lanes(batch, channels) != 0.
bool default_fwd_is_serial(int64_t batch, int64_t channels);

void selective_scan_fwd_variant(Context& ctx, ScanVariant v, const ScanInputs& in, Tensor& out, Tensor* h_last,
                                Tensor* saved);
void selective_scan_bwd_variant(Context& ctx, ScanVariant v, const ScanInputs& in, const Tensor* saved,
                                const Tensor& dout, const ScanGrads& grads);

}  // namespace gm::cuda
