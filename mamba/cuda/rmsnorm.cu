// Residual add + RMSNorm on CUDA (token-major [M, d], all dense), forward and backward,
// in place on the residual stream. Kernels and checks: rmsnorm_kernels.cuh.
// x is act or f32; out and dout are act (bf16 or f32); residual, rstd, weight, dresidual,
// dweight f32. dweight is summed deterministically (fixed blocks, column_sum).
#include "mamba/cuda/rmsnorm_kernels.cuh"
#include "mamba/ops.h"

namespace gm::cuda {

void add_rmsnorm_fwd(Context& ctx, const Tensor* x, Tensor& residual, const Tensor& weight, float eps, Tensor& out,
                     Tensor& rstd) {
  rmsnorm::launch_fwd(as_cuda(ctx), "add_rmsnorm_fwd", x, residual, residual, weight, eps, out, rstd);
}

void add_rmsnorm_bwd(Context& ctx, const Tensor& dout, const Tensor& residual, const Tensor& weight,
                     const Tensor& rstd, Tensor& dresidual, Tensor& dweight) {
  rmsnorm::launch_bwd(as_cuda(ctx), "add_rmsnorm_bwd", dout, residual, weight, rstd, dresidual, dweight, nullptr);
}

}  // namespace gm::cuda
