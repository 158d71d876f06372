// span_reduce on CUDA: sums or maxima of runs of rows of x [R, T, d], one output row per
// span. One block per (span, 64 columns): 4 row groups of 64 threads walk the span's rows
// (group g takes rows first + g, first + g + 4, ...; consecutive threads read consecutive
// columns), then the four partials are combined in group order, so the result is the
// same run to run. The spans come from the host code that sizes them (embedding of
// regions); a span outside x yields NaN instead of reading out of bounds.
#include <cstdint>
#include <limits>

#include "mamba/cuda/check.cuh"
#include "mamba/cuda/context_cuda.h"
#include "mamba/cuda/device_util.cuh"
#include "mamba/ops.h"

namespace gm::cuda {

namespace {
constexpr int kColumns = 64;
constexpr int kGroups = 4;

__global__ void __launch_bounds__(kColumns* kGroups)
    span_reduce_kernel(const float* __restrict__ x, int64_t R, int64_t T, int64_t d, const int32_t* __restrict__ spans,
                       bool max, float* __restrict__ out) {
  __shared__ float partial[kGroups][kColumns];
  const int64_t s = blockIdx.x;
  const int64_t j = static_cast<int64_t>(blockIdx.y) * kColumns + threadIdx.x;
  const int64_t row = spans[3 * s], first = spans[3 * s + 1], end = spans[3 * s + 2];
  const bool valid = row >= 0 && row < R && first >= 0 && end <= T && first < end;
  float acc = max ? -INFINITY : 0.f;
  if (valid && j < d) {
    const float* src = x + (row * T + first + threadIdx.y) * d + j;
    for (int64_t t = first + threadIdx.y; t < end; t += kGroups, src += kGroups * d)
      acc = max ? fmaxf(acc, *src) : acc + *src;
  }
  partial[threadIdx.y][threadIdx.x] = acc;
  __syncthreads();
  if (threadIdx.y != 0 || j >= d) return;
  float v = partial[0][threadIdx.x];
#pragma unroll
  for (int g = 1; g < kGroups; ++g) v = max ? fmaxf(v, partial[g][threadIdx.x]) : v + partial[g][threadIdx.x];
  out[s * d + j] = valid ? v : __int_as_float(0x7fc00000);
}
}  // namespace

void span_reduce(Context& ctx, const Tensor& x, const Tensor& spans, bool max, Tensor& out) {
  CudaContext& c = as_cuda(ctx);
  const char* op = "span_reduce";
  require_cuda(x, op, "x");
  require_dtype(x, DType::F32, op, "x");
  require(x.ndim() == 3 && x.is_contiguous(), op, "x must be dense [R, T, d], got " + x.describe());
  require_cuda(spans, op, "spans");
  require_dtype(spans, DType::I32, op, "spans");
  require(spans.ndim() == 2 && spans.size(1) == 3 && spans.is_contiguous(), op,
          "spans must be dense [S, 3], got " + spans.describe());
  const int64_t S = spans.size(0), d = x.size(2);
  require_cuda(out, op, "out");
  require_dtype(out, DType::F32, op, "out");
  require(out.ndim() == 2 && out.size(0) == S && out.size(1) == d && out.is_contiguous(), op,
          "out must be dense [S, d], got " + out.describe());
  if (S == 0 || d == 0) return;
  require(S <= 0x7fffffff, op, "too many spans");
  const dim3 grid(static_cast<unsigned>(S), blocks_for(d, kColumns));
  span_reduce_kernel<<<grid, dim3(kColumns, kGroups), 0, c.stream()>>>(x.data<float>(), x.size(0), x.size(1), d,
                                                                         spans.data<int32_t>(), max,
                                                                         out.data<float>());
  GM_CUDA_CHECK_LAUNCH();
}

}  // namespace gm::cuda
