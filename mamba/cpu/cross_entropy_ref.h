// Next-token cross-entropy with per-target weights, as a template over the scalar
// type T (float in gm::cpu::cross_entropy, double in the tests).
// logits, dlogits [M, V] dense; targets, flags [M] (u8; flags may be null).
// Weight of row i: 0 unless targets[i] is A, C, G or T (ids 7..10); soft_weight when
// flags bit 0 (soft-masked) is set, else 1.
//   losses[i]  = w_i * (logsumexp(logits_i) - logits_i[target_i])      (0 when w_i = 0)
//   dlogits[i] = grad_scale * w_i * (softmax(logits_i) - onehot(target_i))  (overwritten)
// logsumexp is taken in double after subtracting the row maximum.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>

namespace gm::cpu {

constexpr uint8_t kFirstBaseToken = 7;  // A
constexpr uint8_t kLastBaseToken = 10;  // T
constexpr uint8_t kSoftMaskedFlag = 1;

inline bool is_base_token(uint8_t t) { return t >= kFirstBaseToken && t <= kLastBaseToken; }

template <class T>
void cross_entropy_ref(const T* logits, const uint8_t* targets, const uint8_t* flags, int64_t M, int64_t V,
                       T soft_weight, T grad_scale, T* losses, T* dlogits, int threads) {
#pragma omp parallel for num_threads(threads) schedule(static)
  for (int64_t i = 0; i < M; ++i) {
    const T* x = logits + i * V;
    const uint8_t target = targets[i];
    const double w = !is_base_token(target)                       ? 0.0
                     : (flags && (flags[i] & kSoftMaskedFlag)) ? static_cast<double>(soft_weight)
                                                                  : 1.0;
    if (w == 0.0) {
      losses[i] = T(0);
      if (dlogits) std::fill_n(dlogits + i * V, V, T(0));
      continue;
    }
    double mx = static_cast<double>(x[0]);
    for (int64_t j = 1; j < V; ++j) mx = std::max(mx, static_cast<double>(x[j]));
    double s = 0;
    for (int64_t j = 0; j < V; ++j) s += std::exp(static_cast<double>(x[j]) - mx);
    const double lse = mx + std::log(s);
    losses[i] = static_cast<T>(w * (lse - static_cast<double>(x[target])));
    if (dlogits) {
      const double scale = static_cast<double>(grad_scale) * w;
      for (int64_t j = 0; j < V; ++j) {
        const double p = std::exp(static_cast<double>(x[j]) - lse);
        dlogits[i * V + j] = static_cast<T>(scale * (p - (j == target ? 1.0 : 0.0)));
      }
    }
  }
}

}  // namespace gm::cpu
