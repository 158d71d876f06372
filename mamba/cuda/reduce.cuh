// Deterministic reductions used by several ops: the order of every addition is fixed by
// the shapes alone (fixed group sizes, fixed trees), never by scheduling, so results
// are bitwise identical run to run. No floating-point atomics.
#pragma once

#include <cstdint>

#include "mamba/cuda/context_cuda.h"

namespace gm::cuda {

// out[c] = (accumulate ? out[c] : 0) + sum over r in [0, rows) of in[r * cols + c],
// summed in row order within groups of 64 rows, then the group sums likewise.
// in is f32 [rows, cols] on the device; out f32 [cols]. Queued on ctx's stream.
void column_sum(CudaContext& ctx, const float* in, int64_t rows, int64_t cols, float* out, bool accumulate);

}  // namespace gm::cuda
