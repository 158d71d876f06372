// Selective scan (S6), forward and backward, as templates over the scalar type T
// (float in gm::cpu::selective_scan_*, double in the finite-difference tests).
//
// Layout (channel-major, Rows3 = contiguous rows with free batch/channel strides):
//   u, delta, z, out, dout, du, ddelta, dz: [B, D, L];  B, C, dB, dC: [B, N, L];
//   A, dA: [D, N]; Dskip, delta_bias and their grads: [D]; h0, h_last, dh0: [B, D, N]
//   dense; seq_start [B, L] (u8). Null / absent = feature off.
//
// For each (b, c), with dt_t = delta[b,c,t] + delta_bias[c] (softplus'ed when asked):
//   h_t[n] = exp(dt_t A[c,n]) h_{t-1}[n] + (dt_t u_t) B[b,n,t]   (h_{t-1} := 0 at a document start)
//   y_t    = sum_n C[b,n,t] h_t[n] + Dskip[c] u_t;   out_t = y_t * silu(z_t)  (or y_t)
// h_{-1} = h0 (zeros when null); h_last = h_{L-1}.
// The recurrence (h, and dh in the backward) runs in T; sums over n, over channels and
// over batch x length are taken in double.
//
// Backward: every gradient is OVERWRITTEN (dA, dDskip, ddelta_bias summed over batch
// and length; dB, dC summed over channels). It recomputes the states chunk by chunk:
// per batch row it keeps the state before each chunk of kScanChunk steps
// (D * ceil(L / kScanChunk) * N values) and the states of one chunk (D * kScanChunk * N),
// never B * D * L * N. The recomputed states are bitwise those of the forward pass.
// Channel sums (dB, dC) are added over channels in ascending order and per-channel
// parameter sums in (batch, reverse time) order, so nothing depends on the thread count.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "mamba/cpu/scalar_math.h"
#include "mamba/cpu/strided.h"

namespace gm::cpu {

struct ScanDims {
  int64_t batch = 0;
  int64_t channels = 0;  // D
  int64_t length = 0;    // L
  int64_t state = 0;     // N
};

template <class T>
struct ScanRefInputs {
  Rows3<const T> u, delta;
  const T* A = nullptr;
  Rows3<const T> B, C;
  const T* Dskip = nullptr;
  Rows3<const T> z;
  const T* delta_bias = nullptr;
  Rows2<const uint8_t> seq_start;
  const T* h0 = nullptr;
  bool delta_softplus = true;
};

template <class T>
struct ScanRefGrads {
  Rows3<T> du, ddelta;
  T* dA = nullptr;
  Rows3<T> dB, dC;
  T* dDskip = nullptr;
  Rows3<T> dz;
  T* ddelta_bias = nullptr;
  T* dh0 = nullptr;
};

constexpr int64_t kScanChunk = 256;

namespace scan_detail {

// Everything one (b, c) row of the scan reads.
template <class T>
struct Row {
  const T* u;
  const T* delta;
  const T* z;             // may be null
  const uint8_t* starts;  // may be null
  const T* A;             // [N] of channel c
  const T* B;             // B[b, 0, 0]; element (n, t) at n * row_stride + t
  const T* C;
  int64_t b_row_stride, c_row_stride;
  int64_t N;
  T Dskip, bias;
  bool softplus;

  Row(const ScanDims& dims, const ScanRefInputs<T>& in, int64_t b, int64_t c)
      : u(in.u.row(b, c)),
        delta(in.delta.row(b, c)),
        z(in.z ? in.z.row(b, c) : nullptr),
        starts(in.seq_start ? in.seq_start.row(b) : nullptr),
        A(in.A + c * dims.state),
        B(in.B.row(b, 0)),
        C(in.C.row(b, 0)),
        b_row_stride(in.B.row_stride),
        c_row_stride(in.C.row_stride),
        N(dims.state),
        Dskip(in.Dskip ? in.Dskip[c] : T(0)),
        bias(in.delta_bias ? in.delta_bias[c] : T(0)),
        softplus(in.delta_softplus) {}

  T dt_raw(int64_t t) const { return delta[t] + bias; }
  T dt(int64_t t) const { return softplus ? gm::cpu::softplus(dt_raw(t)) : dt_raw(t); }
  bool start(int64_t t) const { return starts && starts[t]; }
  T b_at(int64_t n, int64_t t) const { return B[n * b_row_stride + t]; }
  T c_at(int64_t n, int64_t t) const { return C[n * c_row_stride + t]; }

  // h := h_t from h = h_{t-1}.
  void step(int64_t t, T* h) const {
    const T d = dt(t);
    const T du = d * u[t];
    const bool reset = start(t);
    for (int64_t n = 0; n < N; ++n) {
      const T a = std::exp(d * A[n]);
      h[n] = (reset ? T(0) : a * h[n]) + du * b_at(n, t);
    }
  }

  // y_t (before the gate) from h = h_t.
  T y(int64_t t, const T* h) const {
    double acc = 0;
    for (int64_t n = 0; n < N; ++n) acc += static_cast<double>(c_at(n, t)) * static_cast<double>(h[n]);
    acc += static_cast<double>(Dskip) * static_cast<double>(u[t]);
    return static_cast<T>(acc);
  }
};

// grad[b, n, t0 + tl] = sum over channels c (ascending) of terms[c][n][tl], in double.
template <class T>
void sum_over_channels(const std::vector<T>& terms, Rows3<T> grad, int64_t b, int64_t t0, int64_t len, int64_t D,
                       int64_t N, int threads) {
  if (!grad) return;
#pragma omp parallel for num_threads(threads) schedule(static)
  for (int64_t n = 0; n < N; ++n) {
    std::vector<double> acc(static_cast<size_t>(len), 0.0);
    for (int64_t c = 0; c < D; ++c) {
      const T* term = terms.data() + (c * N + n) * kScanChunk;
      for (int64_t tl = 0; tl < len; ++tl) acc[tl] += static_cast<double>(term[tl]);
    }
    T* out = grad.row(b, n) + t0;
    for (int64_t tl = 0; tl < len; ++tl) out[tl] = static_cast<T>(acc[tl]);
  }
}

}  // namespace scan_detail

template <class T>
void selective_scan_forward_ref(const ScanDims& dims, const ScanRefInputs<T>& in, Rows3<T> out, T* h_last,
                                int threads) {
  const int64_t D = dims.channels, N = dims.state, L = dims.length;
#pragma omp parallel num_threads(threads)
  {
    std::vector<T> h(static_cast<size_t>(N));
#pragma omp for schedule(static)
    for (int64_t bc = 0; bc < dims.batch * D; ++bc) {
      const scan_detail::Row<T> row(dims, in, bc / D, bc % D);
      if (in.h0)
        std::copy_n(in.h0 + bc * N, N, h.begin());
      else
        std::fill(h.begin(), h.end(), T(0));
      T* o = out.row(bc / D, bc % D);
      for (int64_t t = 0; t < L; ++t) {
        row.step(t, h.data());
        const T y = row.y(t, h.data());
        o[t] = row.z ? y * silu(row.z[t]) : y;
      }
      if (h_last) std::copy_n(h.begin(), N, h_last + bc * N);
    }
  }
}

template <class T>
void selective_scan_backward_ref(const ScanDims& dims, const ScanRefInputs<T>& in, Rows3<const T> dout,
                                 const ScanRefGrads<T>& grads, int threads) {
  const int64_t D = dims.channels, N = dims.state, L = dims.length;
  const int64_t chunks = (L + kScanChunk - 1) / kScanChunk;
  std::vector<T> checkpoints(static_cast<size_t>(D * chunks * N));  // state before each chunk
  std::vector<T> states(static_cast<size_t>(D * kScanChunk * N));   // h_t inside the current chunk
  std::vector<T> dh_carry(static_cast<size_t>(D * N));               // dloss/dh after the current chunk
  // Per-channel terms of dB / dC for the current chunk, [D][N][kScanChunk], summed over channels afterwards.
  std::vector<T> dB_terms(grads.dB ? static_cast<size_t>(D * N * kScanChunk) : 0);
  std::vector<T> dC_terms(grads.dC ? static_cast<size_t>(D * N * kScanChunk) : 0);
  std::vector<double> dA_acc(static_cast<size_t>(D * N), 0.0), dD_acc(static_cast<size_t>(D), 0.0),
      dbias_acc(static_cast<size_t>(D), 0.0);

  for (int64_t b = 0; b < dims.batch; ++b) {
#pragma omp parallel for num_threads(threads) schedule(static)
    for (int64_t c = 0; c < D; ++c) {
      const scan_detail::Row<T> row(dims, in, b, c);
      std::vector<T> h(static_cast<size_t>(N), T(0));
      if (in.h0) std::copy_n(in.h0 + (b * D + c) * N, N, h.begin());
      for (int64_t k = 0; k < chunks; ++k) {
        std::copy_n(h.begin(), N, checkpoints.begin() + (c * chunks + k) * N);
        for (int64_t t = k * kScanChunk; t < std::min(L, (k + 1) * kScanChunk); ++t) row.step(t, h.data());
      }
    }
    std::fill(dh_carry.begin(), dh_carry.end(), T(0));

    for (int64_t k = chunks - 1; k >= 0; --k) {
      const int64_t t0 = k * kScanChunk, len = std::min(L, t0 + kScanChunk) - t0;
#pragma omp parallel for num_threads(threads) schedule(static)
      for (int64_t c = 0; c < D; ++c) {
        const scan_detail::Row<T> row(dims, in, b, c);
        const T* h_before = checkpoints.data() + (c * chunks + k) * N;
        T* hs = states.data() + c * kScanChunk * N;
        std::copy_n(h_before, N, hs);
        row.step(t0, hs);
        for (int64_t tl = 1; tl < len; ++tl) {
          std::copy_n(hs + (tl - 1) * N, N, hs + tl * N);
          row.step(t0 + tl, hs + tl * N);
        }
        const T* g = dout.row(b, c);
        T* dh = dh_carry.data() + c * N;
        for (int64_t tl = len - 1; tl >= 0; --tl) {
          const int64_t t = t0 + tl;
          const T* h_t = hs + tl * N;
          const T* h_prev = tl > 0 ? hs + (tl - 1) * N : h_before;
          const T raw = row.dt_raw(t);
          const T dt = row.dt(t);
          const T dsoftplus = row.softplus ? softplus_grad(raw) : T(1);
          const T ut = row.u[t];
          const T dtu = dt * ut;
          T dy = g[t];
          if (row.z) {
            const T y = row.y(t, h_t);
            dy = g[t] * silu(row.z[t]);
            if (grads.dz) grads.dz.row(b, c)[t] = g[t] * y * silu_grad(row.z[t]);
          }
          dD_acc[c] += static_cast<double>(dy) * static_cast<double>(ut);
          double du = static_cast<double>(dy) * static_cast<double>(row.Dskip);
          double ddt = 0;
          const bool reset = row.start(t);
          for (int64_t n = 0; n < N; ++n) {
            const T Bn = row.b_at(n, t);
            dh[n] += dy * row.c_at(n, t);  // dh[n] is now the full gradient of h_t[n]
            if (grads.dC) dC_terms[(c * N + n) * kScanChunk + tl] = dy * h_t[n];
            if (grads.dB) dB_terms[(c * N + n) * kScanChunk + tl] = dh[n] * dtu;
            du += static_cast<double>(dh[n]) * static_cast<double>(dt) * static_cast<double>(Bn);
            ddt += static_cast<double>(dh[n]) * static_cast<double>(Bn) * static_cast<double>(ut);
            if (reset) {
              dh[n] = T(0);
            } else {
              const T a = std::exp(dt * row.A[n]);
              const double q = static_cast<double>(dh[n]) * static_cast<double>(a) * static_cast<double>(h_prev[n]);
              ddt += q * static_cast<double>(row.A[n]);
              dA_acc[c * N + n] += q * static_cast<double>(dt);
              dh[n] = dh[n] * a;  // now the gradient of h_{t-1}[n]
            }
          }
          const double ddelta = ddt * static_cast<double>(dsoftplus);
          dbias_acc[c] += ddelta;
          if (grads.du) grads.du.row(b, c)[t] = static_cast<T>(du);
          if (grads.ddelta) grads.ddelta.row(b, c)[t] = static_cast<T>(ddelta);
        }
      }
      scan_detail::sum_over_channels(dB_terms, grads.dB, b, t0, len, D, N, threads);
      scan_detail::sum_over_channels(dC_terms, grads.dC, b, t0, len, D, N, threads);
    }
    if (grads.dh0) std::copy(dh_carry.begin(), dh_carry.end(), grads.dh0 + b * D * N);
  }

  for (int64_t i = 0; i < D * N; ++i)
    if (grads.dA) grads.dA[i] = static_cast<T>(dA_acc[i]);
  for (int64_t c = 0; c < D; ++c) {
    if (grads.dDskip) grads.dDskip[c] = static_cast<T>(dD_acc[c]);
    if (grads.ddelta_bias) grads.ddelta_bias[c] = static_cast<T>(dbias_acc[c]);
  }
}

}  // namespace gm::cpu
