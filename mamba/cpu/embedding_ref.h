// Token embedding, forward and backward, as templates over the scalar type T
// (float in gm::cpu::embedding_*, double in the finite-difference tests).
// tokens [M] (u8, every id < V, checked by the caller); weight / dweight [V, d];
// out / dout [M, d]; all dense. The backward ACCUMULATES into dweight.
#pragma once

#include <algorithm>
#include <cstdint>
#include <vector>

namespace gm::cpu {

template <class T>
void embedding_forward_ref(const uint8_t* tokens, int64_t M, const T* weight, int64_t d, T* out, int threads) {
#pragma omp parallel for num_threads(threads) schedule(static)
  for (int64_t m = 0; m < M; ++m) std::copy_n(weight + tokens[m] * d, d, out + m * d);
}

// dweight[v, :] += sum over m with tokens[m] == v of dout[m, :]. Columns are split in
// fixed blocks; each block sums the tokens in order in double, so the result does not
// depend on the thread count.
template <class T>
void embedding_backward_ref(const uint8_t* tokens, int64_t M, const T* dout, int64_t V, int64_t d, T* dweight,
                            int threads) {
  constexpr int64_t kCols = 64;
  const int64_t blocks = (d + kCols - 1) / kCols;
#pragma omp parallel for num_threads(threads) schedule(static)
  for (int64_t blk = 0; blk < blocks; ++blk) {
    const int64_t j0 = blk * kCols, width = std::min(kCols, d - j0);
    std::vector<double> acc(static_cast<size_t>(V * width), 0.0);
    for (int64_t m = 0; m < M; ++m) {
      const T* g = dout + m * d + j0;
      double* a = acc.data() + tokens[m] * width;
      for (int64_t j = 0; j < width; ++j) a[j] += static_cast<double>(g[j]);
    }
    for (int64_t v = 0; v < V; ++v)
      for (int64_t j = 0; j < width; ++j) dweight[v * d + j0 + j] += static_cast<T>(acc[v * width + j]);
  }
}

}  // namespace gm::cpu
