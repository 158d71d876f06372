// AdamW on the CPU (the update rule is in adamw_ref.h).
#include <string>

#include "mamba/cpu/adamw_ref.h"
#include "mamba/cpu/checks.h"
#include "mamba/ops.h"

namespace gm::cpu {

void adamw(Context& ctx, Tensor& param, const Tensor& grad, Tensor& m, Tensor& v, const AdamWStep& s) {
  const char* op = "adamw";
  detail::require_dtype(op, "param", param, DType::F32);
  detail::require_contiguous(op, "param", param);
  const Tensor::Shape shape = param.shape();
  detail::require_dense(op, "grad", grad, DType::F32, shape);
  detail::require_dense(op, "m", m, DType::F32, shape);
  detail::require_dense(op, "v", v, DType::F32, shape);
  if (s.step < 1) detail::fail(op, "step must be >= 1 (1-based), got " + std::to_string(s.step));
  adamw_ref<float>(param.data<float>(), grad.data<float>(), m.data<float>(), v.data<float>(), param.numel(), s,
                   ctx.threads());
}

}  // namespace gm::cpu
