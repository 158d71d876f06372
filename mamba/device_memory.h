// How much memory a context's device can still hand out, for planning (the training
// step's recompute plan). CUDA: cudaMemGetInfo's free bytes plus the blocks the caching
// allocator holds free for reuse. CPU: 0 = unknown (no limit is assumed).
#pragma once

#include <cstdint>

#include "mamba/context.h"

namespace gm {

int64_t device_memory_available(Context& ctx);

}  // namespace gm
