// Inner kernels of the fast f32 selective scan (driven by selective_scan_fast.cpp): one
// channel, one chunk of at most kScanChunk steps, one group of 16 state lanes, written
// once for any vector type V of vec_math.h (G = 16 / lanes vectors per group).
//
// Layout inside a chunk (tl = step within the chunk, ld = N rounded up to 16):
//   Bt, Ct, hs, as: [tl][ld] (B and C transposed so the lanes of one step are
//   contiguous; padding lanes hold B = C = A = 0, so their state stays 0);
//   dt, dtu, dy, y, sB, sQ: [tl].
// Each kernel takes pointers already offset to its lane group. Sums over the lanes of a
// group use vec::hsum16 and groups are added in ascending order, so every result is a
// fixed function of the inputs: the same for any thread count and any vector width.
// The math is that of selective_scan_ref.h, in float (see selective_scan_fast.h).
#pragma once

#include <cstdint>

#include "mamba/cpu/vec_math.h"

// Vectors never cross a non-inlined call here (see vec_math.h).
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wpsabi"

namespace gm::cpu::scan_fast {

constexpr int64_t kGroupLanes = 16;

// Per-step scalars of one channel over one chunk.
struct ChunkSteps {
  const float* dt;        // step size (softplus'ed delta + bias)
  const float* dtu;       // dt * u
  const uint8_t* starts;  // document starts at these steps, or null
  int64_t len;
  bool reset(int64_t tl) const { return starts && starts[tl]; }
};

// h := h_t step by step through the chunk (h: 16 floats, in/out).
// kY: y[tl] (=, or += when !first_group) the sum over the group's lanes of C_t h_t.
// kStore: hs[tl] = h_t and as[tl] = exp(dt_t A) (0 at a reset), for the backward.
// kNormalExp: every dt_t A lies in [kExpNormalLo, kExpNormalHi], so vec::exp_normal
// gives exp's bits (the caller checked; forward 6.4 -> 4.4 ns per step, AVX-512).
template <class V, bool kY, bool kStore, bool kNormalExp>
GM_VEC_INLINE void forward_group(const ChunkSteps& s, const float* A, const float* Bt, const float* Ct, int64_t ld,
                                 float* h_io, float* y, bool first_group, float* hs, float* as, float* prods) {
  constexpr int L = vec::lanes<V>, G = kGroupLanes / L;
  V h[G], a_row[G];
  for (int g = 0; g < G; ++g) {
    h[g] = vec::load<V>(h_io + L * g);
    a_row[g] = vec::load<V>(A + L * g);
  }
  for (int64_t tl = 0; tl < s.len; ++tl) {
    const V dt = vec::splat<V>(s.dt[tl]), dtu = vec::splat<V>(s.dtu[tl]);
    const float* b_t = Bt + tl * ld;
    V decay[G];
    if (s.reset(tl)) {
      for (int g = 0; g < G; ++g) {
        decay[g] = V{};
        h[g] = dtu * vec::load<V>(b_t + L * g);
      }
    } else {
      for (int g = 0; g < G; ++g) {
        decay[g] = kNormalExp ? vec::exp_normal(dt * a_row[g]) : vec::exp(dt * a_row[g]);
        h[g] = decay[g] * h[g] + dtu * vec::load<V>(b_t + L * g);
      }
    }
    if constexpr (kStore) {
      for (int g = 0; g < G; ++g) {
        vec::store(hs + tl * ld + L * g, h[g]);
        vec::store(as + tl * ld + L * g, decay[g]);
      }
    }
    if constexpr (kY) {  // C_t h_t stored, summed after the loop: forward 9.8 -> 8.3 ns per step
      const float* c_t = Ct + tl * ld;
      for (int g = 0; g < G; ++g) vec::store(prods + tl * kGroupLanes + L * g, vec::load<V>(c_t + L * g) * h[g]);
    }
  }
  for (int g = 0; g < G; ++g) vec::store(h_io + L * g, h[g]);
  if constexpr (kY) {
    for (int64_t tl = 0; tl < s.len; ++tl) {
      V prod[G];
      for (int g = 0; g < G; ++g) prod[g] = vec::load<V>(prods + tl * kGroupLanes + L * g);
      const float part = vec::hsum16(prod);
      y[tl] = first_group ? part : y[tl] + part;
    }
  }
}

// Where the reverse pass of one group writes.
struct ReverseOut {
  float* dB_part;  // [tl][ld] channel sums of dh_t * dt_t u_t (null: not wanted)
  float* dC_part;  // [tl][ld] channel sums of dy_t * h_t (null: not wanted)
  bool first_channel;  // = instead of += into the parts
  float* sB;  // [tl] sum over lanes of dh_t B_t (=, or += when !first_group)
  float* sQ;  // [tl] sum over lanes of A dh_t exp(dt_t A) h_{t-1}
  bool first_group;
  double* dA_acc;  // 16 accumulators of dh_t exp(dt_t A) h_{t-1} dt_t
};

// Adds a float partial sum of dA terms into the double accumulators and clears it.
template <class V>
GM_VEC_INLINE void flush_dA(V* part, double* acc) {
  constexpr int L = vec::lanes<V>, G = kGroupLanes / L;
  for (int g = 0; g < G; ++g) {
    for (int i = 0; i < L; ++i) acc[L * g + i] += static_cast<double>(part[g][i]);
    part[g] = V{};
  }
}

// Steps backwards through the chunk. dh_io: on entry dloss/dh after the chunk, on exit
// dloss/dh before it (the gradient of h_before). hs/as from forward_group<.., kStore>.
template <class V>
GM_VEC_INLINE void reverse_group(const ChunkSteps& s, const float* dy, const float* A, const float* Bt,
                                 const float* Ct, int64_t ld, const float* hs, const float* as,
                                 const float* h_before, float* dh_io, const ReverseOut& o) {
  constexpr int L = vec::lanes<V>, G = kGroupLanes / L;
  // dA terms are summed in float over at most 16 steps, then added in double.
  constexpr int64_t kFlushEvery = 16;
  V dh[G], a_row[G], dA_part[G];
  for (int g = 0; g < G; ++g) {
    dh[g] = vec::load<V>(dh_io + L * g);
    a_row[g] = vec::load<V>(A + L * g);
    dA_part[g] = V{};
  }
  int64_t pending = 0;
  for (int64_t tl = s.len - 1; tl >= 0; --tl) {
    const V dyv = vec::splat<V>(dy[tl]), dtu = vec::splat<V>(s.dtu[tl]), dt = vec::splat<V>(s.dt[tl]);
    const float* b_t = Bt + tl * ld;
    const float* c_t = Ct + tl * ld;
    const float* h_t = hs + tl * ld;
    const float* h_prev = tl > 0 ? hs + (tl - 1) * ld : h_before;
    const float* a_t = as + tl * ld;
    const bool reset = s.reset(tl);
    V termB[G], termQ[G];
    for (int g = 0; g < G; ++g) {
      dh[g] = dh[g] + dyv * vec::load<V>(c_t + L * g);  // now the full gradient of h_t
      if (o.dC_part) {
        float* p = o.dC_part + tl * ld + L * g;
        const V term = dyv * vec::load<V>(h_t + L * g);
        vec::store(p, o.first_channel ? term : vec::load<V>(p) + term);
      }
      if (o.dB_part) {
        float* p = o.dB_part + tl * ld + L * g;
        const V term = dh[g] * dtu;
        vec::store(p, o.first_channel ? term : vec::load<V>(p) + term);
      }
      termB[g] = dh[g] * vec::load<V>(b_t + L * g);
      if (reset) {
        dh[g] = V{};
        termQ[g] = V{};
      } else {
        dh[g] = dh[g] * vec::load<V>(a_t + L * g);  // now the gradient of h_{t-1}
        const V q = dh[g] * vec::load<V>(h_prev + L * g);
        termQ[g] = q * a_row[g];
        dA_part[g] = dA_part[g] + q * dt;
      }
    }
    const float partB = vec::hsum16(termB), partQ = vec::hsum16(termQ);
    o.sB[tl] = o.first_group ? partB : o.sB[tl] + partB;
    o.sQ[tl] = o.first_group ? partQ : o.sQ[tl] + partQ;
    if (++pending == kFlushEvery) {
      flush_dA(dA_part, o.dA_acc);
      pending = 0;
    }
  }
  flush_dA(dA_part, o.dA_acc);
  for (int g = 0; g < G; ++g) vec::store(dh_io + L * g, dh[g]);
}

}  // namespace gm::cpu::scan_fast

#pragma GCC diagnostic pop
