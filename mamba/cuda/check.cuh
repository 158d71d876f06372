// Error checks for CUDA runtime and cuBLAS calls. Every call into CUDA goes through
// one of these macros, so a failure names the file, the line and the expression.
// Host-only; safe to include from .cu and .cpp files.
#pragma once

#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <stdexcept>
#include <string>

namespace gm::cuda::detail {

[[noreturn]] inline void throw_cuda_error(cudaError_t err, const char* expr, const char* file, int line) {
  throw std::runtime_error(std::string("CUDA error at ") + file + ":" + std::to_string(line) + ": " +
                           cudaGetErrorName(err) + " (" + cudaGetErrorString(err) + ") in " + expr);
}

[[noreturn]] inline void throw_cublas_error(cublasStatus_t st, const char* expr, const char* file, int line) {
  throw std::runtime_error(std::string("cuBLAS error at ") + file + ":" + std::to_string(line) + ": " +
                           cublasGetStatusName(st) + " (" + cublasGetStatusString(st) + ") in " + expr);
}

}  // namespace gm::cuda::detail

#define GM_CUDA_CHECK(expr)                                                            \
  do {                                                                                 \
    const cudaError_t gm_err_ = (expr);                                                \
    if (gm_err_ != cudaSuccess) ::gm::cuda::detail::throw_cuda_error(gm_err_, #expr, __FILE__, __LINE__); \
  } while (0)

#define GM_CUBLAS_CHECK(expr)                                                            \
  do {                                                                                   \
    const cublasStatus_t gm_st_ = (expr);                                                \
    if (gm_st_ != CUBLAS_STATUS_SUCCESS)                                                 \
      ::gm::cuda::detail::throw_cublas_error(gm_st_, #expr, __FILE__, __LINE__);          \
  } while (0)

// After a kernel launch: reports configuration errors (bad grid, too much shared memory)
// at the launch site instead of at some later synchronisation.
#define GM_CUDA_CHECK_LAUNCH() GM_CUDA_CHECK(cudaGetLastError())
