// Rng: a small seeded random number generator (splitmix64) whose stream is the
// same on every machine and compiler, unlike std::mt19937 + std:: distributions,
// whose outputs the standard leaves implementation-defined.
//
// Conventions
// - The whole state is one uint64_t (state() / Rng::from_state()), so it can be
//   stored in a training-state file and restored exactly.
// - uniform() draws doubles in [0, 1) with 53 random bits (bit-identical everywhere);
//   normal() uses the Box-Muller transform and discards the second variate, so the
//   number of 64-bit draws per call is fixed (2) and the stream position is
//   predictable. Its values go through libm's log/cos, so they are identical across
//   machines that share a libm (glibc) and may differ in the last bit elsewhere.
// - derive(seed, name) gives an independent stream per named purpose (one per
//   parameter tensor), so adding a parameter never changes the others' values.
#pragma once

#include <cmath>
#include <cstdint>
#include <string_view>

namespace gm {

class Rng {
 public:
  explicit Rng(uint64_t seed = 0) : state_(seed) {}

  static Rng from_state(uint64_t state) { return Rng(state); }
  uint64_t state() const { return state_; }

  // A stream for `name`, independent of the streams of other names and seeds.
  static Rng derive(uint64_t seed, std::string_view name) {
    // FNV-1a over the name, then mixed with the seed through one splitmix round.
    uint64_t h = 1469598103934665603ull;
    for (char c : name) {
      h ^= static_cast<uint8_t>(c);
      h *= 1099511628211ull;
    }
    Rng mixer(seed ^ (h * 0x9e3779b97f4a7c15ull));
    return Rng(mixer.next_u64() ^ h);
  }

  uint64_t next_u64() {
    uint64_t z = (state_ += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
  }

  // [0, 1)
  double uniform() { return static_cast<double>(next_u64() >> 11) * 0x1.0p-53; }
  // [lo, hi)
  double uniform(double lo, double hi) { return lo + (hi - lo) * uniform(); }
  // Integer in [0, n), n > 0 (multiply-shift; the bias is below 2^-64 * n).
  uint64_t below(uint64_t n) {
    return static_cast<uint64_t>((static_cast<unsigned __int128>(next_u64()) * n) >> 64);
  }
  // Standard normal.
  double normal() {
    const double u1 = 1.0 - uniform();  // (0, 1]: log stays finite
    const double u2 = uniform();
    return std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586476925 * u2);
  }
  double normal(double mean, double stddev) { return mean + stddev * normal(); }

 private:
  uint64_t state_;
};

}  // namespace gm
