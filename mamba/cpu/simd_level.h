// The instruction-set levels the fast CPU kernels are built for, and the best one this
// CPU runs. Kernels are compiled once per level (the project builds without -march), each
// with its native vector width, and the level is picked per call; every level executes
// the same IEEE operations lane by lane, so all levels give the same bits.
#pragma once

namespace gm::cpu {

enum class SimdLevel { kBaseline = 0, kAvx2 = 1, kAvx512 = 2 };

SimdLevel best_simd_level();  // the highest level this CPU runs
const char* simd_level_name(SimdLevel level);
// Throws std::invalid_argument naming `op` when this CPU cannot run `level`.
void require_simd_level(const char* op, SimdLevel level);

}  // namespace gm::cpu
