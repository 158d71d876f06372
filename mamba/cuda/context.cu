// CUDA context creation, the caching device allocator and gm::cuda_available().
#include <cstdio>
#include <sstream>
#include <stdexcept>

#include "mamba/cuda/check.cuh"
#include "mamba/cuda/context_cuda.h"

namespace gm {

namespace {
constexpr size_t kAccountingGranule = 512;        // torch's block rounding
constexpr size_t kSmallLimit = size_t(1) << 20;   // below: size classes of 512 B
constexpr size_t kLargeGranule = size_t(2) << 20; // above: size classes of 2 MiB
constexpr size_t kCublasWorkspace = size_t(32) << 20;

size_t round_up(size_t n, size_t m) { return (n + m - 1) / m * m; }

std::string gib(size_t bytes) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.2f GiB", static_cast<double>(bytes) / (1024.0 * 1024.0 * 1024.0));
  return buf;
}
}  // namespace

namespace cuda {

CudaAllocator::CudaAllocator(int device) : device_(device) {}

CudaAllocator::~CudaAllocator() {
  std::lock_guard<std::mutex> lock(mu_);
  if (free_.empty() && live_.empty()) return;  // e.g. a context refused for a missing device
  cudaSetDevice(device_);
  cudaDeviceSynchronize();
  for (auto& [cls, blocks] : free_)
    for (void* p : blocks) cudaFree(p);
  // Blocks still live here belong to tensors that outlived their context: a caller bug,
  // but freeing them keeps the process from leaking device memory.
  for (auto& [p, cls] : live_) cudaFree(p);
  (void)cudaGetLastError();  // leave no stale error for the next checked call
}

size_t CudaAllocator::size_class(size_t bytes) {
  return bytes < kSmallLimit ? round_up(bytes, kAccountingGranule) : round_up(bytes, kLargeGranule);
}

void* CudaAllocator::allocate(size_t bytes) {
  if (bytes == 0) return nullptr;
  const size_t cls = size_class(bytes);
  const size_t counted = round_up(bytes, kAccountingGranule);
  std::lock_guard<std::mutex> lock(mu_);
  void* p = nullptr;
  auto it = free_.find(cls);
  if (it != free_.end() && !it->second.empty()) {
    p = it->second.back();
    it->second.pop_back();
  } else {
    GM_CUDA_CHECK(cudaSetDevice(device_));
    cudaError_t err = cudaMalloc(&p, cls);
    if (err == cudaErrorMemoryAllocation) {
      (void)cudaGetLastError();
      release_cached_locked();
      err = cudaMalloc(&p, cls);
    }
    if (err == cudaErrorMemoryAllocation) {
      (void)cudaGetLastError();
      size_t free_b = 0, total_b = 0;
      cudaMemGetInfo(&free_b, &total_b);
      std::ostringstream os;
      os << "out of GPU memory on cuda:" << device_ << ": asked for " << gib(bytes) << " with "
         << gib(in_use_) << " in use by genomamba (" << gib(free_b) << " free of " << gib(total_b)
         << " on the device); try a smaller batch or a shorter sequence length";
      throw OutOfDeviceMemory(os.str());
    }
    GM_CUDA_CHECK(err);
    reserved_ += cls;
  }
  live_[p] = cls;
  in_use_ += counted;
  if (in_use_ > peak_) peak_ = in_use_;
  return p;
}

void CudaAllocator::deallocate(void* p, size_t bytes) {
  if (!p) return;
  std::lock_guard<std::mutex> lock(mu_);
  auto it = live_.find(p);
  if (it == live_.end()) return;  // not ours; nothing sensible to do in a deleter
  free_[it->second].push_back(p);
  live_.erase(it);
  in_use_ -= round_up(bytes, kAccountingGranule);
}

size_t CudaAllocator::bytes_in_use() const {
  std::lock_guard<std::mutex> lock(mu_);
  return in_use_;
}
size_t CudaAllocator::peak_bytes() const {
  std::lock_guard<std::mutex> lock(mu_);
  return peak_;
}
void CudaAllocator::reset_peak() {
  std::lock_guard<std::mutex> lock(mu_);
  peak_ = in_use_;
}
size_t CudaAllocator::reserved_bytes() const {
  std::lock_guard<std::mutex> lock(mu_);
  return reserved_;
}

void CudaAllocator::release_cached() {
  std::lock_guard<std::mutex> lock(mu_);
  release_cached_locked();
}

void CudaAllocator::release_cached_locked() {
  // Freed blocks may still be read by queued kernels: wait for them first.
  GM_CUDA_CHECK(cudaSetDevice(device_));
  GM_CUDA_CHECK(cudaDeviceSynchronize());
  for (auto& [cls, blocks] : free_) {
    for (void* p : blocks) {
      GM_CUDA_CHECK(cudaFree(p));
      reserved_ -= cls;
    }
  }
  free_.clear();
}

CudaContext::CudaContext(int device, Precision precision) : device_(device), alloc_(device) {
  int count = 0;
  GM_CUDA_CHECK(cudaGetDeviceCount(&count));
  if (device < 0 || device >= count)  // checked before any call that names the device
    throw std::runtime_error("CUDA device " + std::to_string(device) + " does not exist (" +
                             std::to_string(count) + " device(s) visible)");
  precision_ = precision;
  threads_ = 1;
  GM_CUDA_CHECK(cudaSetDevice(device_));
  cudaDeviceProp prop{};
  GM_CUDA_CHECK(cudaGetDeviceProperties(&prop, device_));
  sm_count_ = prop.multiProcessorCount;
  l2_bytes_ = static_cast<size_t>(prop.l2CacheSize);
  GM_CUDA_CHECK(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
  GM_CUDA_CHECK(cudaMalloc(&workspace_, kCublasWorkspace));
  workspace_bytes_ = kCublasWorkspace;
  GM_CUBLAS_CHECK(cublasCreate(&cublas_));
  GM_CUBLAS_CHECK(cublasSetStream(cublas_, stream_));
  GM_CUBLAS_CHECK(cublasSetWorkspace(cublas_, workspace_, workspace_bytes_));
  // No TF32 anywhere: f32 products ask for CUBLAS_COMPUTE_32F_PEDANTIC themselves (gemm.cu),
  // bf16 products accumulate in fp32 under the default math mode.
  GM_CUBLAS_CHECK(cublasSetMathMode(cublas_, CUBLAS_DEFAULT_MATH));
  GM_CUBLAS_CHECK(cublasSetAtomicsMode(cublas_, CUBLAS_ATOMICS_NOT_ALLOWED));
  GM_CUBLAS_CHECK(cublasLtCreate(&cublaslt_));
}

CudaContext::~CudaContext() {
  cudaSetDevice(device_);
  if (stream_) cudaStreamSynchronize(stream_);
  if (cublaslt_) cublasLtDestroy(cublaslt_);
  if (cublas_) cublasDestroy(cublas_);
  if (workspace_) cudaFree(workspace_);
  if (stream_) cudaStreamDestroy(stream_);
}

void CudaContext::synchronize() { GM_CUDA_CHECK(cudaStreamSynchronize(stream_)); }

void CudaContext::mem_info(size_t& free_bytes, size_t& total_bytes) const {
  GM_CUDA_CHECK(cudaSetDevice(device_));
  GM_CUDA_CHECK(cudaMemGetInfo(&free_bytes, &total_bytes));
}

CudaContext& as_cuda(Context& ctx) {
  auto* c = dynamic_cast<CudaContext*>(&ctx);
  if (!c) throw std::invalid_argument("a gm::cuda op was called with a " + ctx.device().str() + " context");
  return *c;
}

}  // namespace cuda

std::unique_ptr<Context> make_cuda_context(Device device, Precision precision) {
  if (!device.is_cuda()) throw std::invalid_argument("make_cuda_context needs a CUDA device, got " + device.str());
  return std::make_unique<cuda::CudaContext>(device.index, precision);
}

bool cuda_available() {
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess) {
    (void)cudaGetLastError();
    return false;
  }
  return count > 0;
}

}  // namespace gm
