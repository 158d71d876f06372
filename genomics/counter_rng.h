// Counter-based randomness for the datasets: every random number is a pure function
// of (seed, stream, counter), so a sample depends only on its index and a cursor is
// just a counter; the same seed gives the same batches on any machine (no
// platform-dependent distributions are used).
// FeistelPermutation: a seeded bijection of [0, n) computed in O(1) memory, used to
// shuffle window order per epoch without materializing a permutation.
#pragma once

#include <cstdint>

namespace gm {

// splitmix64 finalizer: a strong 64-bit mixing function.
inline uint64_t mix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

inline uint64_t counter_random(uint64_t seed, uint64_t stream, uint64_t counter) {
  return mix64(mix64(mix64(seed) ^ (stream * 0xd1b54a32d192ed03ull)) ^ counter);
}

// Maps a uniform 64-bit value to [0, n) (multiply-shift; bias below n / 2^64).
inline uint64_t uniform_below(uint64_t random, uint64_t n) {
  return static_cast<uint64_t>((static_cast<unsigned __int128>(random) * n) >> 64);
}

class FeistelPermutation {
 public:
  FeistelPermutation(uint64_t n, uint64_t key);
  uint64_t size() const { return n_; }
  // The image of i (i < n); distinct i give distinct results in [0, n).
  uint64_t operator()(uint64_t i) const;

 private:
  uint64_t encrypt(uint64_t x) const;
  uint64_t n_;
  uint64_t key_;
  int half_bits_ = 1;
  uint64_t half_mask_ = 1;
};

}  // namespace gm
