// The instruction-set levels the fast CPU kernels are built for, and the best one this
// CPU runs. Kernels are compiled once per level (the project builds without -march), each
// with its native vector width (4, 8, 16 floats), and the level is picked per call.
// Within a level results are fixed. Across levels: kernels that promise the reference's
// own bits (conv1d) never contract multiply-adds and agree on every level; the scan
// contracts them into FMA, so AVX2+FMA and AVX-512 agree with each other and baseline
// x86-64 (no FMA) differs in the last bits. Each kernel's header says which.
#pragma once

namespace gm::cpu {

enum class SimdLevel { kBaseline = 0, kAvx2 = 1 /* AVX2 + FMA */, kAvx512 = 2 /* AVX-512F */ };

SimdLevel best_simd_level();  // the highest level this CPU runs
const char* simd_level_name(SimdLevel level);
// Throws std::invalid_argument naming `op` when this CPU cannot run `level`.
void require_simd_level(const char* op, SimdLevel level);

}  // namespace gm::cpu
