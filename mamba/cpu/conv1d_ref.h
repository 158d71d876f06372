// Causal depthwise conv1d (+ optional SiLU), forward and backward, as templates over
// the scalar type T (float in gm::cpu::conv1d_*, double in the finite-difference tests).
//
// Layout: x, out, dout, dx are channel-major [B, D, L] (Rows3: contiguous rows, free
// batch/channel strides); weight [D, K]; bias [D] (may be null); seq_start [B, L]
// (u8, 1 = a document starts here; may be absent); state_in / state_out [B, D, K-1]
// dense (may be null).
//
//   pre[b,c,t] = bias[c] + sum_k weight[c,k] * in(b, c, t-K+1+k | t),   out = silu(pre) or pre
//
// where in(p | t) is x[b,c,p] for p >= 0 and state_in[b,c,K-1+p] for p < 0 (0 without
// state_in), and is 0 when p lies before the latest document start at or before t
// (so a start also hides state_in). state_out[b,c,j] = in(L-K+1+j | L-1): the last
// K-1 inputs as the next chunk must see them, which makes two chunked calls equal one
// call over the whole sequence. Sums are taken in double.
// Backward: dx OVERWRITTEN; dweight, dbias ACCUMULATED. No gradient flows to state_in.
#pragma once

#include <algorithm>
#include <cstdint>
#include <vector>

#include "mamba/cpu/scalar_math.h"
#include "mamba/cpu/strided.h"

namespace gm::cpu {

struct ConvDims {
  int64_t batch = 0;
  int64_t channels = 0;  // D
  int64_t length = 0;    // L
  int64_t width = 0;     // K
};

namespace conv_detail {

// The inputs seen by one (b, c) row: x with state_in before it, masked by document start.
template <class T>
struct RowInputs {
  const T* x;
  const T* state;  // K-1 values before position 0, or null
  int64_t width;
  // Input at position p as seen from an output whose latest document start is `lo`.
  T at(int64_t p, int64_t lo) const {
    if (p < lo) return T(0);
    if (p >= 0) return x[p];
    return state ? state[width - 1 + p] : T(0);
  }
};

// "No start seen yet": every state position -(K-1)..-1 is visible.
inline int64_t no_start(int64_t width) { return -width; }

template <class T>
T pre_activation(const RowInputs<T>& in, const T* w, const T* bias_c, int64_t t, int64_t lo) {
  const int64_t K = in.width;
  double acc = bias_c ? static_cast<double>(*bias_c) : 0.0;
  for (int64_t k = 0; k < K; ++k) acc += static_cast<double>(w[k]) * static_cast<double>(in.at(t - K + 1 + k, lo));
  return static_cast<T>(acc);
}

}  // namespace conv_detail

template <class T>
void conv1d_forward_ref(const ConvDims& dims, Rows3<const T> x, const T* weight, const T* bias,
                        Rows2<const uint8_t> seq_start, const T* state_in, bool apply_silu, Rows3<T> out,
                        T* state_out, int threads) {
  const int64_t D = dims.channels, L = dims.length, K = dims.width;
#pragma omp parallel for num_threads(threads) schedule(static)
  for (int64_t bc = 0; bc < dims.batch * D; ++bc) {
    const int64_t b = bc / D, c = bc % D;
    const conv_detail::RowInputs<T> in{x.row(b, c), state_in ? state_in + bc * (K - 1) : nullptr, K};
    const uint8_t* starts = seq_start ? seq_start.row(b) : nullptr;
    const T* w = weight + c * K;
    const T* bias_c = bias ? bias + c : nullptr;
    T* o = out.row(b, c);
    int64_t lo = conv_detail::no_start(K);
    for (int64_t t = 0; t < L; ++t) {
      if (starts && starts[t]) lo = t;
      const T pre = conv_detail::pre_activation(in, w, bias_c, t, lo);
      o[t] = apply_silu ? silu(pre) : pre;
    }
    if (state_out)
      for (int64_t j = 0; j < K - 1; ++j) state_out[bc * (K - 1) + j] = in.at(L - K + 1 + j, lo);
  }
}

// Channels run in parallel; each channel sums its dweight/dbias over batch and length
// in a fixed order (double), so the result does not depend on the thread count.
template <class T>
void conv1d_backward_ref(const ConvDims& dims, Rows3<const T> dout, Rows3<const T> x, const T* weight, const T* bias,
                         Rows2<const uint8_t> seq_start, const T* state_in, bool apply_silu, Rows3<T> dx, T* dweight,
                         T* dbias, int threads) {
  const int64_t D = dims.channels, L = dims.length, K = dims.width;
#pragma omp parallel num_threads(threads)
  {
    std::vector<T> dpre(static_cast<size_t>(L));
    std::vector<int64_t> latest_start(static_cast<size_t>(L));
    std::vector<double> dw(static_cast<size_t>(K));
#pragma omp for schedule(static)
    for (int64_t c = 0; c < D; ++c) {
      const T* w = weight + c * K;
      const T* bias_c = bias ? bias + c : nullptr;
      std::fill(dw.begin(), dw.end(), 0.0);
      double db = 0;
      for (int64_t b = 0; b < dims.batch; ++b) {
        const int64_t bc = b * D + c;
        const conv_detail::RowInputs<T> in{x.row(b, c), state_in ? state_in + bc * (K - 1) : nullptr, K};
        const uint8_t* starts = seq_start ? seq_start.row(b) : nullptr;
        const T* g = dout.row(b, c);
        int64_t lo = conv_detail::no_start(K);
        for (int64_t t = 0; t < L; ++t) {
          if (starts && starts[t]) lo = t;
          latest_start[t] = lo;
          T d = g[t];
          if (apply_silu) d *= silu_grad(conv_detail::pre_activation(in, w, bias_c, t, lo));
          dpre[t] = d;
          db += static_cast<double>(d);
          for (int64_t k = 0; k < K; ++k) dw[k] += static_cast<double>(d) * static_cast<double>(in.at(t - K + 1 + k, lo));
        }
        T* dxr = dx.row(b, c);
        for (int64_t p = 0; p < L; ++p) {
          double acc = 0;
          for (int64_t k = 0; k < K; ++k) {
            const int64_t t = p + K - 1 - k;  // the output that reads input p through tap k
            if (t < L && p >= latest_start[t]) acc += static_cast<double>(w[k]) * static_cast<double>(dpre[t]);
          }
          dxr[p] = static_cast<T>(acc);
        }
      }
      for (int64_t k = 0; k < K; ++k) dweight[c * K + k] += static_cast<T>(dw[k]);
      if (dbias) dbias[c] += static_cast<T>(db);
    }
  }
}

}  // namespace gm::cpu
