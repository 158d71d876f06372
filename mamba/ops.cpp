// Dispatch of every op to the backend of the context's device.
#include "mamba/ops.h"

#include <chrono>
#include <stdexcept>
#include <string>

namespace gm::ops {

namespace {

// Times one op into ctx.profile when profiling is on.
class ProfileScope {
 public:
  ProfileScope(Context& ctx, const char* name) : ctx_(ctx), name_(name) {
    if (ctx_.profile) {
      ctx_.synchronize();
      start_ = std::chrono::steady_clock::now();
    }
  }
  ~ProfileScope() {
    if (!ctx_.profile) return;
    ctx_.synchronize();
    ctx_.profile->seconds[name_] += std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
    ctx_.profile->calls[name_] += 1;
  }

 private:
  Context& ctx_;
  const char* name_;
  std::chrono::steady_clock::time_point start_;
};

}  // namespace

// GM_DISPATCH_AS times the op under `name` (a C string that lives until the op returns).
#ifdef GENOMAMBA_HAVE_CUDA
#define GM_DISPATCH_AS(name, fn, ...)                                                                \
  do {                                                                                               \
    ProfileScope profile_scope(ctx, name);                                                           \
    return ctx.device().is_cuda() ? ::gm::cuda::fn(ctx, __VA_ARGS__) : ::gm::cpu::fn(ctx, __VA_ARGS__); \
  } while (0)
#else
#define GM_DISPATCH_AS(name, fn, ...)                                                     \
  do {                                                                                    \
    if (ctx.device().is_cuda()) throw std::runtime_error("built without the CUDA backend"); \
    ProfileScope profile_scope(ctx, name);                                                \
    return ::gm::cpu::fn(ctx, __VA_ARGS__);                                               \
  } while (0)
#endif
#define GM_DISPATCH(fn, ...) GM_DISPATCH_AS(#fn, fn, __VA_ARGS__)

void copy(Context& ctx, const Tensor& src, Tensor& dst) { GM_DISPATCH(copy, src, dst); }
void fill(Context& ctx, Tensor& t, float value) { GM_DISPATCH(fill, t, value); }
void axpy(Context& ctx, float alpha, const Tensor& x, Tensor& y) { GM_DISPATCH(axpy, alpha, x, y); }
void scale(Context& ctx, Tensor& x, float s) { GM_DISPATCH(scale, x, s); }
void neg_exp(Context& ctx, const Tensor& in, Tensor& out) { GM_DISPATCH(neg_exp, in, out); }
void mul(Context& ctx, const Tensor& a, const Tensor& b, Tensor& out) { GM_DISPATCH(mul, a, b, out); }
double sum(Context& ctx, const Tensor& x) { GM_DISPATCH(sum, x); }
double sum_squares(Context& ctx, const Tensor& x) { GM_DISPATCH(sum_squares, x); }
bool has_nonfinite(Context& ctx, const Tensor& x) { GM_DISPATCH(has_nonfinite, x); }

void span_reduce(Context& ctx, const Tensor& x, const Tensor& spans, bool max, Tensor& out) {
  GM_DISPATCH(span_reduce, x, spans, max, out);
}

// Profiled per shape ("gemm MxNxK[/batch] NT"): one model step runs products of very
// different shapes, and a single total for all of them says nothing about which is slow.
void gemm(Context& ctx, bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha,
          const Tensor& A, int64_t lda, int64_t stride_a, const Tensor& B, int64_t ldb, int64_t stride_b,
          float beta, Tensor& C, int64_t ldc, int64_t stride_c, int64_t batch) {
  std::string key;
  if (ctx.profile) {
    key = "gemm " + std::to_string(M) + "x" + std::to_string(N) + "x" + std::to_string(K) +
          (batch > 1 ? "/" + std::to_string(batch) : std::string()) + " " + (trans_a ? "T" : "N") +
          (trans_b ? "T" : "N");
  }
  GM_DISPATCH_AS(ctx.profile ? key.c_str() : "gemm", gemm, trans_a, trans_b, M, N, K, alpha, A, lda, stride_a, B,
                 ldb, stride_b, beta, C, ldc, stride_c, batch);
}

void embedding_fwd(Context& ctx, const Tensor& tokens, const Tensor& weight, Tensor& out) {
  GM_DISPATCH(embedding_fwd, tokens, weight, out);
}
void embedding_bwd(Context& ctx, const Tensor& tokens, const Tensor& dout, Tensor& dweight) {
  GM_DISPATCH(embedding_bwd, tokens, dout, dweight);
}

void add_rmsnorm_fwd(Context& ctx, const Tensor* x, Tensor& residual, const Tensor& weight, float eps,
                     Tensor& out, Tensor& rstd) {
  GM_DISPATCH(add_rmsnorm_fwd, x, residual, weight, eps, out, rstd);
}
void add_rmsnorm_bwd(Context& ctx, const Tensor& dout, const Tensor& residual, const Tensor& weight,
                     const Tensor& rstd, Tensor& dresidual, Tensor& dweight) {
  GM_DISPATCH(add_rmsnorm_bwd, dout, residual, weight, rstd, dresidual, dweight);
}

void conv1d_fwd(Context& ctx, const Tensor& x, const Tensor& weight, const Tensor* bias,
                const Tensor* seq_start, const Tensor* state_in, bool silu, Tensor& out, Tensor* state_out) {
  GM_DISPATCH(conv1d_fwd, x, weight, bias, seq_start, state_in, silu, out, state_out);
}
void conv1d_bwd(Context& ctx, const Tensor& dout, const Tensor& x, const Tensor& weight, const Tensor* bias,
                const Tensor* seq_start, const Tensor* state_in, bool silu, Tensor& dx, Tensor& dweight,
                Tensor* dbias) {
  GM_DISPATCH(conv1d_bwd, dout, x, weight, bias, seq_start, state_in, silu, dx, dweight, dbias);
}

int64_t selective_scan_saved_numel(Context& ctx, int64_t batch, int64_t d_inner, int64_t length,
                                   int64_t d_state) {
  GM_DISPATCH(selective_scan_saved_numel, batch, d_inner, length, d_state);
}
void selective_scan_fwd(Context& ctx, const ScanInputs& in, Tensor& out, Tensor* h_last, Tensor* saved) {
  GM_DISPATCH(selective_scan_fwd, in, out, h_last, saved);
}
void selective_scan_bwd(Context& ctx, const ScanInputs& in, const Tensor* saved, const Tensor& dout,
                        const ScanGrads& grads) {
  GM_DISPATCH(selective_scan_bwd, in, saved, dout, grads);
}

void cross_entropy(Context& ctx, const Tensor& logits, const Tensor& targets, const Tensor* flags,
                   float soft_weight, float grad_scale, Tensor& losses, Tensor* dlogits) {
  GM_DISPATCH(cross_entropy, logits, targets, flags, soft_weight, grad_scale, losses, dlogits);
}

void adamw(Context& ctx, Tensor& param, const Tensor& grad, Tensor& m, Tensor& v, const AdamWStep& s) {
  GM_DISPATCH(adamw, param, grad, m, v, s);
}

void add_rmsnorm_fwd_out(Context& ctx, const Tensor* x, const Tensor& residual_in, Tensor& residual_out,
                         const Tensor& weight, float eps, Tensor& out, Tensor& rstd) {
  GM_DISPATCH(add_rmsnorm_fwd_out, x, residual_in, residual_out, weight, eps, out, rstd);
}
void add_rmsnorm_bwd_act(Context& ctx, const Tensor& dout, const Tensor& residual, const Tensor& weight,
                         const Tensor& rstd, Tensor& dresidual, Tensor& dweight, Tensor& dresidual_act) {
  GM_DISPATCH(add_rmsnorm_bwd_act, dout, residual, weight, rstd, dresidual, dweight, dresidual_act);
}
void lm_head_cross_entropy(Context& ctx, const Tensor& h, const Tensor& weight, const Tensor& targets,
                           const Tensor* flags, float soft_weight, float grad_scale, Tensor& losses, Tensor& dh,
                           Tensor& dweight) {
  GM_DISPATCH(lm_head_cross_entropy, h, weight, targets, flags, soft_weight, grad_scale, losses, dh, dweight);
}

}  // namespace gm::ops
