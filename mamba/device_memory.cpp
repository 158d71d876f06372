// device_memory_available (see device_memory.h).
#include "mamba/device_memory.h"

#ifdef GENOMAMBA_HAVE_CUDA
#include "mamba/cuda/context_cuda.h"
#endif

namespace gm {

int64_t device_memory_available(Context& ctx) {
#ifdef GENOMAMBA_HAVE_CUDA
  if (ctx.device().is_cuda()) {
    cuda::CudaContext& c = cuda::as_cuda(ctx);
    size_t free_b = 0, total_b = 0;
    c.mem_info(free_b, total_b);
    const size_t cached = c.cuda_allocator().reserved_bytes() - c.cuda_allocator().bytes_in_use();
    return static_cast<int64_t>(free_b + cached);
  }
#endif
  (void)ctx;
  return 0;
}

}  // namespace gm
