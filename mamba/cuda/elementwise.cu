// Memory and elementwise ops on CUDA: copies (host<->device, casts), fill, axpy, scale,
// neg_exp, mul, and the deterministic host-returning reductions sum, sum_squares and
// has_nonfinite (fixed grid, fixed-order final pass).
#include <cstring>
#include <type_traits>

#include "mamba/cuda/check.cuh"
#include "mamba/cuda/context_cuda.h"
#include "mamba/cuda/device_util.cuh"
#include "mamba/ops.h"

namespace gm::cuda {

namespace {
constexpr int kThreads = 256;
// The reduction grid is a constant, so the order of additions never depends on the GPU.
constexpr int kReduceBlocks = 512;

template <class Tin, class Tout>
__global__ void convert_kernel(const Tin* __restrict__ src, Strided4 gs, Tout* __restrict__ dst, Strided4 gd,
                               int64_t n, bool contiguous) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t so = contiguous ? i : gs.offset(i);
    const int64_t d = contiguous ? i : gd.offset(i);
    if constexpr (std::is_same_v<Tin, Tout>) {
      dst[d] = src[so];
    } else {
      dst[d] = from_f<Tout>(to_f(src[so]));
    }
  }
}

template <class T>
__global__ void fill_kernel(T* __restrict__ dst, Strided4 g, int64_t n, T value, bool contiguous) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x)
    dst[contiguous ? i : g.offset(i)] = value;
}

__global__ void axpy_kernel(float alpha, const float* __restrict__ x, float* __restrict__ y, int64_t n) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x)
    y[i] += alpha * x[i];
}
__global__ void scale_kernel(float* __restrict__ x, float s, int64_t n) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x)
    x[i] *= s;
}
__global__ void neg_exp_kernel(const float* __restrict__ in, float* __restrict__ out, int64_t n) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x)
    out[i] = -expf(in[i]);
}
__global__ void mul_kernel(const float* __restrict__ a, const float* __restrict__ b, float* __restrict__ out,
                           int64_t n) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x)
    out[i] = a[i] * b[i];
}

// Fixed-shape tree over a block's threads (blockDim.x == kThreads).
__device__ double block_sum(double v, double* smem) {
  smem[threadIdx.x] = v;
  __syncthreads();
  for (int s = kThreads / 2; s > 0; s >>= 1) {
    if (threadIdx.x < s) smem[threadIdx.x] += smem[threadIdx.x + s];
    __syncthreads();
  }
  return smem[0];
}

template <bool kSquares>
__global__ void sum_partials_kernel(const float* __restrict__ x, Strided4 g, int64_t n, bool contiguous,
                                    double* __restrict__ partials) {
  __shared__ double smem[kThreads];
  double acc = 0;
  for (int64_t i = blockIdx.x * static_cast<int64_t>(kThreads) + threadIdx.x; i < n;
       i += static_cast<int64_t>(kReduceBlocks) * kThreads) {
    const double v = x[contiguous ? i : g.offset(i)];
    acc += kSquares ? v * v : v;
  }
  const double total = block_sum(acc, smem);
  if (threadIdx.x == 0) partials[blockIdx.x] = total;
}

__global__ void sum_final_kernel(const double* __restrict__ partials, double* __restrict__ out) {
  __shared__ double smem[kThreads];
  double acc = 0;
  for (int i = threadIdx.x; i < kReduceBlocks; i += kThreads) acc += partials[i];
  const double total = block_sum(acc, smem);
  if (threadIdx.x == 0) *out = total;
}

__global__ void nonfinite_kernel(const float* __restrict__ x, Strided4 g, int64_t n, bool contiguous,
                                 int* __restrict__ flag) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    if (!isfinite(x[contiguous ? i : g.offset(i)])) *flag = 1;  // every writer stores the same 1
  }
}

unsigned grid_for(int64_t n) { return capped_blocks(n, kThreads); }

// Host<->device copy of one dtype. The innermost dimension is dense; every other
// dimension may be strided: one 2-d copy per index of the dimensions above the last two.
void copy_across(CudaContext& c, const Tensor& src, Tensor& dst) {
  const size_t es = dtype_size(src.dtype());
  if (src.is_contiguous() && dst.is_contiguous()) {
    GM_CUDA_CHECK(cudaMemcpyAsync(dst.raw(), src.raw(), src.nbytes(), cudaMemcpyDefault, c.stream()));
    return;
  }
  const int nd = src.ndim();
  const int64_t width = src.size(nd - 1) * static_cast<int64_t>(es);
  const int64_t height = nd >= 2 ? src.size(nd - 2) : 1;
  const int64_t spitch = nd >= 2 ? src.stride(nd - 2) * static_cast<int64_t>(es) : width;
  const int64_t dpitch = nd >= 2 ? dst.stride(nd - 2) * static_cast<int64_t>(es) : width;
  int64_t outer = 1;
  for (int d = 0; d < nd - 2; ++d) outer *= src.size(d);
  for (int64_t o = 0; o < outer; ++o) {
    int64_t rest = o, soff = 0, doff = 0;
    for (int d = nd - 3; d >= 0; --d) {
      const int64_t i = rest % src.size(d);
      rest /= src.size(d);
      soff += i * src.stride(d);
      doff += i * dst.stride(d);
    }
    GM_CUDA_CHECK(cudaMemcpy2DAsync(static_cast<char*>(dst.raw()) + doff * static_cast<int64_t>(es), dpitch,
                                    static_cast<const char*>(src.raw()) + soff * static_cast<int64_t>(es), spitch,
                                    width, height, cudaMemcpyDefault, c.stream()));
  }
}

template <class Tin>
void convert_from(CudaContext& c, const Tensor& src, Tensor& dst, int64_t n, bool contiguous) {
  const Tin* s = static_cast<const Tin*>(src.raw());
  const Strided4 gs = strided4(src), gd = strided4(dst);
  switch (dst.dtype()) {
    case DType::F32:
      convert_kernel<Tin, float><<<grid_for(n), kThreads, 0, c.stream()>>>(s, gs, dst.data<float>(), gd, n, contiguous);
      break;
    case DType::BF16:
      convert_kernel<Tin, bf16_t><<<grid_for(n), kThreads, 0, c.stream()>>>(
          s, gs, static_cast<bf16_t*>(dst.raw()), gd, n, contiguous);
      break;
    default: require(false, "copy", "cannot cast to " + dst.describe());
  }
  GM_CUDA_CHECK_LAUNCH();
}

template <class T>
void same_type_copy(CudaContext& c, const Tensor& src, Tensor& dst, int64_t n) {
  convert_kernel<T, T><<<grid_for(n), kThreads, 0, c.stream()>>>(
      static_cast<const T*>(src.raw()), strided4(src), static_cast<T*>(dst.raw()), strided4(dst), n, false);
  GM_CUDA_CHECK_LAUNCH();
}

void check_f32_contiguous(const Tensor& t, const char* op, const char* name) {
  require_cuda(t, op, name);
  require_dtype(t, DType::F32, op, name);
  require(t.is_contiguous(), op, std::string(name) + " must be contiguous");
}

template <bool kSquares>
double reduce_to_host(Context& ctx, const Tensor& x, const char* op) {
  CudaContext& c = as_cuda(ctx);
  require_cuda(x, op, "x");
  require_dtype(x, DType::F32, op, "x");
  const int64_t n = x.numel();
  // kReduceBlocks partial sums and the result, as doubles (2 f32 slots each).
  Tensor buf = Tensor::empty(c.allocator(), {2 * (kReduceBlocks + 1)}, DType::F32);
  double* d_partials = static_cast<double*>(buf.raw());
  double* d_out = d_partials + kReduceBlocks;
  sum_partials_kernel<kSquares><<<kReduceBlocks, kThreads, 0, c.stream()>>>(x.data<float>(), strided4(x), n,
                                                                             x.is_contiguous(), d_partials);
  GM_CUDA_CHECK_LAUNCH();
  sum_final_kernel<<<1, kThreads, 0, c.stream()>>>(d_partials, d_out);
  GM_CUDA_CHECK_LAUNCH();
  double result = 0;
  GM_CUDA_CHECK(cudaMemcpyAsync(&result, d_out, sizeof(double), cudaMemcpyDeviceToHost, c.stream()));
  GM_CUDA_CHECK(cudaStreamSynchronize(c.stream()));
  return result;
}
}  // namespace

void copy(Context& ctx, const Tensor& src, Tensor& dst) {
  CudaContext& c = as_cuda(ctx);
  require(src.shape() == dst.shape(), "copy", "shapes differ: " + src.describe() + " -> " + dst.describe());
  require((src.size(-1) <= 1 || src.stride(-1) == 1) && (dst.size(-1) <= 1 || dst.stride(-1) == 1), "copy",
          "the innermost dimension must be dense: " + src.describe() + " -> " + dst.describe());
  const int64_t n = src.numel();
  if (n == 0) return;
  const bool across = src.device().is_cpu() || dst.device().is_cpu();
  if (across) {
    require(src.dtype() == dst.dtype(), "copy",
            "host<->device copies keep the dtype: " + src.describe() + " -> " + dst.describe());
    copy_across(c, src, dst);
    if (dst.device().is_cpu()) GM_CUDA_CHECK(cudaStreamSynchronize(c.stream()));
    return;
  }
  const bool contiguous = src.is_contiguous() && dst.is_contiguous();
  if (src.dtype() == dst.dtype()) {
    if (contiguous) {
      GM_CUDA_CHECK(cudaMemcpyAsync(dst.raw(), src.raw(), src.nbytes(), cudaMemcpyDeviceToDevice, c.stream()));
      return;
    }
    switch (dtype_size(src.dtype())) {
      case 4: same_type_copy<float>(c, src, dst, n); break;
      case 2: same_type_copy<bf16_t>(c, src, dst, n); break;
      default: same_type_copy<uint8_t>(c, src, dst, n); break;
    }
    return;
  }
  switch (src.dtype()) {
    case DType::F32: convert_from<float>(c, src, dst, n, contiguous); break;
    case DType::BF16: convert_from<bf16_t>(c, src, dst, n, contiguous); break;
    default: require(false, "copy", "cannot cast from " + src.describe());
  }
}

void fill(Context& ctx, Tensor& t, float value) {
  CudaContext& c = as_cuda(ctx);
  require_cuda(t, "fill", "t");
  const int64_t n = t.numel();
  if (n == 0) return;
  const Strided4 g = strided4(t);
  const bool contiguous = t.is_contiguous();
  switch (t.dtype()) {
    case DType::F32:
      fill_kernel<float><<<grid_for(n), kThreads, 0, c.stream()>>>(t.data<float>(), g, n, value, contiguous);
      break;
    case DType::BF16:
      fill_kernel<bf16_t><<<grid_for(n), kThreads, 0, c.stream()>>>(static_cast<bf16_t*>(t.raw()), g, n,
                                                                    __float2bfloat16_rn(value), contiguous);
      break;
    case DType::I32:
      fill_kernel<int32_t><<<grid_for(n), kThreads, 0, c.stream()>>>(t.data<int32_t>(), g, n,
                                                                     static_cast<int32_t>(value), contiguous);
      break;
    case DType::U8:
      fill_kernel<uint8_t><<<grid_for(n), kThreads, 0, c.stream()>>>(t.data<uint8_t>(), g, n,
                                                                     static_cast<uint8_t>(value), contiguous);
      break;
  }
  GM_CUDA_CHECK_LAUNCH();
}

void axpy(Context& ctx, float alpha, const Tensor& x, Tensor& y) {
  CudaContext& c = as_cuda(ctx);
  check_f32_contiguous(x, "axpy", "x");
  check_f32_contiguous(y, "axpy", "y");
  require(x.numel() == y.numel(), "axpy", "sizes differ: " + x.describe() + " vs " + y.describe());
  if (x.numel() == 0) return;
  axpy_kernel<<<grid_for(x.numel()), kThreads, 0, c.stream()>>>(alpha, x.data<float>(), y.data<float>(), x.numel());
  GM_CUDA_CHECK_LAUNCH();
}

void scale(Context& ctx, Tensor& x, float s) {
  CudaContext& c = as_cuda(ctx);
  check_f32_contiguous(x, "scale", "x");
  if (x.numel() == 0) return;
  scale_kernel<<<grid_for(x.numel()), kThreads, 0, c.stream()>>>(x.data<float>(), s, x.numel());
  GM_CUDA_CHECK_LAUNCH();
}

void neg_exp(Context& ctx, const Tensor& in, Tensor& out) {
  CudaContext& c = as_cuda(ctx);
  check_f32_contiguous(in, "neg_exp", "in");
  check_f32_contiguous(out, "neg_exp", "out");
  require(in.numel() == out.numel(), "neg_exp", "sizes differ");
  if (in.numel() == 0) return;
  neg_exp_kernel<<<grid_for(in.numel()), kThreads, 0, c.stream()>>>(in.data<float>(), out.data<float>(), in.numel());
  GM_CUDA_CHECK_LAUNCH();
}

void mul(Context& ctx, const Tensor& a, const Tensor& b, Tensor& out) {
  CudaContext& c = as_cuda(ctx);
  check_f32_contiguous(a, "mul", "a");
  check_f32_contiguous(b, "mul", "b");
  check_f32_contiguous(out, "mul", "out");
  require(a.numel() == b.numel() && a.numel() == out.numel(), "mul", "sizes differ");
  if (a.numel() == 0) return;
  mul_kernel<<<grid_for(a.numel()), kThreads, 0, c.stream()>>>(a.data<float>(), b.data<float>(), out.data<float>(),
                                                               a.numel());
  GM_CUDA_CHECK_LAUNCH();
}

double sum(Context& ctx, const Tensor& x) { return reduce_to_host<false>(ctx, x, "sum"); }
double sum_squares(Context& ctx, const Tensor& x) { return reduce_to_host<true>(ctx, x, "sum_squares"); }

bool has_nonfinite(Context& ctx, const Tensor& x) {
  CudaContext& c = as_cuda(ctx);
  require_cuda(x, "has_nonfinite", "x");
  require_dtype(x, DType::F32, "has_nonfinite", "x");
  const int64_t n = x.numel();
  Tensor flag = Tensor::empty(c.allocator(), {1}, DType::I32);
  GM_CUDA_CHECK(cudaMemsetAsync(flag.raw(), 0, sizeof(int), c.stream()));
  if (n > 0) {
    nonfinite_kernel<<<grid_for(n), kThreads, 0, c.stream()>>>(x.data<float>(), strided4(x), n, x.is_contiguous(),
                                                                flag.data<int>());
    GM_CUDA_CHECK_LAUNCH();
  }
  int host = 0;
  GM_CUDA_CHECK(cudaMemcpyAsync(&host, flag.raw(), sizeof(int), cudaMemcpyDeviceToHost, c.stream()));
  GM_CUDA_CHECK(cudaStreamSynchronize(c.stream()));
  return host != 0;
}

}  // namespace gm::cuda
