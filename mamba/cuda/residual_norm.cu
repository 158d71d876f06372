// Fused residual-stream ops of the training step on CUDA (twin of mamba/cpu/residual_norm.cpp):
// the out-of-place residual add + RMSNorm (the training forward keeps each layer's residual
// without a copy) and the RMSNorm backward that also writes the act-dtype copy of the
// residual gradient (the previous mixer's output gradient, without a cast kernel).
// Same kernels as rmsnorm.cu (rmsnorm_kernels.cuh), so values are bitwise those of the
// in-place ops.
#include "mamba/cuda/rmsnorm_kernels.cuh"
#include "mamba/ops.h"

namespace gm::cuda {

void add_rmsnorm_fwd_out(Context& ctx, const Tensor* x, const Tensor& residual_in, Tensor& residual_out,
                         const Tensor& weight, float eps, Tensor& out, Tensor& rstd) {
  const char* op = "add_rmsnorm_fwd_out";
  if (residual_in.raw() != residual_out.raw()) {
    const char* a = static_cast<const char*>(residual_in.raw());
    const char* b = static_cast<const char*>(residual_out.raw());
    require(a + residual_in.nbytes() <= b || b + residual_out.nbytes() <= a, op,
            "residual_in and residual_out overlap");
  }
  rmsnorm::launch_fwd(as_cuda(ctx), op, x, residual_in, residual_out, weight, eps, out, rstd);
}

void add_rmsnorm_bwd_act(Context& ctx, const Tensor& dout, const Tensor& residual, const Tensor& weight,
                         const Tensor& rstd, Tensor& dresidual, Tensor& dweight, Tensor& dresidual_act) {
  rmsnorm::launch_bwd(as_cuda(ctx), "add_rmsnorm_bwd_act", dout, residual, weight, rstd, dresidual, dweight,
                      &dresidual_act);
}

}  // namespace gm::cuda
