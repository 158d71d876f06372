// Argument structs shared by every backend's ops (see mamba/op_list.inc).
#pragma once

#include <cstdint>

#include "mamba/tensor.h"

namespace gm {

// Inputs of the selective scan; null pointers turn a feature off.
struct ScanInputs {
  const Tensor* u = nullptr;
  const Tensor* delta = nullptr;
  const Tensor* A = nullptr;
  const Tensor* B = nullptr;
  const Tensor* C = nullptr;
  const Tensor* Dskip = nullptr;
  const Tensor* z = nullptr;
  const Tensor* delta_bias = nullptr;
  const Tensor* seq_start = nullptr;
  const Tensor* h0 = nullptr;
  bool delta_softplus = true;
};

// Gradients are OVERWRITTEN here (dA, dDskip, ddelta_bias already summed over batch
// and length; dB, dC summed over channels). Null pointers skip that gradient
// (dz/dDskip/ddelta_bias must be given when the input was given).
struct ScanGrads {
  Tensor* du = nullptr;
  Tensor* ddelta = nullptr;
  Tensor* dA = nullptr;
  Tensor* dB = nullptr;
  Tensor* dC = nullptr;
  Tensor* dDskip = nullptr;
  Tensor* dz = nullptr;
  Tensor* ddelta_bias = nullptr;
  Tensor* dh0 = nullptr;
};

// One AdamW update (decoupled weight decay, bias-corrected moments).
struct AdamWStep {
  float lr = 0;
  float beta1 = 0.9f;
  float beta2 = 0.95f;
  float eps = 1e-8f;
  float weight_decay = 0;  // decoupled: p -= lr * wd * p
  int64_t step = 1;        // 1-based, for bias correction
  float grad_scale = 1;    // gradient multiplied by this first (clipping)
};
}  // namespace gm
