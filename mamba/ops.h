// The ops of the model, dispatched on the context's device to the CPU reference
// (gm::cpu, mamba/cpu/) or the CUDA twin (gm::cuda, mamba/cuda/). All three
// namespaces declare the same list, mamba/op_list.inc, so signatures cannot drift.
#pragma once

#include "mamba/context.h"
#include "mamba/op_types.h"
#include "mamba/tensor.h"

namespace gm::ops {
#include "mamba/op_list.inc"
}  // namespace gm::ops

namespace gm::cpu {
#include "mamba/op_list.inc"
}  // namespace gm::cpu

#ifdef GENOMAMBA_HAVE_CUDA
namespace gm::cuda {
#include "mamba/op_list.inc"
}  // namespace gm::cuda
#endif
