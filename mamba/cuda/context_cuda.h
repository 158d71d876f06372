// The CUDA context: one device, one stream, the cuBLAS / cuBLASLt handles with their
// workspace, and a caching device allocator with byte accounting.
//
// Conventions
// - All work of every gm::cuda op is queued on stream(); nothing synchronises the host
//   except ops that return a value (sum, sum_squares, has_nonfinite, device->host copy).
// - bytes_in_use / peak_bytes count blocks handed out, rounded up to 512 bytes (what
//   torch.cuda.memory_allocated / max_memory_allocated count); reserved_bytes also counts
//   the freed blocks kept for reuse.
// - Freed blocks go to a free list keyed by their size class and are reused by later
//   allocations of that class. Reuse is safe without events because every op runs on the
//   one stream, in order.
// - The context must outlive every tensor allocated through it.
// Plain C++ header (no device code), usable from tests and benchmarks.
#pragma once

#include <cublasLt.h>
#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <map>
#include <mutex>
#include <vector>

#include "mamba/context.h"

namespace gm::cuda {

class CudaAllocator final : public Allocator {
 public:
  explicit CudaAllocator(int device);
  ~CudaAllocator() override;
  CudaAllocator(const CudaAllocator&) = delete;
  CudaAllocator& operator=(const CudaAllocator&) = delete;

  void* allocate(size_t bytes) override;
  void deallocate(void* p, size_t bytes) override;
  Device device() const override { return Device::cuda(device_); }
  size_t bytes_in_use() const override;
  size_t peak_bytes() const override;
  void reset_peak() override;
  // In use plus cached free blocks: what cudaMalloc has handed this allocator.
  size_t reserved_bytes() const;
  // Returns every cached free block to the driver (synchronises the device first).
  void release_cached();

 private:
  static size_t size_class(size_t bytes);
  void release_cached_locked();

  int device_;
  mutable std::mutex mu_;
  std::map<size_t, std::vector<void*>> free_;  // size class -> free blocks
  std::map<void*, size_t> live_;               // block -> size class
  size_t in_use_ = 0;
  size_t peak_ = 0;
  size_t reserved_ = 0;
};

class CudaContext final : public Context {
 public:
  CudaContext(int device, Precision precision);
  ~CudaContext() override;
  CudaContext(const CudaContext&) = delete;
  CudaContext& operator=(const CudaContext&) = delete;

  Device device() const override { return Device::cuda(device_); }
  Allocator& allocator() override { return alloc_; }
  CudaAllocator& cuda_allocator() { return alloc_; }
  void synchronize() override;

  cudaStream_t stream() const { return stream_; }
  cublasHandle_t cublas() const { return cublas_; }
  cublasLtHandle_t cublaslt() const { return cublaslt_; }
  void* workspace() const { return workspace_; }
  size_t workspace_bytes() const { return workspace_bytes_; }
  int sm_count() const { return sm_count_; }
  size_t l2_bytes() const { return l2_bytes_; }
  // cudaMemGetInfo of this device: free and total bytes.
  void mem_info(size_t& free_bytes, size_t& total_bytes) const;

 private:
  int device_;
  CudaAllocator alloc_;
  cudaStream_t stream_ = nullptr;
  cublasHandle_t cublas_ = nullptr;
  cublasLtHandle_t cublaslt_ = nullptr;
  void* workspace_ = nullptr;
  size_t workspace_bytes_ = 0;
  int sm_count_ = 0;
  size_t l2_bytes_ = 0;
};

// The CUDA context behind ctx; throws std::invalid_argument when ctx is not a CUDA context.
CudaContext& as_cuda(Context& ctx);

}  // namespace gm::cuda
