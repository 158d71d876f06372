// Residual add + RMSNorm, forward and backward, as templates over the scalar type T
// (float in gm::cpu::add_rmsnorm_*, double in the finite-difference tests).
// Token-major dense arrays: x, residual, out, dout, dresidual [M, d]; weight, dweight [d];
// rstd [M]. Sums over d are taken in double.
//   forward:  r = residual (+ x); rstd = 1/sqrt(mean(r^2) + eps); out = r * rstd * weight
//   backward: with xhat = r * rstd and g = dout * weight,
//             dr = rstd * (g - xhat * mean(g * xhat))  ADDED to dresidual,
//             dweight += sum over rows of dout * xhat  (ACCUMULATED).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

namespace gm::cpu {

template <class T>
void add_rmsnorm_forward_ref(const T* x, T* residual, const T* weight, int64_t M, int64_t d, T eps, T* out,
                             T* rstd, int threads) {
#pragma omp parallel for num_threads(threads) schedule(static)
  for (int64_t m = 0; m < M; ++m) {
    T* r = residual + m * d;
    if (x)
      for (int64_t j = 0; j < d; ++j) r[j] += x[m * d + j];
    double ss = 0;
    for (int64_t j = 0; j < d; ++j) ss += static_cast<double>(r[j]) * static_cast<double>(r[j]);
    const T rs = static_cast<T>(1.0 / std::sqrt(ss / static_cast<double>(d) + static_cast<double>(eps)));
    rstd[m] = rs;
    for (int64_t j = 0; j < d; ++j) out[m * d + j] = r[j] * rs * weight[j];
  }
}

// dweight is summed over fixed blocks of kRowBlock rows (double partials, combined in
// block order), so it does not depend on the thread count.
template <class T>
void add_rmsnorm_backward_ref(const T* dout, const T* residual, const T* weight, const T* rstd, int64_t M, int64_t d,
                              T* dresidual, T* dweight, int threads) {
  constexpr int64_t kRowBlock = 256;
  const int64_t blocks = (M + kRowBlock - 1) / kRowBlock;
  std::vector<double> partial(static_cast<size_t>(blocks * d), 0.0);
#pragma omp parallel for num_threads(threads) schedule(static)
  for (int64_t blk = 0; blk < blocks; ++blk) {
    double* pw = partial.data() + blk * d;
    for (int64_t m = blk * kRowBlock; m < std::min(M, (blk + 1) * kRowBlock); ++m) {
      const T* g = dout + m * d;
      const T* r = residual + m * d;
      const double rs = static_cast<double>(rstd[m]);
      double dot = 0;  // sum_j g_j w_j xhat_j
      for (int64_t j = 0; j < d; ++j) {
        const double xhat = static_cast<double>(r[j]) * rs;
        dot += static_cast<double>(g[j]) * static_cast<double>(weight[j]) * xhat;
        pw[j] += static_cast<double>(g[j]) * xhat;
      }
      const double mean_dot = dot / static_cast<double>(d);
      T* dr = dresidual + m * d;
      for (int64_t j = 0; j < d; ++j) {
        const double xhat = static_cast<double>(r[j]) * rs;
        dr[j] += static_cast<T>(rs * (static_cast<double>(g[j]) * static_cast<double>(weight[j]) - xhat * mean_dot));
      }
    }
  }
#pragma omp parallel for num_threads(threads) schedule(static)
  for (int64_t j = 0; j < d; ++j) {
    double s = 0;
    for (int64_t blk = 0; blk < blocks; ++blk) s += partial[blk * d + j];
    dweight[j] += static_cast<T>(s);
  }
}

}  // namespace gm::cpu
