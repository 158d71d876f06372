// Deterministic column sums (see reduce.cuh).
#include <algorithm>

#include "mamba/cuda/check.cuh"
#include "mamba/cuda/device_util.cuh"
#include "mamba/cuda/reduce.cuh"

namespace gm::cuda {

namespace {
constexpr int kGroupRows = 64;
constexpr int kThreads = 256;

// One thread per (column, row group): sums that group's rows in order.
__global__ void column_group_sum_kernel(const float* __restrict__ in, int64_t rows, int64_t cols,
                                        float* __restrict__ out, int accumulate, int group_rows) {
  const int64_t c = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (c >= cols) return;
  const int64_t r0 = static_cast<int64_t>(blockIdx.y) * group_rows;
  const int64_t r1 = min(rows, r0 + group_rows);
  float acc = 0.f;
  for (int64_t r = r0; r < r1; ++r) acc += in[r * cols + c];
  float* dst = out + static_cast<int64_t>(blockIdx.y) * cols + c;
  *dst = accumulate ? *dst + acc : acc;
}
}  // namespace

void column_sum(CudaContext& ctx, const float* in, int64_t rows, int64_t cols, float* out, bool accumulate) {
  if (cols <= 0) return;
  const unsigned gx = blocks_for(cols, kThreads);
  if (rows <= kGroupRows) {
    if (rows <= 0) {
      if (!accumulate) GM_CUDA_CHECK(cudaMemsetAsync(out, 0, sizeof(float) * cols, ctx.stream()));
      return;
    }
    column_group_sum_kernel<<<dim3(gx, 1), kThreads, 0, ctx.stream()>>>(in, rows, cols, out, accumulate,
                                                                         static_cast<int>(rows));
    GM_CUDA_CHECK_LAUNCH();
    return;
  }
  // Group size depends on the row count only, so the order of additions is fixed.
  const int64_t group_rows = std::max<int64_t>(kGroupRows, (rows + 65534) / 65535);
  const int64_t groups = (rows + group_rows - 1) / group_rows;
  Tensor tmp = Tensor::empty(ctx.allocator(), {groups, cols}, DType::F32);
  column_group_sum_kernel<<<dim3(gx, static_cast<unsigned>(groups)), kThreads, 0, ctx.stream()>>>(
      in, rows, cols, tmp.data<float>(), 0, static_cast<int>(group_rows));
  GM_CUDA_CHECK_LAUNCH();
  column_sum(ctx, tmp.data<float>(), groups, cols, out, accumulate);
}

}  // namespace gm::cuda
