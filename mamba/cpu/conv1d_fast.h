// The fast f32 causal depthwise conv1d (+ SiLU) behind gm::cpu::conv1d_fwd / _bwd:
// conv1d_ref.h's math, layout, masking and gradient conventions, vectorised over time.
//
// Time is cut into blocks of one vector. A block whose window reaches no document start
// and no position before 0 is computed with vectors (pre-activations and dx in double,
// adding the same products in the same order as the reference, hence the same bits);
// any other block runs the reference's scalar code position by position. SiLU and its
// derivative use vec_math.h in both cases (a few ulp from libm's), so a position's
// result does not depend on the block it falls in: chunked calls equal one call.
// dweight / dbias add the reference's double products in a fixed order of their own
// (per vector lane, then lanes), independent of the thread count.
// One thread, AVX-512: forward 6.0 -> 0.86 ns per element, backward 12.3 -> 2.2.
#pragma once

#include "mamba/cpu/conv1d_ref.h"
#include "mamba/cpu/simd_level.h"

namespace gm::cpu {

void conv1d_forward_fast(const ConvDims& dims, Rows3<const float> x, const float* weight, const float* bias,
                         Rows2<const uint8_t> seq_start, const float* state_in, bool apply_silu, Rows3<float> out,
                         float* state_out, int threads, SimdLevel level = best_simd_level());

void conv1d_backward_fast(const ConvDims& dims, Rows3<const float> dout, Rows3<const float> x, const float* weight,
                          const float* bias, Rows2<const uint8_t> seq_start, const float* state_in, bool apply_silu,
                          Rows3<float> dx, float* dweight, float* dbias, int threads,
                          SimdLevel level = best_simd_level());

}  // namespace gm::cpu
