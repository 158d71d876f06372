// One AdamW step over a tensor on CUDA, computed as torch.optim.AdamW does (and as the
// CPU twin): g = grad * grad_scale; p *= 1 - lr*wd; m = b1 m + (1-b1) g;
// v = b2 v + (1-b2) g^2; p -= (lr / (1 - b1^t)) * m / (sqrt(v) / sqrt(1 - b2^t) + eps).
// The bias corrections are computed on the host in double. param, grad, m, v: dense f32.
#include <cmath>
#include <initializer_list>

#include "mamba/cuda/check.cuh"
#include "mamba/cuda/context_cuda.h"
#include "mamba/cuda/device_util.cuh"
#include "mamba/ops.h"

namespace gm::cuda {

namespace {
struct AdamWScalars {
  float b1, b2, eps, gscale, decay, step_size, bias2_sqrt;
};

__global__ void adamw_kernel(float* __restrict__ param, const float* __restrict__ grad, float* __restrict__ m,
                             float* __restrict__ v, int64_t n, AdamWScalars s) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const float g = grad[i] * s.gscale;
    float p = param[i] * s.decay;
    const float mi = s.b1 * m[i] + (1.f - s.b1) * g;
    const float vi = s.b2 * v[i] + (1.f - s.b2) * g * g;
    const float denom = sqrtf(vi) / s.bias2_sqrt + s.eps;
    p -= s.step_size * (mi / denom);
    m[i] = mi;
    v[i] = vi;
    param[i] = p;
  }
}
}  // namespace

void adamw(Context& ctx, Tensor& param, const Tensor& grad, Tensor& m, Tensor& v, const AdamWStep& s) {
  CudaContext& c = as_cuda(ctx);
  const char* op = "adamw";
  for (const Tensor* t : std::initializer_list<const Tensor*>{&param, &grad, &m, &v}) {
    require_cuda(*t, op, "param/grad/m/v");
    require(t->dtype() == DType::F32 && t->is_contiguous() && t->shape() == param.shape(), op,
            "param, grad, m and v must be dense f32 of one shape, got " + t->describe());
  }
  const int64_t n = param.numel();
  if (n == 0) return;
  const double step = static_cast<double>(s.step);
  AdamWScalars k{};
  k.b1 = s.beta1;
  k.b2 = s.beta2;
  k.eps = s.eps;
  k.gscale = s.grad_scale;
  k.decay = static_cast<float>(1.0 - static_cast<double>(s.lr) * static_cast<double>(s.weight_decay));
  k.step_size = static_cast<float>(static_cast<double>(s.lr) / (1.0 - std::pow(static_cast<double>(s.beta1), step)));
  k.bias2_sqrt = static_cast<float>(std::sqrt(1.0 - std::pow(static_cast<double>(s.beta2), step)));
  adamw_kernel<<<capped_blocks(n, 256), 256, 0, c.stream()>>>(param.data<float>(), grad.data<float>(),
                                                              m.data<float>(), v.data<float>(), n, k);
  GM_CUDA_CHECK_LAUNCH();
}

}  // namespace gm::cuda
