// The next-token loss weight of one target, shared by the CUDA loss kernels
// (cross_entropy.cu, lm_head_loss.cu): 0 unless the target is A, C, G or T (ids 7..10);
// soft_weight when its flag has bit 0 (soft-masked) set, else 1. flags may be null.
#pragma once

#include <cstdint>

namespace gm::cuda {

constexpr uint8_t kFirstBase = 7, kLastBase = 10;  // A, T
constexpr uint8_t kSoftMasked = 1;

__device__ __forceinline__ float loss_weight(uint8_t target, const uint8_t* flags, int64_t i, float soft_weight) {
  const bool base = target >= kFirstBase && target <= kLastBase;
  return !base ? 0.f : (flags && (flags[i] & kSoftMasked)) ? soft_weight : 1.f;
}

}  // namespace gm::cuda
