// CPU feature detection for simd_level.h.
#include "mamba/cpu/simd_level.h"

#include <stdexcept>
#include <string>

namespace gm::cpu {

SimdLevel best_simd_level() {
#if defined(__x86_64__) && defined(__GNUC__)
  if (__builtin_cpu_supports("avx512f")) return SimdLevel::kAvx512;
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return SimdLevel::kAvx2;
#endif
  return SimdLevel::kBaseline;
}

const char* simd_level_name(SimdLevel level) {
  switch (level) {
    case SimdLevel::kAvx512:
      return "AVX-512F";
    case SimdLevel::kAvx2:
      return "AVX2+FMA";
    case SimdLevel::kBaseline:
      break;
  }
  return "baseline";
}

void require_simd_level(const char* op, SimdLevel level) {
  if (level > best_simd_level())
    throw std::invalid_argument(std::string("gm::cpu::") + op + ": this CPU lacks " + simd_level_name(level));
}

}  // namespace gm::cpu
