// Fast f32 causal depthwise conv1d (see conv1d_fast.h). Time runs in blocks of kBlock
// = 16 positions on every SIMD level (16 / lanes vectors per block), so which blocks
// take the vector path, and the lane each dweight / dbias term is summed in (t mod 16),
// are the same on every level; with no FMA contraction, all levels give the same bits.
#include "mamba/cpu/conv1d_fast.h"

#include <algorithm>
#include <vector>

#include "mamba/cpu/vec_math.h"

#if defined(__x86_64__) && defined(__GNUC__)
#define GM_CONV_X86 1
#endif

// Vectors never cross a non-inlined call here (see vec_math.h).
#pragma GCC diagnostic ignored "-Wpsabi"
// No FMA contraction: the double sums must round exactly as the reference's.
#pragma GCC optimize("fp-contract=off")

namespace gm::cpu {
namespace {

constexpr int64_t kBlock = 16;

// Prefix counts of document starts per batch row: "any start in [lo, hi]?" in O(1).
class StartIndex {
 public:
  StartIndex(Rows2<const uint8_t> starts, int64_t batch, int64_t length, int threads) : length_(length) {
    if (!starts) return;
    prefix_.resize(static_cast<size_t>(batch * (length + 1)));
#pragma omp parallel for num_threads(threads) schedule(static)
    for (int64_t b = 0; b < batch; ++b) {
      int32_t* p = prefix_.data() + b * (length + 1);
      const uint8_t* s = starts.row(b);
      p[0] = 0;
      for (int64_t t = 0; t < length; ++t) p[t + 1] = p[t] + (s[t] ? 1 : 0);
    }
  }
  bool any(int64_t b, int64_t lo, int64_t hi) const {
    if (prefix_.empty()) return false;
    lo = std::max<int64_t>(lo, 0);
    hi = std::min(hi, length_ - 1);
    if (lo > hi) return false;
    const int32_t* p = prefix_.data() + b * (length_ + 1);
    return p[hi + 1] - p[lo] > 0;
  }

 private:
  int64_t length_;
  std::vector<int32_t> prefix_;
};

// The reference's `lo` for output t as far as its window [t-K+1, t] can tell: the latest
// start in [t-K+2, t] (one at t-K+1 or earlier hides nothing), else "no start".
int64_t window_start(const uint8_t* starts, int64_t t, int64_t K) {
  if (starts)
    for (int64_t s = t; s >= std::max<int64_t>(0, t - K + 2); --s)
      if (starts[s]) return s;
  return conv_detail::no_start(K);
}

// One (b, c) row and what its channel needs.
struct ConvRow {
  conv_detail::RowInputs<float> in;
  const float* w;       // [K]
  const float* bias_c;  // may be null
  const uint8_t* starts;
  int64_t b;
};

// Pre-activations of positions [t0, t0 + 16) into pre (16 floats): the vector path when
// the block's windows are whole and unmasked, else the reference's scalar code.
template <class V>
GM_VEC_INLINE void pre_block(const ConvRow& r, const StartIndex& idx, int64_t L, int64_t t0, float* pre) {
  constexpr int W = vec::lanes<V>, H = W / 2;
  const int64_t K = r.in.width;
  if (t0 + kBlock <= L && t0 >= K - 1 && !idx.any(r.b, t0 - K + 2, t0 + kBlock - 1)) {
    using D = vec::Wide<V>;
    const D bias = vec::splat_wide<D>(r.bias_c ? static_cast<double>(*r.bias_c) : 0.0);
    for (int64_t v = 0; v < kBlock; v += W) {
      D lo = bias, hi = bias;
      for (int64_t k = 0; k < K; ++k) {
        const D wk = vec::splat_wide<D>(static_cast<double>(r.w[k]));
        const float* p = r.in.x + t0 + v - K + 1 + k;
        lo = lo + wk * vec::load_wide<V>(p);
        hi = hi + wk * vec::load_wide<V>(p + H);
      }
      vec::store(pre + v, vec::narrow<V>(lo, hi));
    }
    return;
  }
  const int64_t n = std::min(kBlock, L - t0);
  for (int64_t i = 0; i < n; ++i)
    pre[i] = conv_detail::pre_activation(r.in, r.w, r.bias_c, t0 + i, window_start(r.starts, t0 + i, K));
  std::fill(pre + n, pre + kBlock, 0.f);
}

template <class V>
GM_VEC_INLINE void forward_row(const ConvRow& r, const StartIndex& idx, int64_t L, bool apply_silu, float* out) {
  constexpr int W = vec::lanes<V>;
  float pre[kBlock];
  for (int64_t t0 = 0; t0 < L; t0 += kBlock) {
    pre_block<V>(r, idx, L, t0, pre);
    for (int64_t v = 0; v < kBlock && t0 + v < L; v += W) {
      const V p = vec::load<V>(pre + v);
      vec::store_n(out + t0 + v, apply_silu ? vec::silu(p) : p, L - t0 - v);
    }
  }
}

// Double sums of one channel's dweight / dbias terms: lane (t mod 16) for vector blocks,
// one scalar per tap for the others.
struct ChannelSums {
  double vec_dw[8][kBlock];  // taps beyond 8 take the scalar path (see backward_row)
  double vec_db[kBlock];
  std::vector<double> dw;  // [K]
  double db = 0;
  explicit ChannelSums(int64_t K) : vec_dw{}, vec_db{}, dw(static_cast<size_t>(K), 0.0) {}
  double total_dw(int64_t k) const {
    double s = dw[k];
    if (k < 8)
      for (double v : vec_dw[k]) s += v;
    return s;
  }
  double total_db() const {
    double s = db;
    for (double v : vec_db) s += v;
    return s;
  }
};

// One (b, c) row of the backward: dx (overwritten) and the channel's sums (added).
template <class V>
GM_VEC_INLINE void backward_row(const ConvRow& r, const StartIndex& idx, int64_t L, bool apply_silu, const float* g,
                                float* dpre, float* dx, ChannelSums& sums) {
  constexpr int W = vec::lanes<V>, H = W / 2;
  using D = vec::Wide<V>;
  const int64_t K = r.in.width;
  float pre[kBlock];
  for (int64_t t0 = 0; t0 < L; t0 += kBlock) {
    pre_block<V>(r, idx, L, t0, pre);
    const bool whole = t0 + kBlock <= L && t0 >= K - 1 && !idx.any(r.b, t0 - K + 2, t0 + kBlock - 1) && K <= 8;
    for (int64_t v = 0; v < kBlock && t0 + v < L; v += W) {
      const V gv = vec::load_n<V>(g + t0 + v, L - t0 - v);
      const V d = apply_silu ? gv * vec::silu_grad(vec::load<V>(pre + v)) : gv;
      vec::store(dpre + t0 + v, d);
      if (!whole) continue;
      D d_lo, d_hi;
      vec::widen(d, d_lo, d_hi);
      double* db = sums.vec_db + v;
      vec::store_double(db, vec::load_double<D>(db) + d_lo);
      vec::store_double(db + H, vec::load_double<D>(db + H) + d_hi);
      for (int64_t k = 0; k < K; ++k) {
        const float* p = r.in.x + t0 + v - K + 1 + k;
        double* acc = sums.vec_dw[k] + v;
        vec::store_double(acc, vec::load_double<D>(acc) + d_lo * vec::load_wide<V>(p));
        vec::store_double(acc + H, vec::load_double<D>(acc + H) + d_hi * vec::load_wide<V>(p + H));
      }
    }
    if (whole) continue;
    for (int64_t t = t0; t < std::min(L, t0 + kBlock); ++t) {
      const int64_t lo = window_start(r.starts, t, K);
      const double d = static_cast<double>(dpre[t]);
      sums.db += d;
      for (int64_t k = 0; k < K; ++k) sums.dw[k] += d * static_cast<double>(r.in.at(t - K + 1 + k, lo));
    }
  }

  // dx[p] = sum_k w[k] dpre[p + K - 1 - k] over the outputs t = p + K - 1 - k that see p.
  for (int64_t p0 = 0; p0 < L; p0 += kBlock) {
    if (p0 + kBlock - 1 + K - 1 < L && !idx.any(r.b, p0 + 1, p0 + kBlock - 1 + K - 1)) {
      for (int64_t v = 0; v < kBlock; v += W) {
        D lo = vec::splat_wide<D>(0.0), hi = lo;
        for (int64_t k = 0; k < K; ++k) {
          const D wk = vec::splat_wide<D>(static_cast<double>(r.w[k]));
          const float* q = dpre + p0 + v + K - 1 - k;
          lo = lo + wk * vec::load_wide<V>(q);
          hi = hi + wk * vec::load_wide<V>(q + H);
        }
        vec::store(dx + p0 + v, vec::narrow<V>(lo, hi));
      }
      continue;
    }
    for (int64_t p = p0; p < std::min(L, p0 + kBlock); ++p) {
      double acc = 0;
      for (int64_t k = 0; k < K; ++k) {
        const int64_t t = p + K - 1 - k;
        if (t < L && p >= window_start(r.starts, t, K))
          acc += static_cast<double>(r.w[k]) * static_cast<double>(dpre[t]);
      }
      dx[p] = static_cast<float>(acc);
    }
  }
}

struct Kernels {
  void (*forward_row)(const ConvRow&, const StartIndex&, int64_t, bool, float*);
  void (*backward_row)(const ConvRow&, const StartIndex&, int64_t, bool, const float*, float*, float*, ChannelSums&);
};

#define GM_CONV_KERNELS(suffix, V)                                                                             \
  void forward_row_##suffix(const ConvRow& r, const StartIndex& idx, int64_t L, bool silu, float* out) {      \
    forward_row<V>(r, idx, L, silu, out);                                                                      \
  }                                                                                                            \
  void backward_row_##suffix(const ConvRow& r, const StartIndex& idx, int64_t L, bool silu, const float* g,   \
                             float* dpre, float* dx, ChannelSums& sums) {                                      \
    backward_row<V>(r, idx, L, silu, g, dpre, dx, sums);                                                       \
  }

GM_CONV_KERNELS(baseline, vec::V4)
#ifdef GM_CONV_X86
#pragma GCC push_options
#pragma GCC target("avx512f")
GM_CONV_KERNELS(avx512, vec::V16)
#pragma GCC pop_options
#pragma GCC push_options
#pragma GCC target("avx2,fma")
GM_CONV_KERNELS(avx2, vec::V8)
#pragma GCC pop_options
#endif

Kernels kernels_for(SimdLevel level) {
  require_simd_level("conv1d", level);
#ifdef GM_CONV_X86
  if (level == SimdLevel::kAvx512) return {forward_row_avx512, backward_row_avx512};
  if (level == SimdLevel::kAvx2) return {forward_row_avx2, backward_row_avx2};
#endif
  return {forward_row_baseline, backward_row_baseline};
}

ConvRow row_of(const ConvDims& d, Rows3<const float> x, const float* weight, const float* bias,
               Rows2<const uint8_t> seq_start, const float* state_in, int64_t b, int64_t c) {
  const int64_t K = d.width, bc = b * d.channels + c;
  return {{x.row(b, c), state_in ? state_in + bc * (K - 1) : nullptr, K},
          weight + c * K,
          bias ? bias + c : nullptr,
          seq_start ? seq_start.row(b) : nullptr,
          b};
}

}  // namespace

void conv1d_forward_fast(const ConvDims& dims, Rows3<const float> x, const float* weight, const float* bias,
                         Rows2<const uint8_t> seq_start, const float* state_in, bool apply_silu, Rows3<float> out,
                         float* state_out, int threads, SimdLevel level) {
  const Kernels kern = kernels_for(level);
  const int64_t D = dims.channels, L = dims.length, K = dims.width;
  threads = std::max(1, threads);
  const StartIndex idx(seq_start, dims.batch, L, threads);
#pragma omp parallel for num_threads(threads) schedule(static)
  for (int64_t bc = 0; bc < dims.batch * D; ++bc) {
    const ConvRow r = row_of(dims, x, weight, bias, seq_start, state_in, bc / D, bc % D);
    kern.forward_row(r, idx, L, apply_silu, out.row(bc / D, bc % D));
    if (state_out) {
      const int64_t lo = window_start(r.starts, L - 1, K);
      for (int64_t j = 0; j < K - 1; ++j) state_out[bc * (K - 1) + j] = r.in.at(L - K + 1 + j, lo);
    }
  }
}

void conv1d_backward_fast(const ConvDims& dims, Rows3<const float> dout, Rows3<const float> x, const float* weight,
                          const float* bias, Rows2<const uint8_t> seq_start, const float* state_in, bool apply_silu,
                          Rows3<float> dx, float* dweight, float* dbias, int threads, SimdLevel level) {
  const Kernels kern = kernels_for(level);
  const int64_t D = dims.channels, L = dims.length, K = dims.width;
  threads = std::max(1, threads);
  const StartIndex idx(seq_start, dims.batch, L, threads);
#pragma omp parallel num_threads(threads)
  {
    // dpre of one row; room for the whole vectors of the last block.
    std::vector<float> dpre(static_cast<size_t>((L + kBlock - 1) / kBlock * kBlock + kBlock), 0.f);
#pragma omp for schedule(static)
    for (int64_t c = 0; c < D; ++c) {
      ChannelSums sums(K);
      for (int64_t b = 0; b < dims.batch; ++b)
        kern.backward_row(row_of(dims, x, weight, bias, seq_start, state_in, b, c), idx, L, apply_silu,
                          dout.row(b, c), dpre.data(), dx.row(b, c), sums);
      for (int64_t k = 0; k < K; ++k) dweight[c * K + k] += static_cast<float>(sums.total_dw(k));
      if (dbias) dbias[c] += static_cast<float>(sums.total_db());
    }
  }
}

}  // namespace gm::cpu
