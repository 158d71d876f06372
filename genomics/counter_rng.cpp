// Feistel-network permutation with cycle walking: the network permutes [0, 4^h) with
// 4^h the smallest power of four >= n; values that land outside [0, n) are encrypted
// again until they fall inside, which keeps it a bijection of [0, n).
#include "genomics/counter_rng.h"

namespace gm {

FeistelPermutation::FeistelPermutation(uint64_t n, uint64_t key) : n_(n), key_(key) {
  while (half_bits_ < 32 && (uint64_t{1} << (2 * half_bits_)) < n) ++half_bits_;
  half_mask_ = (uint64_t{1} << half_bits_) - 1;
}

uint64_t FeistelPermutation::encrypt(uint64_t x) const {
  uint64_t left = x >> half_bits_;
  uint64_t right = x & half_mask_;
  for (uint64_t round = 0; round < 4; ++round) {
    const uint64_t f = counter_random(key_, round, right) & half_mask_;
    const uint64_t next_right = left ^ f;
    left = right;
    right = next_right;
  }
  return (left << half_bits_) | right;
}

uint64_t FeistelPermutation::operator()(uint64_t i) const {
  if (n_ <= 1) return 0;
  uint64_t x = encrypt(i);
  while (x >= n_) x = encrypt(x);
  return x;
}

}  // namespace gm
